"""`senet models`: the zoo listing read from the golden complexity table."""

import json

from typer.testing import CliRunner

from senet.cli import app
from senet.models.complexity import load_golden


def test_models_lists_names_params_and_macs():
    result = CliRunner().invoke(app, ["models", "se_resnet*"])
    assert result.exit_code == 0
    lines = [line for line in result.stdout.splitlines() if "se_resnet" in line]
    names = [line.split()[1] for line in lines]
    assert names[:5] == [
        "se_resnet18",
        "se_resnet34",
        "se_resnet50",
        "se_resnet101",
        "se_resnet152",
    ]
    row = next(line for line in lines if line.split()[1] == "se_resnet50")
    assert "28.09" in row and "3.860" in row and "224x224" in row


def test_models_json_is_the_golden_table():
    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    golden = load_golden()
    assert {r["name"] for r in rows} == set(golden)
    assert all({k: v for k, v in r.items() if k != "name"} == golden[r["name"]] for r in rows)


def test_models_without_a_match_says_so():
    result = CliRunner().invoke(app, ["models", "alexnet*"])
    assert result.exit_code == 1
    assert "no model matches 'alexnet*'" in result.output
