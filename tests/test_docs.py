"""Every code block of README.md and docs/ runs, each page in its own temporary folder.

- ```python blocks of a page run in order in one namespace, like a notebook;
- ```bash / ```console blocks: each `reprsim ...` command runs through `reprsim.cli.main`, what the
  virtualenv's `reprsim` script calls (console blocks: the `$ ` lines; the rest is output);
- ```yaml blocks with a `title="FILE"` are written to FILE (so a later `reprsim run FILE` runs them) and loaded:
  a study with `reprsim.study.load_study`, a study design with `reprsim.validation.StudyDesign`;
- ```text / ```output blocks are not code.
A block that only includes a file of examples/ (`--8<-- "examples/NAME.py"`) is run by tests/test_examples.py.
The one exception is README's set-up commands (install, full demo: minutes), which are what CI runs anyway.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
EXAMPLES = REPO / "examples"
REPRSIM = Path(sys.executable).with_name("reprsim")

# Run by CI itself (.ci/run -> scripts/test.sh -> scripts/setup.sh); the demo alone takes minutes.
SETUP_COMMANDS = (
    "bash scripts/setup.sh && .venv/bin/reprsim demo",
    "bash scripts/test.sh",
)
PYTHON = {"python", "py"}
SHELL = {"bash", "sh", "shell", "console"}
YAML = {"yaml", "yml"}
NOT_CODE = {"text", "output"}

FENCE = re.compile(r"^(?P<fence>```+)(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$", re.M | re.S)
SNIPPET = re.compile(r'^[ \t]*--8<--[ \t]+"(?P<path>[^"]+)"[ \t]*$', re.M)
TITLE = re.compile(r'title="(?P<title>[^"]+)"')


@dataclass(frozen=True)
class Block:
    """One fenced block: its language, its fence's info string, its text and where it starts."""

    language: str
    info: str
    body: str
    where: str


def expand_snippets(text: str) -> str:
    """Inline the Markdown files a page includes with pymdownx.snippets (code files stay as include lines)."""

    def replace(match: re.Match[str]) -> str:
        path = REPO / match["path"]
        assert path.is_file(), f"snippet {match['path']} does not exist"
        return expand_snippets(path.read_text(encoding="utf-8")) if path.suffix == ".md" else match[0]

    out, last = [], 0
    for fence in FENCE.finditer(text):
        out += [SNIPPET.sub(replace, text[last : fence.start()]), fence[0]]
        last = fence.end()
    out.append(SNIPPET.sub(replace, text[last:]))
    return "".join(out)


def blocks_of(page: Path) -> list[Block]:
    text = expand_snippets(page.read_text(encoding="utf-8"))
    found = []
    for match in FENCE.finditer(text):
        info = match["info"].strip()
        language = info.split()[0] if info else ""
        line = text.count("\n", 0, match.start()) + 1
        found.append(Block(language, info, match["body"], f"{page.relative_to(REPO)}:{line}"))
    return found


def pages() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def included_example(block: Block) -> Path | None:
    """The examples/ file a block consists of, if it is only a snippet include."""
    lines = [line for line in block.body.splitlines() if line.strip()]
    if len(lines) == 1 and (match := SNIPPET.match(lines[0])):
        return REPO / match["path"]
    return None


def shell_commands(block: Block) -> list[str]:
    """The commands of a bash/console block, continuation lines joined."""
    lines = block.body.splitlines()
    if block.language == "console":
        lines = [line[2:] for line in lines if line.startswith("$ ")]
    commands, pending = [], ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        command = (pending + line).strip()
        pending = ""
        if command and not command.startswith("#"):
            commands.append(command)
    return commands


def without_comment(command: str) -> str:
    return " ".join(shlex.split(command, comments=True))


def run_reprsim(command: str, where: str) -> None:
    """Run a documented `reprsim` command in this process: the same `reprsim.cli.main` as the venv's script
    (checked by test_the_reprsim_script_is_the_cli), without paying torch's import for every command."""
    from reprsim.cli import main

    args = shlex.split(command, comments=True)
    assert args[0] == "reprsim", f"{where}: `{command}` is not a reprsim command; docs run only reprsim"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(args[1:])
        except SystemExit as exit_:  # argparse's errors and --help
            code = exit_.code if isinstance(exit_.code, int) else 1
    assert code == 0, f"{where}: `{command}` exited {code}:\n{out.getvalue()}\n{err.getvalue()}"


def load_yaml_block(block: Block, cwd: Path) -> None:
    import yaml

    from reprsim.study import load_study
    from reprsim.validation import StudyDesign

    title = TITLE.search(block.info)
    assert title, f'{block.where}: a yaml block needs title="FILE" (the file a command then uses)'
    path = cwd / title["title"]
    path.write_text(block.body, encoding="utf-8")
    raw = yaml.safe_load(block.body)
    if "models" in raw:
        load_study(path)
    elif {"families", "random_controls", "finetuned"} & set(raw):
        StudyDesign.from_yaml(path)
    else:
        pytest.fail(f"{block.where}: a yaml block is either a study (models: ...) or a study design")


def run_page(page: Path, cwd: Path) -> None:
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for block in blocks_of(page):
        if block.language in NOT_CODE:
            continue
        example = included_example(block)
        if example is not None:
            assert example.parent == EXAMPLES and example.is_file(), f"{block.where}: {example} is not an example"
            continue
        if block.language in PYTHON:
            exec(compile(block.body, block.where, "exec"), namespace)
        elif block.language in SHELL:
            for command in shell_commands(block):
                if without_comment(command) in SETUP_COMMANDS and page == README:
                    continue
                run_reprsim(command, block.where)
        elif block.language in YAML:
            load_yaml_block(block, cwd)
        else:
            pytest.fail(f"{block.where}: fence language {block.language!r} is neither code nor text")


PAGES_WITH_CODE = [page for page in pages() if blocks_of(page)]


@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=lambda p: str(p.relative_to(REPO)))
def test_every_block_of_the_page_runs(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    before = {path.name for path in REPO.iterdir()}
    run_page(page, tmp_path)
    assert {path.name for path in REPO.iterdir()} == before, "a block wrote into the repository root"


def test_only_the_setup_commands_are_skipped() -> None:
    skipped = [
        without_comment(command)
        for page in pages()
        for block in blocks_of(page)
        if block.language in SHELL
        for command in shell_commands(block)
        if not command.startswith("reprsim")
    ]
    assert skipped == list(SETUP_COMMANDS)
    first = blocks_of(README)[0]
    assert [without_comment(c) for c in shell_commands(first)] == list(SETUP_COMMANDS), "README starts with them"
    assert README.read_text(encoding="utf-8").splitlines()[2] == "```bash", "set-up commands come first"


def test_readme_is_short() -> None:
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 150


def test_every_example_is_shown_in_the_docs() -> None:
    shown = {included_example(block) for page in pages() for block in blocks_of(page)}
    assert set(EXAMPLES.glob("*.py")) <= shown, "an example that no page includes"


def test_the_reprsim_script_is_the_cli(tmp_path: Path) -> None:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    done = subprocess.run([str(REPRSIM), "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    from reprsim.cli import COMMANDS

    assert done.stdout.startswith("usage: reprsim") and all(name in done.stdout for name in COMMANDS)


def test_the_built_measure_reference_has_every_measure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    from reprsim import measures

    monkeypatch.chdir(REPO)  # snippets and the hook are found from the repository root, as `mkdocs build` does
    monkeypatch.setenv("NO_MKDOCS_2_WARNING", "1")
    # The whole site, without the API reference's plugin (its pages are not what this test is about).
    build(load_config(str(REPO / "mkdocs.yml"), site_dir=str(tmp_path / "site"), plugins=["search"]))
    html = (tmp_path / "site" / "reference" / "measures" / "index.html").read_text(encoding="utf-8")
    sections = dict(re.findall(r'<h3 id="([^"]+)">(.*?)(?=<h[23] |</article>)', html, re.S))
    assert list(sections) == measures.available()
    for name, section in sections.items():
        info = measures.get(name)
        for label in ("Definition.", "Convention.", "Reference.", "invariant to", "streamable", "cost"):
            assert label in section, f"{name}: no {label!r} in its section"
        assert ("symmetric" if info.symmetric else "directed") in section
