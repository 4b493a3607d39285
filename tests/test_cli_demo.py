"""`reprsim demo`'s options reach its study: the statistics keys of ``compare`` (off unless asked)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reprsim.cli import build_parser
from reprsim.cli.demo import DEMO_MEASURES, demo_study


def _study(tmp_path: Path, argv: list[str]):
    return demo_study(build_parser().parse_args(["demo", "--out", str(tmp_path), *argv]))


def test_demo_has_no_statistics_by_default(tmp_path):
    compare = _study(tmp_path, []).compare
    assert (compare.ci, compare.null) == ("none", "none")
    assert tuple(compare.measures) == DEMO_MEASURES


def test_demo_statistics_options_reach_the_study(tmp_path):
    compare = _study(tmp_path, ["--ci", "jackknife", "--null", "analytic", "--blocks", "20", "--alpha", "0.1",
                                "--jackknife", "exact"]).compare
    assert (compare.ci, compare.null, compare.blocks, compare.alpha) == ("jackknife", "analytic", 20, 0.1)
    assert compare.jackknife == "exact" and compare.inference_arguments()["jackknife"] == "exact"


def test_demo_bad_statistics_option_names_the_key(tmp_path):
    with pytest.raises(ValueError, match=r"compare\.resamples"):
        _study(tmp_path, ["--resamples", "0"])
