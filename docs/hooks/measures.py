"""mkdocs hook: writes the measure reference (docs/reference/measures.md) from the measure registry at build time.

The page's source holds a marker line; everything about each measure comes from `reprsim.measures.get(name)`,
so the reference cannot drift from what the code does.
"""

from __future__ import annotations

from typing import Any

MARKER = "<!-- measure-reference -->"
PAGE = "reference/measures.md"

LEVEL_TITLES = {
    "neuron": "Neuron level",
    "mixed": "Mixed (subspace) level",
    "distributed": "Distributed (representation) level",
    "attention": "Attention level",
}
INVARIANCE_NAMES = {
    "permutation": "permutation",
    "orthogonal": "orthogonal maps",
    "isotropic_scaling": "isotropic scaling",
    "invertible_linear": "invertible linear maps",
    "invertible_linear_y_only": "invertible linear maps of Y only",
}


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _invariances(info: Any, attention: bool) -> str:
    names = [INVARIANCE_NAMES.get(name, name) for name in sorted(info.invariances)]
    if attention:
        names = ["permuting heads" if name == "permutation" else name for name in names]
    return ", ".join(names) if names else "none"


def measure_section(info: Any) -> str:
    """One measure's section: its facts as a table, then definition, convention and reference.

    Parameters
    ----------
    info
        A `reprsim.measures.MeasureInfo`.

    Returns
    -------
    str
        Markdown, starting with a level-3 heading named after the measure.
    """
    attention = info.level == "attention"
    direction = "symmetric" if info.symmetric else "directed: f(X, Y) = sim(X → Y)"
    rows = [
        ("function", f"`reprsim.measures.{info.name}`"),
        ("level", info.level),
        ("direction", direction),
        ("larger is similar", _yes_no(info.larger_is_similar) + ("" if info.larger_is_similar else " (a distance)")),
        ("invariant to", _invariances(info, attention)),
        ("streamable", _yes_no(info.streamable)),
        ("needs a row subsample", _yes_no(info.needs_subsample)),
        ("cost", info.cost),
    ]
    repository_id = getattr(info, "similarity_repository_id", "")
    if repository_id:
        rows.append(("similarity-repository id", f"`{repository_id}`"))
    table = "\n".join(["| property | value |", "|---|---|", *(f"| {key} | {value} |" for key, value in rows)])
    return (
        f"### `{info.name}` {{ #{info.name} }}\n\n{info.description[:1].upper()}{info.description[1:]}.\n\n{table}\n\n"
        f"**Definition.** {info.definition}\n\n**Convention.** {info.convention}\n\n"
        f"**Reference.** {info.reference}\n"
    )


def measure_reference() -> str:
    """The whole generated part of the page: an overview table, then one section per measure by level.

    Returns
    -------
    str
        Markdown covering every name of `reprsim.measures.available()`.
    """
    from reprsim import measures

    infos = [measures.get(name) for name in measures.available()]
    overview = [
        "| measure | level | direction | larger is similar | streamable | row subsample |",
        "|---|---|---|---|---|---|",
    ]
    for info in infos:
        overview.append(
            f"| [`{info.name}`](#{info.name}) | {info.level} | "
            f"{'symmetric' if info.symmetric else 'directed'} | {_yes_no(info.larger_is_similar)} | "
            f"{_yes_no(info.streamable)} | {_yes_no(info.needs_subsample)} |"
        )
    parts = ["\n".join(overview)]
    for level, title in LEVEL_TITLES.items():
        members = [info for info in infos if info.level == level]
        if members:
            parts.append(f"## {title}\n\n" + "\n".join(measure_section(info) for info in members))
    return "\n\n".join(parts) + "\n"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace the marker of the measure reference page with the generated sections (mkdocs event)."""
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"docs/{PAGE}: the marker line {MARKER} is missing; the measure reference goes there")
    return markdown.replace(MARKER, measure_reference())
