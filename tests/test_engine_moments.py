"""CrossMoments: centred blocks, row-norm sums, merging, extension, chunking and input checks.

References are plain numpy: centre the columns and multiply.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reprsim.engine.moments import CrossMoments, resolve_device

RNG = np.random.default_rng(20240501)


def make_reps(n: int, widths: list[int], offset: float = 0.0, seed: int = 0) -> list[np.ndarray]:
    """Correlated representations (shared latent) with per-neuron scales and means."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 3))
    reps = []
    for w in widths:
        x = latent @ rng.standard_normal((3, w)) + rng.standard_normal((n, w)) * rng.uniform(0.3, 3.0, w)
        reps.append(x + rng.normal(0.0, 2.0, w) + offset)
    return reps


def stream(
    m: CrossMoments, reps: list[np.ndarray], chunk: int, start: int = 0, stop: int | None = None
) -> None:
    stop = reps[0].shape[0] if stop is None else stop
    for s in range(start, stop, chunk):
        m.update([r[s : min(s + chunk, stop)] for r in reps])


def centred_product(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return (x - x.mean(axis=0)).T @ (y - y.mean(axis=0))


def centred_norm_product(x: np.ndarray, y: np.ndarray) -> float:
    """sum_i |x_i - mean|^2 |y_i - mean|^2 by a plain loop over rows."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    return float(sum(float(xc[i] @ xc[i]) * float(yc[i] @ yc[i]) for i in range(x.shape[0])))


def assert_blocks_match(m: CrossMoments, reps: list[np.ndarray], rtol: float = 1e-10) -> None:
    for a in range(len(reps)):
        for b in range(len(reps)):
            if not m.has_block(a, b):
                continue
            expected = centred_product(reps[a], reps[b])
            got = m.centred(a, b).numpy()
            scale = np.abs(expected).max()
            assert np.abs(got - expected).max() <= rtol * scale, (a, b)


@pytest.mark.parametrize("chunk", [2, 7, 64, 300])
@pytest.mark.parametrize("widths", [[5, 3], [4, 6, 2], [12, 12]])
def test_centred_blocks_match_numpy_for_any_chunking(chunk: int, widths: list[int]) -> None:
    reps = make_reps(300, widths)
    m = CrossMoments(widths, device="cpu")
    stream(m, reps, chunk)
    assert m.n_rows() == 300
    assert_blocks_match(m, reps)
    for a, rep in enumerate(reps):
        np.testing.assert_allclose(m.mean(a).numpy(), rep.mean(axis=0), rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(m.column_absmax(a).numpy(), np.abs(rep).max(axis=0))


def test_shift_removes_cancellation_with_huge_means() -> None:
    """Means 1e7 x the spread: raw sums minus s s^T / n keep about 2 of 16 digits; the shift keeps all."""
    base = make_reps(500, [4, 3], seed=3)
    reps = [b + 1e7 for b in base]
    m = CrossMoments([4, 3], device="cpu")
    stream(m, reps, 64)
    for a in range(2):
        for b in range(2):
            expected = centred_product(base[a], base[b])  # the offset does not change centred products
            got = m.centred(a, b).numpy()
            assert np.abs(got - expected).max() <= 1e-7 * np.abs(expected).max()
    # the naive formula on the same data is visibly wrong (documents what the shift protects against)
    x = reps[0]
    naive = x.T @ x - np.outer(x.sum(0), x.sum(0)) / x.shape[0]
    assert np.abs(naive - centred_product(base[0], base[0])).max() > 1e-5 * np.abs(naive).max()


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_low_precision_inputs_are_accumulated_in_float64(dtype: type) -> None:
    reps = [r.astype(dtype) for r in make_reps(200, [6, 5], offset=100.0)]
    m = CrossMoments([6, 5], device="cpu")
    stream(m, reps, 33)
    assert_blocks_match(m, reps, rtol=1e-11)


def test_torch_input_and_float64_input_are_not_modified() -> None:
    reps = make_reps(50, [3, 2])
    before = [r.copy() for r in reps]
    m = CrossMoments([3, 2], device="cpu")
    m.update([reps[0], torch.from_numpy(reps[1])])
    for r, b in zip(reps, before, strict=True):
        np.testing.assert_array_equal(r, b)
    assert_blocks_match(m, reps)


def test_row_norm_product_matches_a_loop() -> None:
    reps = make_reps(120, [4, 5, 3], offset=50.0)
    m = CrossMoments([4, 5, 3], row_norms=True, device="cpu")
    stream(m, reps, 17)
    for a in range(3):
        for b in range(3):
            expected = centred_norm_product(reps[a], reps[b])
            assert m.centred_norm_product(a, b) == pytest.approx(expected, rel=1e-10)


def test_requested_pairs_only_plus_diagonals() -> None:
    widths = [3, 4, 2, 5]
    reps = make_reps(80, widths)
    m = CrossMoments(widths, pairs=[(3, 0), (1, 2)], device="cpu")
    assert m.blocks == [(0, 0), (0, 3), (1, 1), (1, 2), (2, 2), (3, 3)]
    stream(m, reps, 9)
    assert m.multiply_adds == 80 * (9 + 15 + 16 + 8 + 4 + 25)
    assert_blocks_match(m, reps)
    np.testing.assert_allclose(m.centred(3, 0).numpy(), centred_product(reps[3], reps[0]), rtol=1e-10)
    with pytest.raises(KeyError, match=r"block \(0, 1\) was not requested"):
        m.centred(0, 1)


def test_symmetric_pass_costs_half_of_the_full_product() -> None:
    widths = [4, 4, 4]
    reps = make_reps(40, widths)
    m = CrossMoments(widths, device="cpu")
    stream(m, reps, 40)
    d = sum(widths)
    # blocks a <= b: the upper triangle of Z^T Z (with the diagonal blocks in full)
    assert m.multiply_adds == 40 * (d * d + sum(w * w for w in widths)) // 2


def test_merge_of_shards_equals_one_pass() -> None:
    widths = [5, 3, 4]
    reps = make_reps(301, widths, offset=1e3, seed=5)
    whole = CrossMoments(widths, row_norms=True, device="cpu")
    stream(whole, reps, 64)
    first = CrossMoments(widths, row_norms=True, device="cpu")
    second = CrossMoments(widths, row_norms=True, device="cpu")
    third = CrossMoments(widths, row_norms=True, device="cpu")  # stays empty
    stream(first, reps, 10, 0, 97)  # different first chunks: different shifts
    stream(second, reps, 25, 97, 301)
    first.merge(second).merge(third)
    assert first.n_rows() == 301
    assert first.multiply_adds == whole.multiply_adds
    assert_blocks_match(first, reps, rtol=1e-10)
    for a in range(3):
        np.testing.assert_allclose(first.mean(a).numpy(), reps[a].mean(axis=0), rtol=1e-12)
        np.testing.assert_array_equal(first.column_absmax(a).numpy(), np.abs(reps[a]).max(axis=0))
        for b in range(a, 3):
            expected = centred_norm_product(reps[a], reps[b])
            assert first.centred_norm_product(a, b) == pytest.approx(expected, rel=1e-9)


def test_merge_into_an_empty_accumulator() -> None:
    reps = make_reps(60, [3, 3])
    empty = CrossMoments([3, 3], device="cpu")
    full = CrossMoments([3, 3], device="cpu")
    stream(full, reps, 8)
    empty.merge(full)
    assert_blocks_match(empty, reps)


def test_merge_rejects_different_layouts() -> None:
    with pytest.raises(ValueError, match="different widths or blocks"):
        CrossMoments([3, 2], device="cpu").merge(CrossMoments([3, 3], device="cpu"))
    with pytest.raises(ValueError, match="row_norms"):
        CrossMoments([3], device="cpu").merge(CrossMoments([3], row_norms=True, device="cpu"))


def test_adding_a_representation_computes_only_its_blocks() -> None:
    widths, new = [4, 3], [5, 2]
    reps = make_reps(150, widths + new, seed=9)
    old = CrossMoments(widths, row_norms=True, device="cpu")
    stream(old, reps[:2], 16)
    kept = {k: old.centred(*k).clone() for k in old.blocks}
    old_products = [panel.product for panel in old._panels]
    grown = old.with_representations(new)
    assert grown.pending_blocks == [(0, 2), (0, 3), (1, 2), (1, 3), (2, 2), (2, 3), (3, 3)]
    stream(grown, reps, 23)  # the old chunks stream again, the old blocks are not recomputed
    assert grown.multiply_adds == 150 * sum(
        (widths + new)[a] * (widths + new)[b] for a, b in grown.pending_blocks
    )
    for k, value in kept.items():
        assert torch.equal(grown.centred(*k), value)
    assert [p.product for p in grown._panels[: len(old_products)]] == old_products  # the same tensors
    assert_blocks_match(grown, reps)
    for a in range(4):
        assert grown.centred_norm_product(a, 3) == pytest.approx(
            centred_norm_product(reps[a], reps[3]), rel=1e-9
        )


def test_adding_a_representation_with_chosen_pairs_needs_only_their_chunks() -> None:
    reps = make_reps(90, [3, 4, 2], seed=11)
    old = CrossMoments([3, 4], device="cpu")
    stream(old, reps[:2], 30)
    grown = old.with_representations([2], pairs=[(1, 2)])
    assert grown.pending_blocks == [(1, 2), (2, 2)]
    assert grown.needed() == [False, True, True]
    for s in range(0, 90, 30):
        grown.update([None, reps[1][s : s + 30], reps[2][s : s + 30]])
    assert grown.multiply_adds == 90 * (4 * 2 + 2 * 2)
    assert_blocks_match(grown, reps)


def test_extension_pass_with_a_different_row_count_is_refused() -> None:
    reps = make_reps(50, [3, 2])
    old = CrossMoments([3], device="cpu")
    stream(old, reps[:1], 10)
    grown = old.with_representations([2])
    stream(grown, [reps[0][:40], reps[1][:40]], 10)
    with pytest.raises(ValueError, match="every pass must stream the same rows"):
        grown.centred(0, 1)


def test_float32_products_stay_close_to_float64() -> None:
    reps = make_reps(2000, [20, 15], offset=10.0)
    exact = CrossMoments([20, 15], device="cpu")
    fast = CrossMoments([20, 15], precision="float32", device="cpu")
    stream(exact, reps, 512)
    stream(fast, reps, 512)
    for a, b in [(0, 0), (0, 1), (1, 1)]:
        e, f = exact.centred(a, b).numpy(), fast.centred(a, b).numpy()
        assert np.abs(e - f).max() <= 1e-5 * np.abs(e).max()
        assert np.abs(e - f).max() > 0.0  # it really is a different (float32) product


def test_generator_of_chunks_is_consumed_lazily() -> None:
    reps = make_reps(30, [2, 3])
    m = CrossMoments([2, 3], device="cpu")
    m.update(r for r in reps)
    assert_blocks_match(m, reps)


def test_auto_device_falls_back_to_cpu() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    m = CrossMoments([2], device="auto")
    assert m.device.type == expected


@pytest.mark.parametrize(
    ("chunks", "message"),
    [
        ([np.ones((4, 3)), np.ones((5, 2))], "same rows"),
        ([np.ones((4, 3)), np.ones((4, 3))], "expected width 2"),
        ([np.ones((4, 3))], "expected 2"),
        ([np.ones((4, 3)), np.ones((4, 2)), np.ones((4, 2))], "more than 2"),
        ([np.ones((4, 3)), None], "needed but None"),
        ([np.ones((4, 3)), np.full((4, 2), np.nan)], "NaN"),
        ([np.ones(4), np.ones((4, 2))], "2-D"),
    ],
)
def test_bad_chunks_are_refused_with_a_clear_message(chunks: list[np.ndarray | None], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CrossMoments([3, 2], device="cpu").update(chunks)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"widths": [3, 0]}, r"widths\[1\]"),
        ({"widths": []}, "empty"),
        ({"widths": [3], "precision": "float16"}, "precision"),
        ({"widths": [3], "device": "tpu"}, "device"),
        ({"widths": [3, 2], "pairs": [(0, 2)]}, "not in 0..1"),
        ({"widths": [3, 2], "pairs": "some"}, "pairs must be"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CrossMoments(**kwargs)


def test_reading_before_any_rows_is_an_error() -> None:
    with pytest.raises(ValueError, match="no rows yet"):
        CrossMoments([2, 2], device="cpu").centred(0, 1)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_low_precision_inputs_with_float32_products_match_numpy(dtype: type) -> None:
    """float16/float32 rows are staged as they are (exact in float32) and shifted there."""
    reps = [r.astype(dtype) for r in make_reps(3000, [6, 5], offset=100.0, seed=4)]
    m = CrossMoments([6, 5], precision="float32", device="cpu")
    stream(m, reps, 700)
    assert_blocks_match(m, reps, rtol=1e-5)
    for a, rep in enumerate(reps):
        np.testing.assert_allclose(m.mean(a).numpy(), rep.astype(np.float64).mean(axis=0), rtol=1e-7)
        np.testing.assert_array_equal(m.column_absmax(a).numpy(), np.abs(rep.astype(np.float64)).max(axis=0))


def test_float64_rows_with_huge_means_keep_their_digits_in_float32_products() -> None:
    """Means 1e6 x the spread: rounding the rows to float32 before the shift would leave about 0.03 of
    error in each value (float32 spacing at 1e6 is 0.0625); shifting in float64 first keeps float32's 1e-7."""
    base = make_reps(2000, [5, 4], seed=5)
    reps = [b + 1e6 for b in base]
    m = CrossMoments([5, 4], precision="float32", device="cpu")
    stream(m, reps, 500)
    for a in range(2):
        for b in range(2):
            expected = centred_product(base[a], base[b])
            assert np.abs(m.centred(a, b).numpy() - expected).max() <= 1e-5 * np.abs(expected).max()
        np.testing.assert_allclose(m.mean(a).numpy(), reps[a].mean(axis=0), rtol=1e-12)
    rounded = [r.astype(np.float32).astype(np.float64) for r in reps]  # what staging without the shift would see
    error = np.abs(centred_product(rounded[0], rounded[0]) - centred_product(base[0], base[0])).max()
    assert error > 1e-4 * np.abs(centred_product(base[0], base[0])).max()


def test_values_that_overflow_float32_products_are_refused() -> None:
    x = np.array([[1e39, 1.0], [-1e39, 2.0], [0.0, 3.0]])  # finite float64, shift 0: beyond float32
    m = CrossMoments([2], precision="float32", device="cpu")
    with pytest.raises(ValueError, match=r"representation 0.*overflow.*precision='float64'"):
        m.update([x])
    exact = CrossMoments([2], device="cpu")
    exact.update([x])
    np.testing.assert_allclose(exact.centred(0, 0).numpy(), centred_product(x, x), rtol=1e-12)


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_values_whose_squared_products_overflow_float64_are_refused(precision: str) -> None:
    """Linear CKA squares cross-product entries: at 1e76 they overflow float64 and CKA came out 0."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((50, 3)) * 1e76
    m = CrossMoments([3], precision=precision, device="cpu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"representation 0.*derivations that square them.*rescale"):
        m.update([x])
    CrossMoments([3], precision=precision, device="cpu").update([x * 1e-70])  # type: ignore[arg-type]


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_non_finite_low_precision_input_is_named_with_its_row(precision: str) -> None:
    bad = np.ones((6, 2), dtype=np.float16)
    bad[4, 1] = np.inf
    m = CrossMoments([3, 2], precision=precision, device="cpu")  # type: ignore[arg-type]
    message = r"chunk of representation 1 contains 1 NaN or Inf value\(s\) \(first in row 4\)"
    with pytest.raises(ValueError, match=message):
        m.update([np.ones((6, 3), dtype=np.float16), bad])


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_a_refused_chunk_leaves_the_moments_as_they_were(precision: str) -> None:
    reps = make_reps(90, [3, 2], seed=6)
    m = CrossMoments([3, 2], precision=precision, device="cpu")  # type: ignore[arg-type]
    stream(m, reps, 30, stop=60)
    with pytest.raises(ValueError, match="NaN"):
        m.update([reps[0][60:], np.full((30, 2), np.nan)])  # the first representation was already staged
    stream(m, reps, 30, start=60)
    assert m.n_rows() == 90
    assert_blocks_match(m, reps, rtol=1e-10 if precision == "float64" else 1e-5)


def test_released_buffers_are_allocated_again_by_the_next_update() -> None:
    reps = make_reps(100, [4, 3], seed=7)
    m = CrossMoments([4, 3], precision="float32", device="cpu")
    stream(m, reps, 40, stop=80)
    m.release_buffers()
    stream(m, reps, 40, start=80)
    assert_blocks_match(m, reps, rtol=1e-5)


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_a_refused_first_chunk_sets_no_shift(precision: str) -> None:
    """The shift comes from the first chunk that is accepted, not from one refused with it."""
    huge = make_reps(40, [3], offset=1e8, seed=8)[0]
    good = make_reps(60, [3, 2], seed=9)
    m = CrossMoments([3, 2], precision=precision, device="cpu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NaN"):
        m.update([huge, np.full((40, 2), np.nan)])
    stream(m, good, 20)
    assert_blocks_match(m, good, rtol=1e-10 if precision == "float64" else 1e-5)
    overflow = CrossMoments([2], precision="float32", device="cpu")
    with pytest.raises(ValueError, match="overflow"):
        overflow.update([np.array([[1e39, 1.0], [-1e39, 2.0], [0.0, 3.0]])])  # shifted by 0: beyond float32
    overflow.update([good[1]])  # its shift comes from these rows
    assert_blocks_match(overflow, [good[1]], rtol=1e-5)
    np.testing.assert_allclose(overflow.mean(0).numpy(), good[1].mean(axis=0), rtol=1e-6)


def test_float32_moments_merged_from_a_float64_shard_keep_their_digits() -> None:
    """A shift taken over from a float64 shard is not exact in float32: such rows are shifted in float64."""
    reps = make_reps(2000, [4, 3], offset=1e6 + 0.3, seed=10)
    shard = CrossMoments([4, 3], device="cpu")
    stream(shard, reps, 500, stop=1000)
    merged = CrossMoments([4, 3], precision="float32", device="cpu")
    merged.merge(shard)
    stream(merged, [r.astype(np.float32) for r in reps], 500, start=1000)
    rows = [np.concatenate([r[:1000], r[1000:].astype(np.float32)]) for r in reps]
    assert_blocks_match(merged, rows, rtol=1e-5)
    for a in range(2):
        np.testing.assert_allclose(merged.mean(a).numpy(), rows[a].mean(axis=0), rtol=1e-12)


def test_values_whose_products_could_overflow_float32_are_refused() -> None:
    """|z| = 1e18 on 400 rows: a diagonal entry of the product is 4e38, beyond float32's 3.4e38. The bound
    rows x max|z|^2 refuses the chunk before anything is added (the product would silently be inf)."""
    rng = np.random.default_rng(12)
    x = rng.choice([-1e18, 1e18], size=(400, 2))
    m = CrossMoments([2], precision="float32", device="cpu")
    message = r"could overflow float32 cross-products over 400 rows .*; use precision='float64'"
    with pytest.raises(ValueError, match=message):
        m.update([x])
    exact = CrossMoments([2], device="cpu")
    exact.update([x])
    np.testing.assert_allclose(exact.centred(0, 0).numpy(), centred_product(x, x), rtol=1e-12)
    small = CrossMoments([2], precision="float32", device="cpu")
    small.update([x / 1e9])  # far inside the bound: accepted and right
    np.testing.assert_allclose(small.centred(0, 0).numpy(), centred_product(x / 1e9, x / 1e9), rtol=1e-5)


def test_a_cuda_torch_device_is_checked_like_the_string():
    if torch.cuda.is_available():
        assert resolve_device(torch.device("cuda")).type == "cuda"
    else:
        with pytest.raises(ValueError, match="CUDA is not available; use device='auto'"):
            resolve_device(torch.device("cuda"))
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
