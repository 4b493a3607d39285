"""`reprsim measures`: every registered measure with its level, direction and a one-line description."""

from __future__ import annotations

import argparse

from reprsim.cli import command_parser

COLUMNS = ("measure", "level", "larger means", "direction", "description")


def measure_rows(level: str | None = None) -> list[dict[str, str]]:
    """Describe the registered measures, one row each, in registry order.

    Parameters
    ----------
    level : str, optional
        Only the measures of this level (``"neuron"``, ``"mixed"``, ``"distributed"``, ``"attention"``).

    Returns
    -------
    list of dict
        For each measure: its name, level, what a larger value means ("more similar" or "more different",
        a distance), its direction ("symmetric", or "X -> Y" for a directed measure: how well X is
        reproduced from Y) and its one-line description, keyed by `COLUMNS`.

    Raises
    ------
    ValueError
        If `level` is not a known level.
    """
    from reprsim import measures

    rows = []
    for name in measures.available(level):
        info = measures.get(name)
        rows.append({
            "measure": info.name,
            "level": info.level,
            "larger means": "more similar" if info.larger_is_similar else "more different",
            "direction": "symmetric" if info.symmetric else "X -> Y",
            "description": info.description,
        })
    return rows


def format_table(rows: list[dict[str, str]]) -> str:
    """Lay rows out as a plain-text table with a header, columns padded to their widest cell.

    Parameters
    ----------
    rows : list of dict
        Rows keyed by `COLUMNS`.

    Returns
    -------
    str
        The table, one line per row after the header and a rule.
    """
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in COLUMNS}
    lines = ["  ".join(c.ljust(widths[c]) for c in COLUMNS).rstrip()]
    lines.append("  ".join("-" * widths[c] for c in COLUMNS))
    lines += ["  ".join(r[c].ljust(widths[c]) for c in COLUMNS).rstrip() for r in rows]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the table of measures (see `measure_rows`).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``reprsim measures`` options (``--level``).

    Returns
    -------
    int
        0.
    """
    rows = measure_rows(args.level)
    print(format_table(rows))
    print(f"\n{len(rows)} measures. Options go in parentheses (`svcca(keep=0.9)`); the user guide's Measures page "
          "and the measure reference give each one's definition, invariances and reference.")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``measures`` subcommand and its options to the ``reprsim`` parser.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The subparsers of the ``reprsim`` parser (see `reprsim.cli.build_parser`).
    """
    from reprsim.measures.registry import LEVELS

    p = command_parser(
        sub,
        "measures",
        help="list every measure with its level, direction and a one-line description",
        description=(
            "List the registered measures, the names `reprsim compare --measures` and a study's "
            "`compare.measures` take: level (neuron, mixed, distributed, attention), what a larger value "
            "means (distances: more different), direction (symmetric, or directed X -> Y: how well X is "
            "reproduced from Y) and a one-line description."
        ),
    )
    p.add_argument("--level", choices=LEVELS, default=None, help="only the measures of this level (default: all)")
    p.set_defaults(func=run)
