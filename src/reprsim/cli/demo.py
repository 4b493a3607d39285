"""`reprsim demo`: the built-in study on real packaged models, their random controls and the built-in corpus."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprsim.cli import add_quiet, command_parser, int_at_least
from reprsim.cli.compare import add_inference_options, inference_arguments

if TYPE_CHECKING:  # the study module loads only when the demo runs
    from reprsim.study import Study

# SmolLM2 has 30 blocks; every fifth keeps the demo within its time budget on 2 cores while spanning depth.
SMOLLM2_LAYERS = list(range(0, 31, 5))


# The demo's measures: those of Wu et al. 2020 and Kornblith et al. 2019 with RSA, mutual k-NN and the attention
# measures (what the README's table reports), not every measure of the registry.
DEMO_MEASURES = (
    "maxsim", "linreg", "r2_lr", "cca_r2", "cca_rho", "svcca", "pwcca", "linear_cka", "debiased_cka", "rbf_cka",
    "procrustes", "procrustes_distance", "angular_distance", "rsa", "mutual_knn", "attention_js",
    "attention_pearson", "attention_cka",
)


def _demo_config(out: Path, sentences: int, statistics: dict[str, Any] | None = None) -> dict[str, object]:
    """Write the demo as a study config, so that it takes the same path as ``reprsim run``.

    `statistics` holds the compare keys of the statistics (``ci``, ``null``, ``blocks``, ...); none by default,
    because the linear measures' jackknife costs several times the comparison (docs: guide/statistics).
    """
    compare: dict[str, object] = {"measures": list(DEMO_MEASURES), "subsample_rows": 2000, "attention_sentences": 100}
    compare.update(statistics or {})
    return {
        "name": "demo",
        "corpus": {"source": "builtin", "max_sentences": sentences, "max_words": 40},
        "models": [
            {"name": "MiniLM", "model": "minilm"},
            {"name": "MiniLM-random", "model": "minilm-random"},
            {"name": "SmolLM2", "model": "smollm2", "layers": SMOLLM2_LAYERS},
            {"name": "SmolLM2-random", "model": "smollm2-random", "layers": SMOLLM2_LAYERS},
        ],
        "extraction": {"subword": "last", "attention": True, "batch_size": 32},
        "compare": compare,
        "output": {"dir": str(out)},
    }


def demo_study(args: argparse.Namespace) -> Study:
    """The demo's parsed study (`reprsim.study.Study`) under the parsed ``reprsim demo`` options."""
    from reprsim.study import parse_study

    return parse_study(_demo_config(Path(args.out).resolve(), args.sentences, inference_arguments(args)), Path.cwd())


def run(args: argparse.Namespace) -> int:
    """Run the demo study: MiniLM and SmolLM2 (every fifth layer) and their random controls on the built-in corpus.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``reprsim demo`` options (``--out``, ``--sentences``, ``--quiet`` and the statistics
        options of ``reprsim compare``).

    Returns
    -------
    int
        0.

    Raises
    ------
    ValueError
        If a packaged model is missing or the study fails (see `reprsim.pipeline.run_study`).
    """
    from reprsim.cli.run import summary_lines
    from reprsim.pipeline import run_study

    study = demo_study(args)
    start = time.perf_counter()
    outputs = run_study(study, progress=not args.quiet, command=getattr(args, "command_line", None))
    minutes = (time.perf_counter() - start) / 60
    print(f"demo finished in {minutes:.1f} min")
    print("\n".join(summary_lines(outputs)))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand and its options to the ``reprsim`` parser.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The subparsers of the ``reprsim`` parser (see `reprsim.cli.build_parser`).
    """
    p = command_parser(
        sub,
        "demo",
        help="built-in study: MiniLM and SmolLM2 vs random controls, with report",
        description=(
            "Run the built-in study: MiniLM and SmolLM2 (every fifth layer) and their random-weight controls on "
            "the built-in corpus, every measure, and the report. Needs the packaged models "
            "(`scripts/setup.sh`); a re-run reuses what is finished."
        ),
    )
    p.add_argument("--out", default="reprsim-out/demo", help="output folder (store, results, report)")
    p.add_argument("--sentences", type=int_at_least(1), default=1000, help="built-in corpus sentences to use")
    add_inference_options(p)
    add_quiet(p)
    p.set_defaults(func=run)
