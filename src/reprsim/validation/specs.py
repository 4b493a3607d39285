"""The measures the validation suite evaluates, built from the measure registry, and the papers' numbers.

Every representation-level measure in `reprsim.measures` is validated; RBF CKA appears once per bandwidth
because Kornblith et al. report t = 0.4 and 0.8 separately. Measures that build n x n matrices run on a
seeded row subsample whose size the caller sets, the same rows for both sides of every comparison.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reprsim import measures

# Registry levels that compare row-aligned representation matrices (the attention level compares maps).
REPRESENTATION_LEVELS: tuple[str, ...] = ("neuron", "mixed", "distributed")

# Warnings that are expected by construction here and say nothing about a measure's validity.
EXPECTED_WARNINGS: tuple[type[Warning], ...] = (measures.SubsampleWarning,)


@dataclass(frozen=True)
class MeasureSpec:
    """One measure with fixed options, e.g. rbf_cka at t = 0.4 on 2,000 rows.

    Calling the spec, ``spec(X, Y)``, evaluates sim(X -> Y) on two row-aligned matrices (for symmetric
    measures the order does not matter) and returns a float; a non-finite value raises ValueError naming the
    measure and the input shapes.

    Attributes
    ----------
    label : str
        The name in tables, e.g. ``"rbf_cka (t=0.4)"``.
    name : str
        The registry name, e.g. ``"rbf_cka"``.
    function : callable
        The registry function, called as ``function(X, Y, **options)``.
    options : mapping of str to Any, default {}
        The fixed keyword options (row subsample size and seed, RBF bandwidth).
    symmetric : bool, default True
        Whether sim(X -> Y) = sim(Y -> X).
    larger_is_similar : bool, default True
        False for distances.
    level : str, default "distributed"
        The registry level (``"neuron"``, ``"mixed"`` or ``"distributed"``).
    """

    label: str
    name: str
    function: Callable[..., Any]
    options: Mapping[str, Any] = field(default_factory=dict)
    symmetric: bool = True
    larger_is_similar: bool = True
    level: str = "distributed"

    def __call__(self, X: np.ndarray, Y: np.ndarray) -> float:
        """Evaluate sim(X -> Y).

        Parameters
        ----------
        X, Y : numpy.ndarray
            Row-aligned representations, shape ``(rows, neurons)`` (the widths may differ).

        Returns
        -------
        float
            The measure's value.

        Raises
        ------
        ValueError
            If the value is NaN or infinite (naming the measure and the shapes).
        """
        value = float(self.function(X, Y, **self.options))
        if not np.isfinite(value):
            raise ValueError(f"measure {self.label} returned {value} for inputs of shape {X.shape}, {Y.shape}")
        return value


def representation_measures(
    rbf_bandwidths: Sequence[float] = (0.4, 0.8),
    max_rows: int | None = 2000,
    subsample_seed: int = 0,
    names: Sequence[str] | None = None,
) -> list[MeasureSpec]:
    """Build a spec for every representation-level measure in the registry, or for some of them.

    Parameters
    ----------
    rbf_bandwidths : sequence of float, default (0.4, 0.8)
        ``rbf_cka`` yields one spec per bandwidth t (labelled ``"rbf_cka (t=...)"``), as Kornblith et al.
        report them separately.
    max_rows : int or None, default 2000
        The row subsample of the measures that build n x n matrices (None: every row).
    subsample_seed : int, default 0
        The seed of that subsample, the same rows for both sides of every comparison.
    names : sequence of str, optional
        The registry names to include, in this order; default every representation-level measure (levels
        neuron, mixed and distributed), in registry order.

    Returns
    -------
    list of MeasureSpec
        The specs.

    Raises
    ------
    KeyError
        If a name is not a representation-level measure of the registry.
    ValueError
        If ``rbf_cka`` is included but `rbf_bandwidths` is empty.
    """
    registered = [n for level in REPRESENTATION_LEVELS for n in measures.available(level)]
    order = {n: i for i, n in enumerate(measures.available())}
    chosen = sorted(registered, key=order.__getitem__) if names is None else list(names)
    for name in chosen:
        if name not in registered:
            raise KeyError(f"no representation-level measure {name!r}; available: {', '.join(registered)}")
    if "rbf_cka" in chosen and not rbf_bandwidths:
        raise ValueError("rbf_bandwidths is empty but rbf_cka was requested")
    specs: list[MeasureSpec] = []
    for name in chosen:
        info = measures.get(name)
        options: dict[str, Any] = {"max_rows": max_rows, "seed": subsample_seed} if info.needs_subsample else {}
        variants = (
            [(f"rbf_cka (t={t:g})", {**options, "t": float(t)}) for t in rbf_bandwidths]
            if (name == "rbf_cka")
            else [(name, options)]
        )
        specs.extend(
            MeasureSpec(
                label=label,
                name=name,
                function=info.function,
                options=opts,
                symmetric=info.symmetric,
                larger_is_similar=info.larger_is_similar,
                level=info.level,
            )
            for label, opts in variants
        )
    return specs


@dataclass(frozen=True)
class PaperValue:
    """A published layer-identification accuracy and the paper's name for the index.

    Attributes
    ----------
    index : str
        The similarity index as the paper names it, e.g. ``"CKA (linear)"``.
    accuracy : float
        The accuracy, in percent.
    """

    index: str
    accuracy: float


# Kornblith et al. 2019, Table 2: ten 10-layer CNNs on CIFAR-10 differing only in initialisation, logits
# excluded, asymmetric indexes symmetrised as S + S^T. Keyed by the spec label that computes the same index.
KORNBLITH_TABLE2: Mapping[str, PaperValue] = {
    "cca_rho": PaperValue("CCA (mean rho)", 1.4),
    "cca_r2": PaperValue("CCA (R2_CCA)", 10.6),
    "svcca": PaperValue("SVCCA (mean rho)", 9.9),
    "pwcca": PaperValue("PWCCA", 11.1),
    "r2_lr": PaperValue("Linear regression", 45.4),
    "linear_cka": PaperValue("CKA (linear)", 99.3),
    "rbf_cka (t=0.4)": PaperValue("CKA (RBF 0.4)", 99.1),
    "rbf_cka (t=0.8)": PaperValue("CKA (RBF 0.8)", 99.3),
}

# Rows of the same table that no registry measure computes, quoted for completeness.
KORNBLITH_TABLE2_OTHER: tuple[PaperValue, ...] = (
    PaperValue("SVCCA (R2_CCA)", 15.1),
    PaperValue("Linear HSIC", 22.2),
    PaperValue("CKA (RBF 0.2)", 80.6),
)


@contextmanager
def counting_warnings(counts: Counter[str]) -> Iterator[None]:
    """Count the warnings raised inside the block, by class name, instead of printing them.

    The validation calls each measure hundreds of times; one FewRowsWarning per call would bury the
    progress bars, but whether a measure warned (and how often) belongs in the results. Warnings expected
    by construction (`reprsim.measures.SubsampleWarning`) are not counted.

    Parameters
    ----------
    counts : collections.Counter of str
        Updated in place when the block ends.

    Yields
    ------
    None
        Control, inside the block.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        if not issubclass(w.category, EXPECTED_WARNINGS):
            counts[w.category.__name__] += 1
