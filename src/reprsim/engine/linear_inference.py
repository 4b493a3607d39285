"""Statistics of the linear measures from the pass's sentence-block moments (no further pass over the rows).

Every statistic starts from the G leave-one-block-out values of each measure of each pair, found one of two
ways (`InferenceOptions.jackknife`):

- ``"linearised"`` (the default), for the measures with a gradient (`reprsim.engine.linear_influence`:
  maxsim, linreg, R2_LR, CCA, SVCCA, Procrustes and its distances): theta^(-g) ~ theta - n / (n - n_g)
  d theta[C - C^(-g)], one set of gradients per pair and G inner products with the blocks; the CKA family
  and PWCCA are refitted as below (the CKA family needs no decomposition, so its refits are cheap);
- ``"exact"``: ``total - block g`` (`reprsim.engine.block_moments`), each representation refitted once per
  block and every pair derived again from the refits.

From the G leave-one-block-out values:

- the standard error and bias are the delete-one-block jackknife's, for every linear measure;
- ``ci="jackknife"``: the interval is estimate -/+ t_{G-1} se;
- ``ci="bootstrap"``: percentile intervals, reflected about the estimate for the exact replicates
  (`reprsim.inference.basic_interval`). Linear CKA's B replicates are exact (`cka_bootstrap_hsic`: each one a G x G
  quadratic form); every other measure's replicates are the first-order (linearised) expansion in the block weights
  from its jackknife influence values (`reprsim.inference.linearised_bootstrap`). Debiased and lange CKA are
  U-statistics, which duplicated blocks would bias upwards (a duplicated row pairs with its copy); the linearised
  replicates never duplicate a row, so they carry no such bias;
- the null: linear CKA's permutation mean (and variance) is analytic (the RV coefficient's, Kazi-Aoual et al.
  1995); no other linear measure has a closed-form null, and permuting rows would need a pass per
  permutation, so they report none.

The leave-one-out values are kept as the value's replicates (the same blocks for every pair), so that
differences and aggregates of values get their own intervals (`reprsim.inference.difference_statistics`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from reprsim import inference
from reprsim.arrays import FewRowsWarning
from reprsim.inference import InferenceOptions, Uncertainty

from . import linear_influence
from .block_moments import BlockedMoments, cka_bootstrap_hsic
from .linear_fit import Directed, LinearFit, SvccaOptions

# Fewer blocks than this give no interval: a jackknife on a handful of blocks has too few degrees of freedom.
MIN_BLOCKS = 5

CI_METHODS = {
    "jackknife": "delete-one-block jackknife (t interval)",
    "jackknife-linearised": "delete-one-block jackknife, linearised (t interval)",
    "bootstrap-exact": "block bootstrap (exact, basic interval)",
    "bootstrap-linear": "block bootstrap (linearised from the jackknife, percentile)",
}


def ci_method(measure_base: str, options: InferenceOptions, linearised: bool = False) -> str:
    """How a linear measure's interval is computed under the options (for the provenance and the docs).

    `linearised` says whether its leave-one-out values come from its gradient (`reprsim.engine.linear_influence`).
    """
    if options.ci == "none":
        return "none"
    if options.ci == "jackknife":
        return CI_METHODS["jackknife-linearised" if linearised else "jackknife"]
    return CI_METHODS["bootstrap-exact" if measure_base == "linear_cka" else "bootstrap-linear"]


def null_method(measure_base: str, options: InferenceOptions) -> str:
    """Which null a linear measure gets under the options."""
    if options.null == "none":
        return "none"
    if measure_base == "linear_cka":
        return "analytic permutation moments (RV coefficient)"
    return "none known in closed form; a permutation null would need a pass per permutation"


def _summary(estimate: float, loo: np.ndarray, options: InferenceOptions, bootstrap: np.ndarray | None,
             counts: np.ndarray | None, linearised: bool) -> Uncertainty:
    """The interval statistics of one value from its leave-one-out values (and exact replicates, if any)."""
    if not np.all(np.isfinite(loo)) or loo.size < MIN_BLOCKS:
        return Uncertainty()
    se, _bias = inference.jackknife_summary(estimate, loo)
    if options.ci == "jackknife":
        low, high = inference.normal_interval(estimate, se, options.alpha, dof=loo.size - 1)
        method = CI_METHODS["jackknife-linearised" if linearised else "jackknife"]
    else:
        assert counts is not None
        replicates = bootstrap if bootstrap is not None else inference.linearised_bootstrap(estimate, loo, counts)
        low, high = (inference.basic_interval(estimate, replicates, options.alpha) if bootstrap is not None
                     else inference.percentile_interval(replicates, options.alpha))
        method = CI_METHODS["bootstrap-exact" if bootstrap is not None else "bootstrap-linear"]
    return Uncertainty(se=se, ci_low=low, ci_high=high, ci_method=method, replicates=loo, replicate_kind="jackknife")


def _cka_null(fa: LinearFit, fb: LinearFit) -> Uncertainty:
    """Linear CKA's analytic permutation null from the two fits (trace, ||C||_F^2, sum |x_i|^4)."""
    if fa.norm_product is None or fb.norm_product is None:
        return Uncertainty()
    mean, _variance = inference.rv_null_moments(fa.trace, fa.frobenius**2, fa.norm_product,
                                                fb.trace, fb.frobenius**2, fb.norm_product, fa.n)
    return Uncertainty(null_mean=float(mean), null_method="analytic permutation moments (RV coefficient)")


class LinearStatistics:
    """The statistics of one tile's pairs, from its blocked moments.

    Parameters
    ----------
    blocked
        The tile's blocked moments (finished), indexed by local member index; ``None`` when no interval is
        asked for (a null only).
    options
        The statistics asked for.
    refit
        Builds a member's `LinearFit` from sums, given its local index and the measures it must serve.
    derive_pair
        Derives the given measures of a pair from its two fits and the sums.
    map_parallel
        ``map`` over a thread pool.
    gradients
        Given a pair's local indices, a function from a measure to its gradient on all rows
        (`reprsim.engine.linear_influence`; the pair's decompositions shared between its measures); needed
        when `linearised` is not empty.
    linearised
        The measures whose leave-one-out values come from their gradients; every other measure is refitted
        once per block.
    """

    def __init__(self, blocked: BlockedMoments | None, options: InferenceOptions,
                 refit: Callable[[Any, int, Sequence[str]], LinearFit],
                 derive_pair: Callable[[LinearFit, LinearFit, Any, int, int, Sequence[str]], Mapping[str, Any]],
                 map_parallel: Callable[..., Any],
                 gradients: Callable[[int, int], Callable[[str], Any]] | None = None,
                 linearised: frozenset[str] = frozenset()) -> None:
        self.blocked, self.options = blocked, options
        self.refit, self.derive_pair, self.map = refit, derive_pair, map_parallel
        self.gradients, self.linearised = gradients, linearised

    def leave_one_out(self, members: Sequence[int], pairs: Sequence[tuple[int, int]], measures: Sequence[str],
                      estimates: Mapping[tuple[int, int], Mapping[str, Any]],
                      ) -> dict[tuple[int, int], dict[str, np.ndarray]]:
        """(2, G) leave-one-block-out values (a -> b, b -> a) per local pair and measure (NaN where one fails)."""
        assert self.blocked is not None
        out: dict[tuple[int, int], dict[str, np.ndarray]] = {
            p: {m: np.full((2, self.blocked.n_blocks), np.nan) for m in measures} for p in pairs}
        failures: list[str] = []
        linear = [m for m in measures if m in self.linearised]
        if linear:
            self._linearised(pairs, linear, estimates, out, failures)
        refitted = [m for m in measures if m not in self.linearised]
        if refitted:
            self._refitted(members, pairs, refitted, out, failures)
        if failures:
            warnings.warn(f"{len(failures)} leave-one-block-out replicate(s) could not be derived (first: "
                          f"{failures[0]}); those values have no interval", FewRowsWarning, stacklevel=4)
        return out

    def _linearised(self, pairs: Sequence[tuple[int, int]], measures: Sequence[str],
                    estimates: Mapping[tuple[int, int], Mapping[str, Any]],
                    out: dict[tuple[int, int], dict[str, np.ndarray]], failures: list[str]) -> None:
        """The leave-one-out values theta - d theta[C - C^(-g)] of every block g, from each pair's gradients."""
        assert self.blocked is not None and self.gradients is not None
        blocked, gradients = self.blocked, self.gradients
        # Every linearised measure is invariant to the moments' scale, so expanding about C (n rows) in the
        # direction C - C^(-g) (n - n_g rows) undershoots by (n - n_g) / n; this expands about C's rescaling.
        block_rows = np.diff(blocked.bounds).astype(np.float64)
        scale = block_rows.sum() / (block_rows.sum() - block_rows)

        def one(pair: tuple[int, int]) -> None:
            i, j = pair
            gradient_of = gradients(i, j)
            flat: list[tuple[str, int, Any]] = []
            for m in measures:
                try:
                    value = gradient_of(m)
                except (ValueError, torch.linalg.LinAlgError) as exc:
                    failures.append(f"{m}: {exc}")
                    continue
                flat += ([(m, 0, value.a_to_b), (m, 1, value.b_to_a)] if isinstance(value, Directed)
                         else [(m, 0, value)])
            if not flat:
                return
            change = (blocked.left_out_changes(i, i, torch.stack([g.x for *_, g in flat]))
                      + blocked.left_out_changes(j, j, torch.stack([g.y for *_, g in flat]))
                      + blocked.left_out_changes(i, j, torch.stack([g.xy for *_, g in flat]))).cpu().numpy()
            change *= scale
            for (m, d, _), delta in zip(flat, change, strict=True):
                if not np.isfinite(delta).all():
                    failures.append(f"{m}: the gradient is not finite")
                    continue
                value = estimates[pair][m]
                estimate = (value.a_to_b, value.b_to_a)[d] if isinstance(value, Directed) else value
                out[pair][m][[d] if isinstance(value, Directed) else [0, 1]] = float(estimate) - delta

        list(self.map(one, pairs))

    def _refitted(self, members: Sequence[int], pairs: Sequence[tuple[int, int]], measures: Sequence[str],
                  out: dict[tuple[int, int], dict[str, np.ndarray]], failures: list[str]) -> None:
        """Each measure derived again on the sums without block g, every member refitted once per block."""
        assert self.blocked is not None
        for g in range(self.blocked.n_blocks):
            sums = self.blocked.leave_one_out(g)
            fits = dict(zip(members, self.map(lambda m, s=sums: self.refit(s, m, measures), members), strict=True))

            def one(pair: tuple[int, int], sums: Any = sums, fits: dict[int, LinearFit] = fits) -> Any:
                try:
                    return self.derive_pair(fits[pair[0]], fits[pair[1]], sums, pair[0], pair[1], measures)
                except ValueError as exc:
                    failures.append(str(exc))
                    return {}

            for pair, values in zip(pairs, self.map(one, pairs), strict=True):
                for m, v in values.items():
                    if m in out[pair]:
                        out[pair][m][:, g] = (v.a_to_b, v.b_to_a) if isinstance(v, Directed) else (v, v)

    def uncertainties(self, members: Sequence[int], pairs: Sequence[tuple[int, int]],
                      estimates: Mapping[tuple[int, int], Mapping[str, Any]], fits: Mapping[int, LinearFit],
                      bases: Mapping[str, str]) -> dict[tuple[int, int], dict[str, Any]]:
        """Per local pair, {measure: Uncertainty or Directed[Uncertainty]}."""
        opts = self.options
        measures = list(bases)
        loo = self.leave_one_out(members, pairs, measures, estimates) if opts.ci != "none" else {}
        counts = (inference.bootstrap_counts(self.blocked.n_blocks, opts.resamples, opts.seed)
                  if opts.ci == "bootstrap" and self.blocked is not None else None)
        exact_cka = {}
        if counts is not None and "linear_cka" in bases.values():
            exact_cka = self._cka_replicates(members, pairs, counts)
        result: dict[tuple[int, int], dict[str, Any]] = {}
        for pair in pairs:
            a, b = pair
            per: dict[str, Any] = {}
            for m in measures:
                value = estimates[pair][m]
                boot = exact_cka.get(pair) if bases[m] == "linear_cka" else None
                if isinstance(value, Directed):
                    ab = self._one(value.a_to_b, loo, pair, m, 0, boot, counts, bases[m], fits, a, b)
                    ba = self._one(value.b_to_a, loo, pair, m, 1, boot, counts, bases[m], fits, b, a)
                    per[m] = Directed(ab, ba)
                else:
                    per[m] = self._one(value, loo, pair, m, 0, boot, counts, bases[m], fits, a, b)
            result[pair] = per
        return result

    def _one(self, value: float, loo: Mapping[tuple[int, int], Mapping[str, np.ndarray]], pair: tuple[int, int],
             measure: str, direction: int, boot: np.ndarray | None, counts: np.ndarray | None, base: str,
             fits: Mapping[int, LinearFit], a: int, b: int) -> Uncertainty:
        u = Uncertainty()
        if self.options.ci != "none":
            u = _summary(float(value), loo[pair][measure][direction], self.options, boot, counts,
                         measure in self.linearised)
        if self.options.null != "none" and base == "linear_cka" and a != b:
            u = u.merged(_cka_null(fits[a], fits[b]))
        if not u.null_method and self.options.null != "none":
            u.null_method = null_method(base, self.options)
        return u

    def _cka_replicates(self, members: Sequence[int], pairs: Sequence[tuple[int, int]],
                        counts: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
        """Exact bootstrap replicates of linear CKA for every pair (self terms once per member)."""
        assert self.blocked is not None
        blocks = self.blocked.block_sums
        own = dict(zip(members, self.map(lambda m: cka_bootstrap_hsic(blocks, m, m, counts), members), strict=True))

        def one(pair: tuple[int, int]) -> np.ndarray:
            a, b = pair
            cross = own[a] if a == b else cka_bootstrap_hsic(blocks, a, b, counts)
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.asarray(cross / np.sqrt(own[a] * own[b]))

        return dict(zip(pairs, self.map(one, pairs), strict=True))


def inference_provenance(measures: Sequence[str], bases: Mapping[str, str],
                         options: InferenceOptions) -> dict[str, dict[str, str]]:
    """{measure: {"ci": method, "null": method}} for the table's provenance (SVCCA as `reprsim.compare` runs it)."""
    linear = linear_influence.linearised_measures(measures, options.jackknife, SvccaOptions())
    return {m: {"ci": ci_method(bases[m], options, m in linear), "null": null_method(bases[m], options)}
            for m in measures}


def block_bytes_factor(options: InferenceOptions) -> int:
    """How many copies of a pass's blocks the statistics hold: G per-block copies, the total and one replicate."""
    return options.blocks + 2 if options.ci != "none" else 1


__all__ = ["MIN_BLOCKS", "LinearStatistics", "block_bytes_factor", "ci_method", "inference_provenance",
           "null_method"]
