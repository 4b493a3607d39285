"""What a comparison's statistics are: the interval method, the null, and their sizes (`InferenceOptions`)."""

from __future__ import annotations

from dataclasses import dataclass

CI_METHODS = ("bootstrap", "jackknife", "none")
NULL_METHODS = ("analytic", "permutation", "none")
JACKKNIFE_METHODS = ("linearised", "exact")
# The options `reprsim.compare`, the study's compare keys and the CLI flags share (seed is the study's own).
COMPARE_ARGUMENTS = ("ci", "null", "blocks", "resamples", "permutations", "alpha", "jackknife")


def _whole(value: object, name: str, minimum: int) -> int:
    """An integer option at least `minimum`, refused by name otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class InferenceOptions:
    """The statistics a comparison attaches to every value.

    Parameters
    ----------
    ci
        ``"bootstrap"`` (percentile interval over sentence blocks, with the jackknife's standard error),
        ``"jackknife"`` (delete-one-block standard error, bias and a normal interval) or ``"none"``.
    null
        ``"analytic"`` (the closed-form permutation mean, and the chance level where a measure has one; no
        resampling), ``"permutation"`` (K row permutations, one shared by every layer, giving a p-value and
        the calibrated score) or ``"none"``.
    blocks
        G, the number of sentence blocks the resampling works on (whole sentences, contiguous).
    resamples
        B, bootstrap replicates.
    permutations
        K, permutations of the null.
    alpha
        The interval's level is 1 - alpha; the calibration threshold is the null's (1 - alpha) quantile.
    seed
        Seeds the bootstrap weights and the permutations.
    jackknife
        How the linear measures' leave-one-block-out values are found: ``"linearised"`` (first order in the
        left-out block's moments, one set of gradients per pair, for the measures that have one) or ``"exact"``
        (every representation refitted and every pair derived again once per block: G times the work).

    Raises
    ------
    ValueError
        If a method is unknown, G is below 2, B or K is below 1, or alpha is outside (0, 1); the message
        names the option.
    """

    ci: str = "none"
    null: str = "none"
    blocks: int = 50
    resamples: int = 1000
    permutations: int = 200
    alpha: float = 0.05
    seed: int = 0
    jackknife: str = "linearised"

    def __post_init__(self) -> None:
        if self.ci not in CI_METHODS:
            raise ValueError(f"ci must be one of {', '.join(CI_METHODS)}, got {self.ci!r}")
        if self.null not in NULL_METHODS:
            raise ValueError(f"null must be one of {', '.join(NULL_METHODS)}, got {self.null!r}")
        if self.jackknife not in JACKKNIFE_METHODS:
            raise ValueError(f"jackknife must be one of {', '.join(JACKKNIFE_METHODS)}, got {self.jackknife!r}")
        _whole(self.blocks, "blocks", 2)
        _whole(self.resamples, "resamples", 1)
        _whole(self.permutations, "permutations", 1)
        _whole(self.seed, "seed", 0)
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be a number in (0, 1), got {self.alpha!r}")

    @property
    def enabled(self) -> bool:
        """Whether any statistic is asked for."""
        return self.ci != "none" or self.null != "none"

    def as_dict(self) -> dict[str, object]:
        """The options as a plain dict (for provenance and study files)."""
        return {"ci": self.ci, "null": self.null, "blocks": self.blocks, "resamples": self.resamples,
                "permutations": self.permutations, "alpha": self.alpha, "seed": self.seed,
                "jackknife": self.jackknife}


NO_INFERENCE = InferenceOptions()
