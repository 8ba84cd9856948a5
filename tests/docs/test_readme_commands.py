"""The commands in README.md and deploy/README.md run as written: every `gateway ...` command's
flags exist in the real parser, every `make` target exists, and the cheap ones run."""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from gateway import cli
from tests.support.paths import ROOT

DOCS = (ROOT / "README.md", ROOT / "deploy" / "README.md")


def shell_commands(path: Path) -> list[str]:
    """Every command line of the ```sh blocks, comments and continuations folded."""
    commands: list[str] = []
    for block in re.findall(r"^```sh\n(.*?)^```", path.read_text(), flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            command = line.split(" #", 1)[0].strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def gateway_argv(command: str) -> list[str] | None:
    """The arguments after `gateway` (or `.venv/bin/gateway`, `python -m gateway`), else None."""
    words = [w for w in shlex.split(command) if not re.fullmatch(r"[A-Z_]+=.*", w)]
    for index, word in enumerate(words):
        if word.endswith("/gateway") or word == "gateway":
            return words[index + 1 :]
        if word == "-m" and index + 1 < len(words) and words[index + 1] == "gateway":
            return words[index + 2 :]
    return None


COMMANDS = [(path.relative_to(ROOT).as_posix(), c) for path in DOCS for c in shell_commands(path)]
GATEWAY = [(doc, c) for doc, c in COMMANDS if gateway_argv(c) is not None]
MAKE = [(doc, c) for doc, c in COMMANDS if c.startswith("make ")]


def test_the_docs_have_commands() -> None:
    assert len(GATEWAY) >= 5
    assert len(MAKE) >= 5


@pytest.mark.parametrize(("doc", "command"), GATEWAY, ids=[c for _, c in GATEWAY])
def test_gateway_command_parses(doc: str, command: str) -> None:
    """The real parser takes the command: no unknown flag, no bad choice."""
    argv = gateway_argv(command)
    assert argv is not None
    try:
        cli._parser().parse_args(argv)
    except SystemExit as exc:  # argparse prints the reason to stderr
        pytest.fail(f"{doc}: `{command}` is rejected by the parser (exit {exc.code})")


@pytest.mark.parametrize(("doc", "command"), MAKE, ids=[c for _, c in MAKE])
def test_make_target_exists(doc: str, command: str) -> None:
    words = shlex.split(command)
    targets = [w for w in words[1:] if "=" not in w and not w.startswith("-")]
    for target in targets:
        done = subprocess.run(
            ["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
        )
        assert "No rule to make target" not in done.stderr, f"{doc}: `{command}`: no target {target}"


@pytest.mark.parametrize(
    "argv", [["--help"], ["serve", "--help"], ["engine", "serve", "--help"], ["--version"]]
)
def test_cheap_commands_run(argv: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_every_settings_table_flag_exists() -> None:
    """The README's settings table names only real `serve` flags."""
    serve = next(
        action.choices["serve"]
        for action in cli._parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    known = {option for action in serve._actions for option in action.option_strings}
    table = re.findall(r"^\| `(--[a-z0-9-]+)`", (ROOT / "README.md").read_text(), flags=re.M)
    assert table
    assert set(table) <= known, set(table) - known
