"""mkdocs hook: document the exported names that griffe cannot see on an API page.

griffe, which mkdocstrings uses to read the code, keeps a submodule rather than a name imported over it, so an
export such as `reprsim.measures.rsa` (the function `rsa` from the submodule `rsa`) would be missing from the
module's page. For each `::: reprsim.PACKAGE` directive this hook finds such exports at build time and adds a
directive for each at its defining path; an export that no longer shadows a submodule needs none.
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

DIRECTIVE = re.compile(r"^::: (?P<package>reprsim(?:\.\w+)*)[ \t]*$", re.M)


def shadowed_exports(package: str) -> list[str]:
    """The exports of a package that share their name with the submodule defining them.

    Parameters
    ----------
    package
        A dotted package name, e.g. ``"reprsim.measures"``.

    Returns
    -------
    list of str
        The defining paths (``"reprsim.measures.rsa.rsa"``), in the order of the package's ``__all__``.
    """
    module = importlib.import_module(package)
    found = []
    for name in getattr(module, "__all__", []):
        value = getattr(module, name)
        home = getattr(value, "__module__", "")
        if (inspect.isfunction(value) or inspect.isclass(value)) and home.startswith("reprsim.") and (
            home.rsplit(".", 1)[-1] == name
        ):
            found.append(f"{home}.{name}")
    return found


def with_shadowed_exports(markdown: str) -> str:
    """Add a directive after each package directive for every export griffe would miss.

    Parameters
    ----------
    markdown
        The page's Markdown.

    Returns
    -------
    str
        The Markdown with the extra directives.
    """

    def extend(match: re.Match[str]) -> str:
        extra = [
            f"\n::: {path}\n    options:\n      heading_level: 2\n      show_root_full_path: false\n"
            for path in shadowed_exports(match["package"])
        ]
        return match[0] + "\n" + "".join(extra)

    return DIRECTIVE.sub(extend, markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Extend the API reference pages (mkdocs event)."""
    return with_shadowed_exports(markdown) if page.file.src_uri.startswith("api/") else markdown
