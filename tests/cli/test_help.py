"""``truceline --help`` and every command's help: the panels, a one-line summary each, and values
named in words.

The rule for values: every option that takes a value shows a metavar in capitals that says what it
wants (``--db DATABASE``, ``--date YYYY-MM-DD``, ``--seed N``), never a type (typer's ``<str>``,
``<int>``, ``<path>``, or click's TEXT, INTEGER, FLOAT, PATH, BOOLEAN); an option name means the same
thing everywhere, so it shows the same metavar in every command. Arguments are named the same way
(``{AGREEMENT_DIR}``). Flags take no value and are exempt (typer marks them ``<bool>``, ``--help``
included).
"""

from __future__ import annotations

import inspect
import re
from collections import defaultdict

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from truceline.cli import app

runner = CliRunner()
PANELS = ("Agreement", "Data", "Analysis", "Server", "Ledger")
TYPE_WORDS = {"TEXT", "INTEGER", "FLOAT", "PATH", "BOOLEAN", "STR", "INT", "BOOL", "FILENAME",
              "DIRECTORY", "UUID", "DATETIME", "CHOICE"}  # fmt: skip
METAVAR = re.compile(r"[A-Z][A-Z0-9_.,=/-]*")
# What typer 0.29 prints in the type column when no metavar is given.
TYPER_TYPE = re.compile(
    r"<(?:str|int|float|bool|bytes|path|file|dir|datetime|uuid|Path|(?:int|float) range"
    r"|(?:list|tuple)\[[^\]]*\])>"
)
# Options whose value differs by command, on purpose: a file or a folder; a day or a time.
SAME_NAME_OTHER_VALUE = {"--output": {"FILE", "DIR"}, "--start": {"YYYY-MM-DD", "TIME"}}


def _walk(cmd, path=()):  # type: ignore[no-untyped-def]
    yield path, cmd
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _walk(sub, (*path, name))


ROOT = get_command(app)
ALL = [(p, c) for p, c in _walk(ROOT) if p]  # every command and group, hidden aliases included
COMMANDS = [(p, c) for p, c in ALL if not hasattr(c, "commands")]


def _ids(items):  # type: ignore[no-untyped-def]
    return [" ".join(p) for p, _ in items]


def _help(path: tuple[str, ...]) -> str:
    res = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    return res.output


def test_help_shows_the_five_panels_in_order() -> None:
    out = _help(())
    at = [out.find(f"╭─ {p} ") for p in PANELS]
    assert all(i >= 0 for i in at), out
    assert at == sorted(at), out
    assert "╭─ Commands " not in out  # nothing left outside a panel
    for name, cmd in ROOT.commands.items():
        if not cmd.hidden:
            assert getattr(cmd, "rich_help_panel", None) in PANELS, name


@pytest.mark.parametrize(("path", "cmd"), ALL, ids=_ids(ALL))
def test_every_command_has_a_one_line_summary(path: tuple[str, ...], cmd: object) -> None:
    text = inspect.cleandoc(getattr(cmd, "help", None) or "")
    summary = text.split("\n\n")[0]
    assert summary and "\n" not in summary and len(summary) <= 100, (path, summary)


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=_ids(COMMANDS))
def test_values_are_named_in_words(path: tuple[str, ...], cmd: object) -> None:
    for param in cmd.params:  # type: ignore[attr-defined]
        if getattr(param, "is_flag", False):
            continue
        mv = param.metavar
        assert mv and METAVAR.fullmatch(mv) and mv not in TYPE_WORDS, (path, param.name, mv)
    out = _help(path)
    assert not re.search(r"\b(TEXT|INTEGER|FLOAT|PATH|BOOLEAN)\b", out), out
    options = out[out.index("╭─ Options ") :]
    shown = set(TYPER_TYPE.findall(options))
    assert shown <= {"<bool>"}, (path, shown, options)


def test_an_option_shows_the_same_metavar_in_every_command() -> None:
    seen: dict[str, set[str]] = defaultdict(set)
    for _, cmd in COMMANDS:
        for param in cmd.params:  # type: ignore[attr-defined]
            if param.param_type_name == "option" and not getattr(param, "is_flag", False):
                for name in param.opts:
                    if name.startswith("--"):
                        seen[name].add(param.metavar)
    assert {"--db", "--agreement", "--date", "--seed", "--format"} <= set(seen)
    for name, metavars in seen.items():
        allowed = SAME_NAME_OTHER_VALUE.get(name)
        assert metavars <= allowed if allowed else len(metavars) == 1, (name, metavars)
    assert seen["--db"] == {"DATABASE"} and seen["--agreement"] == {"AGREEMENT_DIR"}
    assert seen["--date"] == {"YYYY-MM-DD"} and seen["--seed"] == {"N"}
