"""`reprsim quick`: a few measures on generated data, in seconds, with no model or corpus needed.

Useful as a smoke test of an installation: three synthetic representations (a base, a copy of it rotated by a
random orthogonal matrix with fresh noise added, and unrelated noise) compared on every representation-level
measure. The header says how each was made, so that the columns can be read: measures invariant to rotations
score the rotated copy close to the base itself, neuron-level ones do not.
"""

from __future__ import annotations

import argparse

import numpy as np

from reprsim.cli import command_parser, int_at_least

LATENT_DIMS = 8  # rank of the base's signal
NOISE_SD = 0.3  # sd of the noise added to the base's signal, and again to the rotated copy


def _synthetic_representations(n: int, p: int, seed: int) -> dict[str, np.ndarray]:
    """Generate a low-rank base matrix, a rotated noisy copy of it, and independent noise, each (n, p)."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, LATENT_DIMS))
    base = latent @ rng.standard_normal((LATENT_DIMS, p)) + NOISE_SD * rng.standard_normal((n, p))
    rotation, _ = np.linalg.qr(rng.standard_normal((p, p)))
    rotated = base @ rotation + NOISE_SD * rng.standard_normal((n, p))
    noise = rng.standard_normal((n, p))
    return {"base": base, "rotated": rotated, "noise": noise}


def header_lines(rows: int, width: int) -> list[str]:
    """Describe the three synthetic representations, above the table of `run`.

    Parameters
    ----------
    rows : int
        Rows (words) per representation.
    width : int
        Neurons per representation.

    Returns
    -------
    list of str
        One line for the shapes, then one per representation: how it was made.
    """
    return [
        f"{rows} rows x {width} neurons each:",
        f"  base     = rank-{LATENT_DIMS} signal + Gaussian noise (sd {NOISE_SD})",
        f"  rotated  = the base times a random {width} x {width} orthogonal rotation, plus fresh Gaussian noise "
        f"(sd {NOISE_SD})",
        "  noise    = independent standard Gaussian noise, unrelated to the base",
    ]


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
    print("\n".join(header_lines(args.rows, args.width)))
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
    p = command_parser(
        sub,
        "quick",
        help="compute every measure on generated data and print a table",
        description=(
            "Compare a synthetic base representation with itself, with a rotated noisy copy of it and with "
            "unrelated noise on every representation-level measure, in seconds, with no model or corpus: a "
            "check of an installation."
        ),
    )
    p.add_argument("--rows", type=int_at_least(2), default=2000, help="rows (words) per representation")
    p.add_argument("--width", type=int_at_least(2), default=64, help="neurons per representation")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated data")
    p.set_defaults(func=run)
