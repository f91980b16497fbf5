"""`senet profile` and the model specs behind it (senet name, torchvision:NAME, timm:NAME)."""

from __future__ import annotations

import csv
import functools
import io
import json

import pytest
from _tiny_models import tiny_models_registered
from typer.testing import CliRunner

from senet.cli import app
from senet.models import ModelError, create_model
from senet.models import foreign as hub

runner = CliRunner()
SMALL = ["--input-size", "3", "64", "64"]


def invoke(*args: str):
    return runner.invoke(app, ["profile", *args])


def test_json_output_parses_with_exact_counts():
    result = invoke("torchvision:resnet18", *SMALL, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["name"] == "torchvision:resnet18"
    assert data["params"] == 11_689_512
    assert data["macs"] == data["conv_fc_macs"] == 148_557_824
    assert data["input_size"] == [3, 64, 64] and data["timing"] is None


def test_compare_table_has_deltas_against_the_reference_model():
    result = invoke("torchvision:resnet50", "--compare", "torchvision:resnet18", *SMALL)
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.stdout.splitlines()]
    rows = [line for line in lines if line.startswith("torchvision:")]
    assert [row.split()[0] for row in rows] == ["torchvision:resnet18", "torchvision:resnet50"]
    assert rows[0].split()[1:3] == ["11.7M", "baseline"]
    # 25,557,032 / 11,689,512 - 1
    assert rows[1].split()[1:3] == ["25.6M", "+118.63%"]
    assert "Convention: MACs = multiply-adds" in result.stdout


def test_by_module_csv_and_markdown():
    result = invoke("torchvision:resnet18", *SMALL, "--by-module", "--depth", "1", "-f", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["name"] for r in rows][:3] == ["", "conv1", "bn1"]
    assert sum(int(r["macs"]) for r in rows[1:]) == int(rows[0]["macs"])
    result = invoke("torchvision:resnet18", *SMALL, "--by-module", "-f", "markdown")
    assert result.exit_code == 0 and "| layer4 |" not in result.stdout
    assert "|   layer4 | Sequential |" in result.stdout


def test_timing_option_reports_latency():
    result = invoke(
        "torchvision:resnet18", "--input-size", "3", "32", "32", "--timing",
        "--warmup", "1", "--repeats", "2", "-f", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    timing = json.loads(result.stdout)["timing"]
    assert timing["repeats"] == 2 and timing["median_ms"] > 0 and timing["device"] == "cpu"


def test_timm_models_resolve_and_their_se_counts():
    pytest.importorskip("timm")
    result = invoke("timm:seresnet18", *SMALL, "-f", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    # timm's SE: mean pool, 1x1 conv, ReLU, 1x1 conv, sigmoid, scale; hidden = C/16 rounded up
    # to a multiple of 8. At 64x64 the four stages (two blocks each) run at 16, 8, 4 and 2 pixels.
    expected = 0
    for channels, side in ((64, 16), (128, 8), (256, 4), (512, 2)):
        hidden = max(8, -(-channels // 16 // 8) * 8)
        per_block = 2 * channels * side * side + 2 * channels * hidden + hidden + channels
        expected += 2 * per_block
    assert data["attention_macs"] == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("torchvision:resnet5", "unknown torchvision model 'resnet5'; did you mean resnet50"),
        ("no_such_senet_model", "unknown model 'no_such_senet_model'"),
        ("keras:resnet50", "bad model name 'keras:resnet50'"),
        ("torchvision:", "bad model name 'torchvision:'"),
    ],
)
def test_bad_specs_exit_with_the_reason(spec, message):
    result = invoke(spec, *SMALL)
    assert result.exit_code == 2
    assert message in result.stderr


def test_input_size_the_model_cannot_take():
    result = invoke("torchvision:resnet18", "--input-size", "1", "64", "64")
    assert result.exit_code == 2
    assert "failed on input size (1, 64, 64)" in result.stderr
    assert "in module 'conv1' (Conv2d)" in result.stderr


def test_bad_format_is_refused():
    result = invoke("torchvision:resnet18", *SMALL, "--format", "yaml")
    assert result.exit_code != 0 and "yaml" in result.output


def test_timm_missing_is_a_clear_error(monkeypatch):
    real = hub.importlib.import_module

    def no_timm(name: str, *args: object):
        if name == "timm":
            raise ImportError("No module named 'timm'")
        return real(name, *args)

    monkeypatch.setattr(hub.importlib, "import_module", no_timm)
    with pytest.raises(ModelError, match=r"needs timm.*pip install timm"):
        create_model("timm:seresnet50")


def test_create_model_takes_library_names():
    assert type(create_model("torchvision:resnet18")).__name__ == "ResNet"
    assert create_model("torchvision:resnet18", num_classes=7).fc.out_features == 7
    with pytest.raises(ModelError, match="a senet model name, 'torchvision:NAME' or 'timm:NAME'"):
        create_model("  ")


def test_table2_row_from_the_zoo():
    result = invoke("se_resnet50", "--compare", "resnet50")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    se = next(line for line in lines if line.strip().startswith("se_resnet50"))
    base = next(line for line in lines if line.strip().startswith("resnet50"))
    # The paper's Table 2 row, and SE's cost against its baseline: +9.90% params, +0.35% MACs
    # (the paper's "+0.26%" is 3.87 / 3.86 - 1, from the rounded figures).
    assert base.split()[1:4] == ["25.6M", "baseline", "3.86"]
    assert se.split()[1:5] == ["28.1M", "+9.90%", "3.87", "+0.35%"]


def _timed(*flags: str, model: str = "se_resnet20_cifar", size: str = "32") -> dict:
    result = invoke(
        model, "--input-size", "3", size, size, "--timing", "--warmup", "1",
        "--repeats", "2", "-f", "json", *flags,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_channels_last_timing_keeps_the_counts():
    plain, nhwc = _timed(), _timed("--channels-last")
    assert nhwc["timing"]["channels_last"] and not plain["timing"]["channels_last"]
    assert not nhwc["timing"]["compiled"]
    for key in ("params", "macs", "conv_fc_macs", "attention_macs"):
        assert nhwc[key] == plain[key], key
    assert nhwc["macs"] == 40_725_445  # se_resnet20_cifar at 32x32 (tests/models oracle)


@pytest.mark.slow
def test_compiled_timing_keeps_the_counts():
    with tiny_models_registered():  # the tiny net: compiling takes seconds, not a minute
        plain = _timed(model="_test_tinynet", size="16")
        compiled = _timed("--compile", model="_test_tinynet", size="16")
    assert compiled["timing"]["compiled"] and compiled["timing"]["repeats"] == 2
    for key in ("params", "macs", "conv_fc_macs", "attention_macs"):
        assert compiled[key] == plain[key], key


# ---- FLOPs against FLOPS: --timing --by-module, --roofline --------------------------------------


@pytest.fixture
def small_roof(monkeypatch):
    """Small roof measurements (the defaults take seconds); the model's timing stays real."""
    from senet.profiling import counter
    from senet.profiling.roofline import measure_roof

    small = functools.partial(
        measure_roof, matmul_size=64, copy_bytes=2**16, cache_copy_bytes=2**12, repeats=1
    )
    monkeypatch.setattr(counter, "measure_roof", small)


QUICK_TIMING = ["--timing", "--warmup", "0", "--repeats", "1"]


def test_roofline_end_to_end(tmp_path, small_roof):
    png = tmp_path / "roof.png"
    result = invoke(
        "se_resnet20_cifar", "--input-size", "3", "16", "16", *QUICK_TIMING, "--by-module",
        "--depth", "1", "--roofline", str(png),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert f"roofline plot: {png}" in result.stderr
    out = " ".join(result.stdout.split())  # Rich wraps long lines
    assert "se_resnet20_cifar by module: work against time" in out
    assert "se_resnet20_cifar by op class" in out and "attention scale+add" in out
    assert "Times: forward only (eval, torch.inference_mode), batch 1 on cpu" in out
    assert "Roofline on cpu" in out and "ridge point" in out
    counts = json.loads(
        invoke("se_resnet20_cifar", "--input-size", "3", "16", "16", "-f", "json").stdout
    )
    share = 100 * counts["attention_macs"] / counts["macs"]  # under 1%: two decimals
    assert f"attention (9 SqueezeExcite modules): {share:.2f}% of MACs" in out
    assert "of forward time" in out and "so attention is" in out


def test_timed_by_module_json(tmp_path, small_roof):
    result = invoke(
        "se_resnet20_cifar", "--input-size", "3", "16", "16", *QUICK_TIMING, "--by-module",
        "-f", "json", "--roofline", str(tmp_path / "r.png"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # the plot's path goes to stderr, not into the JSON
    assert data["roof"]["peak_gflops"] > 0 and data["roof"]["bandwidth_gbs"] > 0
    assert data["attention_statement"].startswith("attention (9 SqueezeExcite modules)")
    timed = [m for m in data["modules"] if m["time_ms"] is not None]
    assert {m["depth"] for m in timed} == {0, 1, 2, 3}  # depth 2, plus the SE modules at 3
    assert all(m["bytes"] > 0 for m in timed if m["flops"])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--roofline", "{tmp}/r.png"], "--roofline needs --timing"),
        ([*QUICK_TIMING, "--roofline", "{tmp}/no/such/folder/r.png"], "does not exist"),
        ([*QUICK_TIMING, "--roofline", "{tmp}/r.txt"], "cannot tell the image format"),
        ([*QUICK_TIMING, "--roofline", "{tmp}/r.png", "-c", "resnet20_cifar"], "drop --compare"),
        ([*QUICK_TIMING, "--by-module", "--compile"], "time without compile (--compile)"),
    ],
)
def test_bad_roofline_options_fail_before_measuring(tmp_path, monkeypatch, flags, message):
    from senet.profiling import counter

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured before the options were checked")

    monkeypatch.setattr(counter, "measure", no_measuring)
    flags = [f.format(tmp=tmp_path) for f in flags]
    result = invoke("se_resnet20_cifar", "--input-size", "3", "16", "16", *flags)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert list(tmp_path.iterdir()) == []
