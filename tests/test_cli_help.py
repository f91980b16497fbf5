"""Every `senet` command says in one line what it does and shows an example."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from senet.cli import app

COMMANDS = sorted(c.name or c.callback.__name__ for c in app.registered_commands)


def test_the_command_list_is_the_one_users_see():
    expected = ["ablate", "analyze", "attention", "compare", "demo", "evaluate", "info"]
    expected += ["models", "profile", "retrofit", "study", "train"]
    assert expected == COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_a_one_line_summary_and_an_example(command):
    result = CliRunner().invoke(app, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    callback = typer.main.get_command(app).commands[command].help or ""
    summary, _, rest = callback.partition("\n\n")
    assert summary and "\n" not in summary.strip(), f"{command}: summary is not one line"
    assert "Example: senet " in rest, f"{command}: no example"
    assert summary.strip()[:40] in result.output


def test_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("senet 0.")
