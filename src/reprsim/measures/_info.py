"""What the registry knows of a measure (`MeasureInfo`), and the invariance classes its rows share.

Kept apart from `reprsim.measures.registry` so that the modules holding each family's rows and the registry
that assembles them both build on it, without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, get_args

Level = Literal["neuron", "mixed", "distributed", "attention"]
LEVELS: tuple[str, ...] = get_args(Level)
INVARIANCES = frozenset(
    {"permutation", "orthogonal", "isotropic_scaling", "invertible_linear", "invertible_linear_y_only"}
)


@dataclass(frozen=True, kw_only=True)
class MeasureInfo:
    """What a measure is and how to use it.

    Parameters
    ----------
    name
        Registry name, also the function's name.
    function
        ``f(X, Y) -> float``; attention measures take per-sentence map sequences ``A, B``.
    level
        ``"neuron"``, ``"mixed"``, ``"distributed"`` or ``"attention"``.
    symmetric
        ``f(X, Y) == f(Y, X)``; otherwise ``f(X, Y)`` is sim(X -> Y).
    larger_is_similar
        False for distances.
    invariances
        A subset of `INVARIANCES` (see the module docstring).
    needs_subsample
        The measure builds n x n matrices, so it runs on a row subsample by default.
    streamable
        Computable in one pass over the rows (or sentences) with memory independent of n.
    description
        One line for listings.
    definition
        The formula in words, as reprsim computes it.
    convention
        Choices where published implementations differ (centring, bandwidth, ties, defaults).
    reference
        The paper the measure comes from.
    cost
        Time and memory of one comparison, with n rows and widths p, q.
    similarity_repository_id
        The measure's id in similarity-repository (Cloos et al. 2024), the cross-implementation catalogue of
        measure names, where one matches this convention; empty where none does.
    options
        For a measure asked for with options (``"svcca(keep=0.9)"``, see `parse_spec`): those options, already
        bound into `function`; `name` is then the canonical spec and `base` the registry name.
    base
        The registry name the entry was made from (`name` itself for a plain entry).

    Raises
    ------
    ValueError
        If `level` or an invariance is not one of the known names.
    """

    name: str
    function: Callable[..., Any]
    level: Level
    symmetric: bool
    larger_is_similar: bool
    invariances: frozenset[str]
    needs_subsample: bool
    streamable: bool
    description: str
    definition: str
    convention: str
    reference: str
    cost: str
    similarity_repository_id: str = ""
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    base: str = ""

    def __post_init__(self) -> None:
        if not self.base:
            object.__setattr__(self, "base", self.name)
        if self.level not in LEVELS:
            raise ValueError(f"measure {self.name!r}: level must be one of {LEVELS}, got {self.level!r}")
        unknown = set(self.invariances) - INVARIANCES
        if unknown:
            raise ValueError(f"measure {self.name!r}: unknown invariance(s) {sorted(unknown)}")


ORTHO = frozenset({"permutation", "orthogonal", "isotropic_scaling"})
CCA = ORTHO | {"invertible_linear"}
PER_NEURON_X = frozenset({"permutation", "isotropic_scaling", "invertible_linear_y_only"})
NEURON_SCALING = frozenset({"permutation", "isotropic_scaling"})

LINEAR_COST = "O(n p q) for the cross-products, O(p^3 + q^3) per representation; memory O(p q)"
