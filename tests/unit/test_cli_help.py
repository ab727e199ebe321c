"""`jitbot --help` everywhere: descriptions, defaults, environment names; the command table of docs/operations.md matches the parser."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from bot import cli

ROOT = Path(__file__).resolve().parents[2]


def leaves(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every runnable command (`("vault", "sync")`, …) and its parser."""
    found: dict[tuple[str, ...], argparse.ArgumentParser] = {}
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return {prefix: parser}
    for name, child in subs[0].choices.items():
        found |= leaves(child, (*prefix, name))
    return found


def options(parser: argparse.ArgumentParser) -> list[set[str]]:
    """Each option's spellings (`{"-o", "--output"}`), --help left out."""
    return [set(a.option_strings) for a in parser._actions if a.option_strings and "--help" not in a.option_strings]


def command_table() -> dict[tuple[str, ...], set[str]]:
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    table = text[text.index("## Command line") :]
    table = table[: table.index("\n\n", table.index("| --- |"))]
    rows: dict[tuple[str, ...], set[str]] = {}
    for cell in re.findall(r"^\| `jitbot ([^`]+)` \|", table, re.M):
        words = tuple(w for w in cell.split() if re.fullmatch(r"[a-z][a-z-]*", w))
        rows[words] = set(re.findall(r"(?<![\w-])--?[a-z][a-z-]*", cell))
    return rows


PARSER = cli._parser()
COMMANDS = {words: parser for words, parser in leaves(PARSER).items()}


def test_the_command_table_names_every_command_and_option_of_the_parser() -> None:
    table = command_table()
    assert set(table) - {()} == set(COMMANDS), "docs/operations.md's command table and bot/cli.py disagree on the commands"
    for words, parser in COMMANDS.items():
        spellings = options(parser)
        missing = [sorted(option) for option in spellings if not option & table[words]]
        assert not missing, f"docs/operations.md's row for `jitbot {' '.join(words)}` leaves out {missing}"
        unknown = table[words] - set().union(*spellings)
        assert not unknown, f"docs/operations.md's row for `jitbot {' '.join(words)}` names options the parser lacks: {unknown}"
    assert "--version" in table[()]


def test_the_top_level_help_lists_every_command() -> None:
    text = PARSER.format_help()
    assert "==SUPPRESS==" not in text
    for name in ("serve", "web", "worker", "check", "vault", "audit", "db", "demo"):
        assert re.search(rf"^\s+{name}\s+\S", text, re.M), f"`{name}` has no line in jitbot --help"


@pytest.mark.parametrize("words", sorted(COMMANDS), ids=" ".join)
def test_every_command_explains_itself_its_defaults_and_environment(words: tuple[str, ...]) -> None:
    parser = COMMANDS[words]
    text = parser.format_help()
    assert "==SUPPRESS==" not in text
    assert parser.description and len(parser.description) > 20, f"`jitbot {' '.join(words)}` has no description"
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS or "--help" in action.option_strings:
            continue
        assert action.help, f"{action.option_strings} of `jitbot {' '.join(words)}` has no help"
        takes_value = action.nargs != 0
        if takes_value:
            assert "default" in action.help, f"{action.option_strings} of `jitbot {' '.join(words)}` does not name its default"
    if words not in (("demo",), ("playground",)):  # no settings read: all made up per run
        assert "environment:" in text and re.search(r"\b[A-Z][A-Z_]+\b", text.split("environment:")[1])


def test_version() -> None:
    with pytest.raises(SystemExit) as done:
        PARSER.parse_args(["--version"])
    assert done.value.code == 0
