"""Streaming similarity of two representations: feed row chunks, get every linear measure at the end.

`StreamingSimilarity` keeps only float64 running sums (n, column sums, the three p x p, q x q, p x q
cross-product blocks; see `reprsim.engine.CrossMoments`), so memory does not depend on the number of rows,
and the result equals the one-shot functions of `reprsim.measures` (1e-6 relative) for any chunking.

>>> acc = StreamingSimilarity(("linear_cka", "maxsim", "pwcca"))
>>> for x_chunk, y_chunk in chunks:            # doctest: +SKIP  (the same rows of X and Y)
...     acc.update(x_chunk, y_chunk)
>>> values = acc.result()                       # doctest: +SKIP
>>> values["linear_cka"], values["maxsim"].a_to_b, values["maxsim"].b_to_a   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from reprsim.arrays import ArrayLike, warn_constant, warn_few_rows
from reprsim.engine.checks import Precision, check_precision, resolve_device
from reprsim.engine.linear_fit import (
    CCA_TYPE_MEASURES,
    ENGINE_MEASURES,
    Directed,
    LinearFit,
    SvccaOptions,
    needs_row_norms,
)
from reprsim.engine.linear_score import (
    MeasureValue,
    PairTerms,
    canonical_correlations,
    check_measures,
    derive,
    neuron_matches,
)
from reprsim.engine.moments import CrossMoments
from reprsim.measures.neuron import NeuronMatch

# Measures whose one-shot functions warn about constant neurons.
_NEURON_AWARE = frozenset({"maxsim", "linreg", "r2_lr", "cca_r2", "cca_rho", "svcca", "pwcca", "procrustes"})


class StreamingSimilarity:
    """Accumulate two row-aligned representations X (n x p) and Y (n x q) chunk by chunk.

    Only float64 running sums are kept (the p x p, q x q and p x q blocks), so memory does not depend on
    the number of rows. `result` returns ``{measure: value}``: a float for a symmetric measure, a `Directed`
    for a directed one (``a_to_b`` = f(X, Y), ``b_to_a`` = f(Y, X), as the one-shot function called both
    ways).

    Parameters
    ----------
    measures
        Names from `reprsim.engine.ENGINE_MEASURES` (default: all of them).
    device
        ``"auto"`` (CUDA if available, else the CPU), ``"cpu"`` or ``"cuda"``; checked now, not at the first
        chunk.
    precision
        ``"float64"``, or ``"float32"`` GEMMs added into float64 sums (faster, less exact).
    svcca
        SVCCA's options (keep, convention, standardize; default: keep 0.99, Raghu's rule).

    Attributes
    ----------
    measures
        The checked measure names.
    svcca
        The SVCCA options used.

    Raises
    ------
    ValueError
        If a measure is unknown, or the device or precision is invalid.
    """

    def __init__(
        self,
        measures: Sequence[str] = ENGINE_MEASURES,
        *,
        device: str | torch.device = "auto",
        precision: Precision = "float64",
        svcca: SvccaOptions | None = None,
    ) -> None:
        self.measures = check_measures(measures)
        self.svcca = svcca if svcca is not None else SvccaOptions()
        self._device = resolve_device(device)  # validated now rather than at the first chunk
        self._precision = check_precision(precision)
        self._moments: CrossMoments | None = None

    @property
    def n_rows(self) -> int:
        """Rows added so far (0 before the first `update`)."""
        return 0 if self._moments is None else self._moments.n_rows(0)

    def update(self, X_chunk: ArrayLike, Y_chunk: ArrayLike) -> None:
        """Add the same rows of X and Y.

        Parameters
        ----------
        X_chunk, Y_chunk
            Rows x p and rows x q (numpy or torch, any float dtype); successive chunks may differ in size.

        Raises
        ------
        ValueError
            If a chunk is not 2-D, the two hold different row counts, a width differs from the first chunk's,
            or a value is NaN or Inf (naming X or Y and the row).
        """
        if self._moments is None:
            if np.ndim(X_chunk) != 2 or np.ndim(Y_chunk) != 2:
                raise ValueError(
                    f"X and Y chunks must be 2-D (rows x neurons), got {np.ndim(X_chunk)}-D and "
                    f"{np.ndim(Y_chunk)}-D"
                )
            self._moments = CrossMoments(
                [int(np.shape(X_chunk)[1]), int(np.shape(Y_chunk)[1])],
                device=self._device,
                precision=self._precision,
                row_norms=needs_row_norms(self.measures),
            )
        self._moments.update([X_chunk, Y_chunk], names=("X", "Y"))

    def merge(self, other: StreamingSimilarity) -> StreamingSimilarity:
        """Add another accumulator's rows (e.g. a shard computed elsewhere) into this one.

        Parameters
        ----------
        other
            An accumulator of other rows of the same X and Y (one with no rows changes nothing).

        Returns
        -------
        StreamingSimilarity
            ``self``.

        Raises
        ------
        ValueError
            If `other` is not a `StreamingSimilarity`, or the widths differ (see `CrossMoments.merge`).
        """
        if not isinstance(other, StreamingSimilarity):
            raise ValueError(f"can only merge StreamingSimilarity, got {type(other).__name__}")
        if other._moments is None:
            return self
        if self._moments is None:
            self._moments = CrossMoments(
                other._moments.widths,
                device=self._device,
                precision=self._precision,
                row_norms=needs_row_norms(self.measures),
            )
        self._moments.merge(other._moments)
        return self

    def _terms(self) -> PairTerms:
        """The pair's fits and cross block from everything added so far."""
        if self._moments is None or self._moments.n_rows(0) == 0:
            raise ValueError("no rows were added; call update(X_chunk, Y_chunk) first")
        m = self._moments
        x = LinearFit.from_moments(m, 0, name="X")
        y = LinearFit.from_moments(m, 1, name="Y")
        return PairTerms(x, y, m.centred(0, 1), m.centred_norm_product(0, 1) if m.row_norms else None)

    def result(self) -> dict[str, MeasureValue]:
        """Every requested measure of everything added so far.

        Returns
        -------
        dict
            ``{measure: value}``: a float for a symmetric measure, a `Directed` for a directed one.

        Raises
        ------
        ValueError
            If no rows were added, or a measure is undefined for the data (e.g. every neuron of X constant).

        Warns
        -----
        ConstantNeuronWarning
            When X or Y has constant neurons and a neuron-aware measure was asked for, as the one-shot
            functions do.
        FewRowsWarning
            When a CCA-type measure is computed on fewer than 10 x max(p, q) rows.
        """
        terms = self._terms()
        if _NEURON_AWARE & set(self.measures):
            warn_constant(terms.x.n_constant, terms.y.n_constant, "streaming similarity")
        if CCA_TYPE_MEASURES & set(self.measures):
            warn_few_rows(terms.n, terms.x.width, terms.y.width, "streaming similarity")
        return derive(terms, self.measures, self.svcca)

    def neuron_matches(self) -> Directed[NeuronMatch]:
        """Per-neuron maxsim matches, both directions.

        Returns
        -------
        Directed of NeuronMatch
            ``a_to_b`` = ``maxsim_per_neuron(X, Y)``, ``b_to_a`` = ``maxsim_per_neuron(Y, X)``.

        Raises
        ------
        ValueError
            If no rows were added or every neuron of X or Y is constant.

        Warns
        -----
        ConstantNeuronWarning
            When X or Y has constant neurons.
        """
        terms = self._terms()
        warn_constant(terms.x.n_constant, terms.y.n_constant, "maxsim")
        return neuron_matches(terms)

    def canonical_correlations(self) -> np.ndarray:
        """Canonical correlations of X and Y, descending (as `reprsim.measures.canonical_correlations`).

        Returns
        -------
        numpy.ndarray
            (m,) float64 in [0, 1], m = min(rank X, rank Y).

        Raises
        ------
        ValueError
            If no rows were added, every neuron of X or Y is constant, or a decomposition fails.

        Warns
        -----
        FewRowsWarning
            When there are fewer than 10 x max(p, q) rows.
        """
        terms = self._terms()
        warn_few_rows(terms.n, terms.x.width, terms.y.width, "canonical_correlations")
        return canonical_correlations(terms)
