"""`reprsim quick`: a few measures on generated data, in seconds, with no model or corpus needed.

Useful as a smoke test of an installation: three synthetic representations (a base, an orthogonal rotation of
it plus noise, and unrelated noise) compared on every representation-level measure.
"""

from __future__ import annotations

import argparse

import numpy as np

from reprsim.cli import int_at_least


def _synthetic_representations(n: int, p: int, seed: int) -> dict[str, np.ndarray]:
    """Generate a low-rank base matrix, a rotated noisy copy of it, and independent noise, each (n, p)."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 8))
    base = latent @ rng.standard_normal((8, p)) + 0.3 * rng.standard_normal((n, p))
    rotation, _ = np.linalg.qr(rng.standard_normal((p, p)))
    rotated = base @ rotation + 0.3 * rng.standard_normal((n, p))
    noise = rng.standard_normal((n, p))
    return {"base": base, "rotated": rotated, "noise": noise}


def run(args: argparse.Namespace) -> int:
    """Print every representation-level measure on three synthetic pairs (base vs itself, rotated, noise).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``reprsim quick`` options (``--rows``, ``--width``, ``--seed``).

    Returns
    -------
    int
        0.
    """
    import warnings

    from reprsim import measures

    reps = _synthetic_representations(args.rows, args.width, args.seed)
    names = [m for m in measures.available() if measures.get(m).level != "attention"]
    pairs = [("base", "base"), ("base", "rotated"), ("base", "noise")]
    header = f"{'measure':<22}" + "".join(f"{a + ' vs ' + b:>18}" for a, b in pairs)
    print(f"{args.rows} rows x {args.width} neurons; base = low-rank signal + noise")
    print(header)
    print("-" * len(header))
    for name in names:
        fn = measures.get(name).function
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = [float(fn(reps[a], reps[b])) for a, b in pairs]
        print(f"{name:<22}" + "".join(f"{v:>18.4f}" for v in values))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``quick`` subcommand and its options to the ``reprsim`` parser.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The subparsers of the ``reprsim`` parser (see `reprsim.cli.build_parser`).
    """
    p = sub.add_parser("quick", help="compute every measure on generated data and print a table")
    p.add_argument("--rows", type=int_at_least(2), default=2000, help="rows (words) per representation")
    p.add_argument("--width", type=int_at_least(2), default=64, help="neurons per representation")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)
