"""The one scheduler of all-pairs work: tiles cover every pair once, respect the budget, and never change values."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from reprsim import measures
from reprsim.engine import RepresentationSource, SampleFamily, Tile, plan_tiles, score_pairs


def sizes(widths: list[int]):
    return (lambda i: 8 * widths[i] ** 2), (lambda a, b: 8 * widths[a] * widths[b])


@pytest.mark.parametrize("budget", [10**9, 4000, 900, 1])
def test_every_pair_lands_in_exactly_one_tile_in_caller_order(budget: int) -> None:
    widths = [3, 5, 2, 7, 4, 6]
    pairs = [(a, b) for a in range(6) for b in range(a, 6)] + [(4, 1), (5, 0)]
    fit_bytes, pair_bytes = sizes(widths)
    tiles = plan_tiles(pairs, fit_bytes, pair_bytes, budget)
    seen = [p for tile in tiles for p in tile.pairs]
    assert sorted(seen) == sorted(pairs) and len(seen) == len(set(seen))
    for tile in tiles:
        assert tile.members == tuple(sorted({i for p in tile.pairs for i in p}))
        order = [pairs.index(p) for p in tile.pairs]
        assert order == sorted(order)


def test_one_tile_when_everything_fits_and_tiles_within_half_budget_groups_otherwise() -> None:
    widths = [4] * 8
    fit_bytes, pair_bytes = sizes(widths)
    pairs = list(itertools.combinations(range(8), 2))
    assert len(plan_tiles(pairs, fit_bytes, pair_bytes, 10**9)) == 1
    budget = 2000  # each fit 128 B, each cross block 128 B: half the budget holds a few members
    tiles = plan_tiles(pairs, fit_bytes, pair_bytes, budget)
    assert len(tiles) > 1
    for tile in tiles:
        held = sum(fit_bytes(m) for m in tile.members) + sum(pair_bytes(a, b) for a, b in tile.pairs)
        assert held <= budget, tile


def test_a_bad_budget_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match="memory budget must be a positive integer"):
        plan_tiles([(0, 1)], lambda i: 1, lambda a, b: 1, 0)


class CountingFamily:
    """A family whose fit is the representation's index: counts fits, scores pairs as a * 10 + b."""

    def __init__(self) -> None:
        self.fitted: list[int] = []
        self.held: set[int] = set()

    def fit_bytes(self, item: int) -> int:
        return 100

    def pair_bytes(self, a: int, b: int) -> int:
        return 0

    def fit(self, tile: Tile) -> None:
        self.held &= set(tile.members)
        for m in tile.members:
            if m not in self.held:
                self.fitted.append(m)
                self.held.add(m)

    def score(self, tile: Tile):
        for a, b in tile.pairs:
            assert a in self.held and b in self.held
            yield a, b, {"value": a * 10 + b}


def test_score_pairs_fits_each_representation_once_within_budget() -> None:
    pairs = [(a, b) for a in range(5) for b in range(a, 5)]
    family = CountingFamily()
    scored = {(a, b): v["value"] for a, b, v in score_pairs(family, pairs, budget=10**6)}
    assert scored == {(a, b): a * 10 + b for a, b in pairs}
    assert sorted(family.fitted) == list(range(5))
    tight = CountingFamily()
    again = {(a, b): v["value"] for a, b, v in score_pairs(tight, pairs, budget=250)}  # two fits at once
    assert again == scored and len(tight.fitted) > 5


def test_sample_family_tiled_equals_untiled_and_the_one_shot_function() -> None:
    rng = np.random.default_rng(0)
    latent = rng.standard_normal((60, 3))
    reps = [latent @ rng.standard_normal((3, w)) + 0.5 * rng.standard_normal((60, w)) for w in (4, 6, 5, 3)]
    sources = [RepresentationSource.from_array(i, r.astype(np.float32)) for i, r in enumerate(reps)]
    rows = np.arange(60)
    pairs = [(a, b) for a in range(4) for b in range(a, 4)]
    for name in ("rbf_cka", "rsa", "mutual_knn"):
        whole = SampleFamily(sources, name, rows, chunk_rows=16)
        values = {(a, b): v[name] for a, b, v in score_pairs(whole, pairs, budget=10**9)}
        assert whole.fitted == 4
        tiled = SampleFamily(sources, name, rows, chunk_rows=16)
        tiled_values = {(a, b): v[name] for a, b, v in score_pairs(tiled, pairs, budget=1)}
        assert tiled.fitted > 4
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for a, b in pairs:
                assert tiled_values[a, b] == pytest.approx(values[a, b], abs=1e-12)
                reference = measures.get(name).function(reps[a].astype(np.float32), reps[b].astype(np.float32))
                assert values[a, b] == pytest.approx(reference, abs=1e-9), (name, a, b)
