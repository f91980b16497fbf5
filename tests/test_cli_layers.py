"""The command line's layer listing and the attention tour behind the first demo."""

from typer.testing import CliRunner

from senet.cli import app
from senet.demo import attention_tour
from senet.layers import attention_names


def test_attention_command_lists_every_name():
    result = CliRunner().invoke(app, ["attention"])
    assert result.exit_code == 0
    assert result.stdout.split() == attention_names()


def test_attention_tour_reports_parameter_counts():
    table = attention_tour(channels=64, size=8)
    names = list(table.columns[0].cells)
    params = dict(zip(names, table.columns[1].cells, strict=True))
    assert params["se"] == f"{2 * 64 * 4 + 4 + 64:,}"  # 2*C*C/r + biases, r = 16
    assert params["ge"] == "0"
    assert names[0] == "none (input)" and set(names[1:]) == set(attention_names())
