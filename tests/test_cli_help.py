"""The command line's help, `reprsim measures`, `reprsim quick`'s header and one-line warnings."""

from __future__ import annotations

import argparse
import sys
import warnings

import pytest
from tqdm import tqdm

from reprsim import measures
from reprsim.cli import build_parser, main

# Commands that show progress bars, each of which takes --quiet.
WITH_PROGRESS = {"extract", "compare", "run", "demo", "report", "validate"}


def subcommands() -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser, by name."""
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def option_blocks(help_text: str) -> dict[str, str]:
    """Split a rendered --help into its entries: the invocation ("--store STORE") -> its help, on one line."""
    blocks: dict[str, str] = {}
    current = None
    for line in help_text.splitlines():
        if line.startswith("  ") and not line.startswith("   "):  # an entry's first line
            invocation, _, text = line.strip().partition("  ")
            current = invocation
            blocks[current] = text.strip()
        elif current is not None and line.startswith("    "):  # the entry's help, continued or on its own line
            blocks[current] = f"{blocks[current]} {line.strip()}".strip()
        else:
            current = None
    return blocks


def block_of(blocks: dict[str, str], action: argparse.Action) -> str:
    """The help entry of one option (found by its longest spelling) or positional (by its metavar or name)."""
    if action.option_strings:
        wanted = action.option_strings[-1]
        matches = [text for key, text in blocks.items() if wanted in key.replace(",", " ").split()]
    else:
        names = {str(action.metavar), action.dest, "{" + ",".join(map(str, action.choices or [])) + "}"}
        matches = [text for key, text in blocks.items() if key in names]
    assert len(matches) == 1, f"{action.option_strings or action.dest}: {len(matches)} help entries"
    return matches[0]


def test_every_help_describes_each_command_and_option_and_names_its_default(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "100")
    top = build_parser().format_help()
    commands = subcommands()
    assert set(commands) >= WITH_PROGRESS | {"quick", "measures", "store"}
    checked = 0
    for name, parser in commands.items():
        assert name in top  # listed, with its one-line help
        assert parser.description and len(parser.description) > 20, name
        blocks = option_blocks(parser.format_help())
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
                continue
            text = block_of(blocks, action)
            assert len(text) > 5, f"reprsim {name} {action.dest}: no description"
            is_flag = action.nargs == 0 and isinstance(action.default, bool)  # its default is being off
            if action.default is not None and action.default is not argparse.SUPPRESS and not is_flag:
                assert f"(default: {action.default})" in text or f"default: {action.default}" in text, (
                    f"reprsim {name} {action.option_strings or action.dest}: the help does not name the "
                    f"default {action.default!r}: {text!r}"
                )
                checked += 1
    assert checked >= 20  # --chunk-rows, --subsample-rows, --rows, --width, --preset, --threads, ...


def test_help_output_names_defaults_as_printed(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "rows streamed per chunk (default: 8192)" in out
    assert "(default: all)" in out and "(default: auto)" in out


def test_quiet_is_the_one_spelling_of_quiet_mode():
    for name, parser in subcommands().items():
        visible = {s for a in parser._actions if a.help != argparse.SUPPRESS for s in a.option_strings}
        assert not visible & {"--no-progress", "--silent", "--no-progress-bar"}, name
        if name in WITH_PROGRESS:
            assert "--quiet" in visible, name
    # validate's earlier spelling is gone: one spelling everywhere.
    with pytest.raises(SystemExit):
        subcommands()["validate"].parse_args(["--no-progress"])


def test_measures_lists_every_measure_with_level_direction_and_description(capsys):
    assert main(["measures"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[2:] if line.strip() and not line[0].isdigit()}
    for name in measures.available():
        info = measures.get(name)
        line = lines[name]
        assert info.level in line and info.description in line
        assert ("symmetric" if info.symmetric else "X -> Y") in line
        assert ("more similar" if info.larger_is_similar else "more different") in line
    assert f"{len(measures.available())} measures" in out


def test_measures_level_filter(capsys):
    assert main(["measures", "--level", "attention"]) == 0
    out = capsys.readouterr().out
    shown = [line.split()[0] for line in out.splitlines()[2:] if line.strip() and not line[0].isdigit()]
    assert shown == measures.available("attention") and shown
    assert "linear_cka" not in out
    with pytest.raises(SystemExit):
        main(["measures", "--level", "layer"])
    assert "invalid choice" in capsys.readouterr().err


def test_quick_header_says_how_each_copy_was_made(capsys):
    assert main(["quick", "--rows", "50", "--width", "6"]) == 0
    head = capsys.readouterr().out.split("measure")[0]
    assert "50 rows x 6 neurons" in head
    assert "rotated" in head and "6 x 6 orthogonal rotation" in head and "noise (sd 0.3)" in head
    assert "base" in head and "rank-8 signal" in head
    assert "independent" in head and "unrelated" in head


class _FixedParser:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args

    def parse_args(self, argv: list[str] | None) -> argparse.Namespace:
        return self.args


def test_warnings_print_as_one_line_above_the_progress_bar(monkeypatch, capsys):
    def warns_inside_a_bar(args: argparse.Namespace) -> int:
        for i in tqdm(range(3), desc="work", file=sys.stderr):
            if i == 1:
                warnings.warn("only 12 rows:\n  CCA-type measures say little", measures.FewRowsWarning, stacklevel=1)
        return 0

    args = build_parser().parse_args(["quick"])
    args.func = warns_inside_a_bar
    monkeypatch.setattr("reprsim.cli.build_parser", lambda: _FixedParser(args))
    before = warnings.showwarning
    assert main(["quick"]) == 0
    err = capsys.readouterr().err
    expected = "reprsim: warning: FewRowsWarning: only 12 rows: CCA-type measures say little"
    # tqdm.write clears the bar ("\r   \r") before the line and redraws it after: the line stands alone.
    assert [line.split("\r")[-1] for line in err.split("\n")].count(expected) == 1
    assert "warnings.warn(" not in err and "test_cli_help.py" not in err
    assert warnings.showwarning is before  # the library keeps Python's display outside the CLI

