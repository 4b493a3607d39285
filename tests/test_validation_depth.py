"""Section 4 of the validation: Wolfram & Schein's claim 2 on text-level rows, mutual k-NN over every layer pair.

The arithmetic (relative depths, best matches, the Spearman of depths, the diagonal band and its chance
level) is checked on hand-made tables; a reduced run on the packaged MiniLM and SmolLM2 (150 texts) checks that
the numbers are computed end to end and finite.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reprsim.cli import main
from reprsim.validation import depth_alignment
from reprsim.validation.depth_alignment import (
    PAIR_COLUMNS,
    PAPER_CLAIM,
    DepthAlignmentConfig,
    DepthModel,
    best_match_table,
    depth_alignment_markdown,
    depth_spearman,
    depth_summary,
    installed_models,
    relative_depths,
    run_depth_alignment,
    write_depth_alignment,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MINILM = DepthModel("MiniLM", "minilm", "mean")
SMOLLM2 = DepthModel("SmolLM2", "smollm2", "last-token")


def synthetic_pairs(depth_a: int, depth_b: int, score: Callable[[float, float], float]) -> pd.DataFrame:
    """Every layer pair of two models, mutual k-NN given by score(relative depth a, relative depth b)."""
    da, db = relative_depths(range(depth_a + 1)), relative_depths(range(depth_b + 1))
    records = [("A", i, x, "B", j, y, score(x, y)) for i, x in enumerate(da) for j, y in enumerate(db)]
    return pd.DataFrame(records, columns=PAIR_COLUMNS)


def test_relative_depths_run_from_embeddings_to_the_last_block() -> None:
    np.testing.assert_allclose(relative_depths([0, 1, 2, 3, 4]), [0, 0.25, 0.5, 0.75, 1])
    with pytest.raises(ValueError, match=r"every layer 0 \.\. depth"):
        relative_depths([0, 2, 4])
    with pytest.raises(ValueError, match=r"every layer 0 \.\. depth"):
        relative_depths([0])


def test_a_diagonal_matrix_gives_spearman_one_and_a_band_above_the_rest() -> None:
    pairs = synthetic_pairs(4, 8, lambda x, y: 0.5 - abs(x - y) / 4)
    summary = depth_summary(pairs, texts=101, k=10, band=0.1, rows={"A": "mean", "B": "last-token"})
    assert list(summary[["model_a", "model_b"]].itertuples(index=False, name=None)) == [("A", "B"), ("B", "A")]
    a_to_b, b_to_a = summary.iloc[0], summary.iloc[1]
    assert np.allclose([a_to_b.spearman, a_to_b.mean_depth_offset, a_to_b.best_in_band], [1.0, 0.0, 1.0])
    # B's odd layers lie 0.125 from both neighbours in A and take the shallower one: ties, and off the band.
    assert 0.9 < b_to_a.spearman < 1.0
    assert np.isclose(b_to_a.mean_depth_offset, 4 * 0.125 / 9) and np.isclose(b_to_a.best_in_band, 5 / 9)
    assert np.allclose(summary.chance, 10 / 100) and (summary.texts == 101).all()
    # On a band of 0.1 only the 5 exact matches (0.5); the pairs 0.125 apart are off it.
    assert np.allclose(summary.band_mean, 0.5)
    off = pairs[(pairs.depth_a - pairs.depth_b).abs() > 0.1].mutual_knn.mean()
    assert np.allclose(summary.off_band_mean, off) and (summary.off_band_mean < summary.band_mean).all()
    assert np.allclose(summary.band_over_chance, 5.0)
    assert list(summary.layers_a) == [5, 9] and list(summary.layers_b) == [9, 5]


def test_an_anti_diagonal_matrix_gives_spearman_minus_one() -> None:
    pairs = synthetic_pairs(3, 3, lambda x, y: 1 - abs(x + y - 1))
    summary = depth_summary(pairs, texts=50, k=10, band=0.1, rows={"A": "mean", "B": "mean"})
    assert np.allclose(summary.spearman, -1.0)


def test_best_matches_take_the_shallowest_of_tied_layers_and_constant_matches_have_no_spearman() -> None:
    pairs = synthetic_pairs(2, 4, lambda x, y: 0.3)
    best = best_match_table(pairs)
    assert len(best) == 3 + 5
    assert (best.best_layer_b == 0).all()
    assert np.isnan(depth_spearman(np.array([0, 0.5, 1]), np.array([0.25, 0.25, 0.25])))
    summary = depth_summary(pairs, texts=50, k=10, band=0.1, rows={"A": "mean", "B": "mean"})
    assert summary.spearman.isna().all()
    assert "n/a" in depth_alignment_markdown(_result(pairs, summary))


def _result(pairs: pd.DataFrame, summary: pd.DataFrame) -> depth_alignment.DepthAlignmentResult:
    return depth_alignment.DepthAlignmentResult(
        config=DepthAlignmentConfig(models=(MINILM, SMOLLM2), texts=50),
        models=(MINILM, SMOLLM2),
        skipped=("mpnet",),
        pairs=pairs,
        best_matches=best_match_table(pairs),
        summary=summary,
        seconds={},
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, r"k must be in 1 \.\. texts - 2"),
        ({"texts": 11, "k": 10}, r"k must be in 1 \.\. texts - 2 = 9"),
        ({"band": 0.0}, r"band must be in \(0, 1\)"),
        ({"models": (MINILM, MINILM)}, "distinct names"),
    ],
)
def test_bad_configurations_are_clear_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DepthAlignmentConfig(**kwargs)  # type: ignore[arg-type]


def test_bad_models_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="rows must be one of last-token, mean, first-token, got 'word'"):
        DepthModel("MiniLM", "minilm", "word")
    with pytest.raises(ValueError, match="unknown preset 'bert'"):
        DepthModel("BERT", "bert", "mean")


def test_presets_size_the_run() -> None:
    assert DepthAlignmentConfig.preset_named("full").texts == 500
    assert DepthAlignmentConfig.preset_named("quick").texts == 300
    assert [m.rows for m in DepthAlignmentConfig().models] == ["mean", "mean", "last-token", "last-token"]


def test_fewer_than_two_installed_models_stop_the_cli_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def only_minilm(preset: str) -> None:
        if preset != "minilm":
            raise FileNotFoundError(f"no {preset}")

    monkeypatch.setattr(depth_alignment, "require_installed", only_minilm)
    with pytest.raises(FileNotFoundError, match="only \\['minilm'\\]"):
        installed_models(DepthAlignmentConfig())
    code = main(["validate", "--preset", "smoke", "--depth-alignment", "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 1
    assert "--no-depth-alignment" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_reduced_run_on_minilm_and_smollm2(tmp_path: Path) -> None:
    config = DepthAlignmentConfig(models=(MINILM, SMOLLM2), texts=150)
    result = run_depth_alignment(config, tmp_path / "run", progress=False)
    assert result.models == (MINILM, SMOLLM2) and result.skipped == ()
    assert len(result.pairs) == 7 * 31
    assert result.pairs.mutual_knn.between(0, 1).all()
    assert len(result.best_matches) == 7 + 31
    summary = result.summary
    assert list(summary.model_a) == ["MiniLM", "SmolLM2"] and list(summary.model_b) == ["SmolLM2", "MiniLM"]
    assert list(summary.rows_a) == ["mean", "last-token"]
    assert np.allclose(summary.chance, 10 / 149)
    numbers = ["spearman", "mean_depth_offset", "best_in_band", "band_mean", "off_band_mean", "band_over_chance"]
    assert np.isfinite(summary[numbers].to_numpy()).all(), summary
    assert summary.band_mean.nunique() == 1  # one band of one symmetric matrix, seen from either side
    written = write_depth_alignment(result, tmp_path / "out")
    assert {p.name for p in written} == {
        "depth_alignment.csv", "depth_alignment_pairs.csv", "depth_alignment_best.csv", "depth_alignment.md"
    }
    text = (tmp_path / "out" / "depth_alignment.md").read_text()
    assert PAPER_CLAIM in text and "| MiniLM | SmolLM2 | 7 x 31 |" in text and f"{10 / 149:.4f}" in text
    assert pd.read_csv(tmp_path / "out" / "depth_alignment.csv").shape == (2, len(depth_alignment.SUMMARY_COLUMNS))
