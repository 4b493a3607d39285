"""The one scheduler of all-pairs work: fit each representation once, then score every pair from two fits.

Every measure family follows the same protocol (`PairFamily`): `fit` the representations of a tile, then
`score` the tile's pairs from the fits. The families differ only in what a fit is:

- linear measures (`LinearFamily`): a representation's covariance and decompositions (`LinearFit`), from
  one streaming pass over the rows that also forms the tile's cross-product blocks;
- n x n measures (`SampleFamily`): a centred Gram, a rank vector or a neighbour set on a row subsample;
- attention measures (`AttentionFamily`): one layer's flattened maps (`AttentionFit`).

`plan_tiles` groups the representations into blocks whose fits (and, for the linear family, cross blocks)
stay within a memory budget; `score_pairs` drives any family through those tiles. When everything fits the
budget there is one tile and each representation is fitted exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from tqdm.auto import tqdm

Pair = tuple[int, int]
FitT = TypeVar("FitT")
PairScore = tuple[int, int, Mapping[str, Any]]


@dataclass(frozen=True)
class Tile:
    """A unit of all-pairs work: the pairs to score and the representations they involve.

    Parameters
    ----------
    members
        Indices of the representations the tile's pairs involve, sorted.
    pairs
        The (a, b) pairs to score, in the caller's order.
    """

    members: tuple[int, ...]
    pairs: tuple[Pair, ...]


def tile_blocks(tile: Tile) -> list[tuple[int, int]]:
    """A tile's blocks (a, b), a <= b, in member positions: its pairs' blocks and every member's own.

    Parameters
    ----------
    tile
        The tile.

    Returns
    -------
    list of tuple of int
        The blocks, sorted.
    """
    local = {g: i for i, g in enumerate(tile.members)}
    return sorted({(local[min(a, b)], local[max(a, b)]) for a, b in tile.pairs} | {(i, i) for i in local.values()})


class PairFamily(Protocol):
    """A family of measures computed the fit-once way.

    Implementations hold their fits between calls: `fit` is called once per tile, in plan order, and may keep
    fits from earlier tiles that the new tile also needs (and should drop the others). `score_pairs` drives a
    family; `plan_tiles` sizes its tiles from `fit_bytes` and `pair_bytes`.
    """

    def fit_bytes(self, item: int) -> int:
        """Bytes that the fit of one representation holds.

        Parameters
        ----------
        item
            Index of the representation.

        Returns
        -------
        int
            The fit's size in bytes.
        """
        ...

    def pair_bytes(self, a: int, b: int) -> int:
        """Bytes that scoring one pair needs while its tile is open (e.g. a cross-product block).

        Parameters
        ----------
        a, b
            Indices of the pair's two representations.

        Returns
        -------
        int
            The pair's size in bytes beyond the two fits (``0`` when it needs nothing more).
        """
        ...

    def fit(self, tile: Tile) -> None:
        """Fit every representation of the tile that has no fit yet.

        Parameters
        ----------
        tile
            The tile about to be scored; its `Tile.members` are the representations to have fits for.
        """
        ...

    def score(self, tile: Tile) -> Iterator[PairScore]:
        """Score the tile's pairs from the fits.

        Parameters
        ----------
        tile
            A tile that `fit` was last called with.

        Yields
        ------
        tuple of (int, int, Mapping)
            ``(a, b, {measure: value})`` for each pair of ``tile.pairs``, in their order.
        """
        ...


class MemberFamily(PairFamily, Protocol):
    """A `PairFamily` whose fits are per representation and can be made apart from the tiles.

    A remote executor (`reprsim.ray_pairs`) fits each representation in a task of its own (`fit_member`) and
    scores groups of a tile's pairs in other tasks, each holding the fits it needs (`hold`) instead of calling
    `fit`. `SampleFamily` and `AttentionFamily` are such families.
    """

    def fit_member(self, item: int) -> Any:
        """One representation's fit.

        Parameters
        ----------
        item
            Index of the representation.

        Returns
        -------
        object
            What `hold` takes for it.
        """
        ...

    def hold(self, fits: Mapping[int, Any]) -> None:
        """Hold fits made by `fit_member` as those of the tile `score` is called with next.

        Parameters
        ----------
        fits
            Index -> fit, for every member of that tile.
        """
        ...


def refit(fits: Mapping[int, FitT], tile: Tile, make: Callable[[int], FitT]) -> dict[int, FitT]:
    """The fits a tile needs: those already held for its members, and a new one for each missing member.

    Families whose fits are per representation (n x n, attention) keep fits across the tiles of one row of
    the plan this way, and drop the fits the new tile does not use.

    Parameters
    ----------
    fits
        The fits held now, by representation index.
    tile
        The tile to open.
    make
        Fits one representation, by index.

    Returns
    -------
    dict
        The fits of the tile's members.
    """
    kept = {k: fits[k] for k in tile.members if k in fits}
    for k in tile.members:
        if k not in kept:
            kept[k] = make(k)
    return kept


def _blocks(members: Sequence[int], fit_bytes: Callable[[int], int], pair_bytes: Callable[[int, int], int],
            budget: int) -> list[list[int]]:
    """Cut the members into consecutive groups, so that any two groups open together fit the budget.

    One group when everything fits at once. Otherwise each group's fits and its within-group pair bytes
    (every a <= b) each take at most a quarter of the budget; for pair bytes of product form
    (8 d_a d_b) the cross pairs of two groups then take at most half, so two groups hold at most the budget.
    """
    total_fits = sum(fit_bytes(m) for m in members)
    total_pairs = sum(pair_bytes(a, b) for i, a in enumerate(members) for b in members[i:])
    if total_fits + total_pairs <= budget:
        return [list(members)]
    quarter = budget / 4
    groups: list[list[int]] = []
    current: list[int] = []
    fits = pairs = 0
    for m in members:
        add_fit = fit_bytes(m)
        add_pairs = pair_bytes(m, m) + sum(pair_bytes(k, m) for k in current)
        if current and (fits + add_fit > quarter or pairs + add_pairs > quarter):
            groups.append(current)
            current, fits, pairs = [], 0, 0
            add_pairs = pair_bytes(m, m)
        current.append(m)
        fits += add_fit
        pairs += add_pairs
    groups.append(current)
    return groups


def plan_tiles(
    pairs: Sequence[Pair],
    fit_bytes: Callable[[int], int],
    pair_bytes: Callable[[int, int], int],
    budget: int,
) -> list[Tile]:
    """Group pairs into tiles whose fits and pair terms fit a memory budget.

    The representations the pairs involve are cut into consecutive groups; a tile holds the pairs between
    two groups (or within one). Tiles come group by group, so a family that keeps the fits of the first
    group across the tiles of one row fits those only once.

    Parameters
    ----------
    pairs
        The (a, b) pairs to score; each appears in exactly one tile.
    fit_bytes
        Bytes of one representation's fit (``fit_bytes(item)``).
    pair_bytes
        Bytes one pair needs while its tile is open (``pair_bytes(a, b)``).
    budget
        The memory budget in bytes (a single representation larger than it still gets a tile of its own).

    Returns
    -------
    list of Tile
        The tiles, in the order to run them.

    Raises
    ------
    ValueError
        If the budget is not a positive integer.
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"the memory budget must be a positive integer number of bytes, got {budget!r}")
    members = sorted({i for pair in pairs for i in pair})
    groups = _blocks(members, fit_bytes, pair_bytes, budget)
    group_of = {m: g for g, group in enumerate(groups) for m in group}
    by_tile: dict[tuple[int, int], list[Pair]] = {}
    for a, b in pairs:
        ga, gb = group_of[a], group_of[b]
        by_tile.setdefault((min(ga, gb), max(ga, gb)), []).append((a, b))
    tiles = []
    for key in sorted(by_tile):
        tile_pairs = by_tile[key]
        tiles.append(Tile(tuple(sorted({i for pair in tile_pairs for i in pair})), tuple(tile_pairs)))
    return tiles


def score_pairs(
    family: PairFamily,
    pairs: Sequence[Pair],
    budget: int,
    *,
    progress: bool = False,
    description: str = "pairs",
) -> Iterator[PairScore]:
    """Score every pair with a family: plan the tiles, then fit and score tile by tile.

    Parameters
    ----------
    family
        The measure family (`LinearFamily`, `SampleFamily`, `AttentionFamily` or your own).
    pairs
        The (a, b) index pairs to score.
    budget
        Memory budget in bytes for the fits and pair terms held at once.
    progress
        Show a progress bar over the pairs.
    description
        The progress bar's label.

    Yields
    ------
    tuple of (int, int, Mapping)
        ``(a, b, {measure: value})`` for every pair, tile by tile (so not necessarily in the order of `pairs`).

    Raises
    ------
    ValueError
        If the budget is not a positive integer.
    """
    tiles = plan_tiles(pairs, family.fit_bytes, family.pair_bytes, budget)
    with tqdm(total=len(pairs), desc=description, unit="pair", disable=not progress, leave=False) as bar:
        for tile in tiles:
            family.fit(tile)
            for scored in family.score(tile):
                bar.update(1)
                yield scored
