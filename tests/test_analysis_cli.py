"""`senet analyze` on a run folder that `senet train` wrote."""

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import senet
from senet.analysis import GateAnalysis, analysis_table, analyze_weights, run_folder_source
from senet.cli import app
from senet.data import create_dataset, dataset_options
from senet.train import load_config, read_weights, train

RECIPE = (
    Path(__file__).resolve().parents[1] / "senet" / "configs" / "fashion_mnist_se_resnet20.yaml"
)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    overrides = [
        "data.name=synthetic", "data.synthetic_train=64", "data.train_size=64",
        "data.synthetic_val=40", "data.image_size=16", "data.batch_size=32", "train.epochs=1",
        "log.plots=false", "log.tensorboard=false", "log.progress=none", f"output_dir={out}",
    ]  # fmt: skip
    train(load_config(RECIPE, overrides))
    return out


def gate_specificity_by_hand(run_dir: Path, size: int | None = None) -> tuple[list[float], float]:
    """Per SE block, eta^2 of each channel's gate over the validation images (between-class sum
    of squares over the total), averaged over channels; and the top-1 of the run's weights."""
    model = senet.create_model("se_resnet20_cifar", num_classes=10)
    state, meta = read_weights(run_dir / "best.safetensors")
    model.load_state_dict(state)
    model.eval()
    # The weights' own record of their data: the analysis reads the same validation images.
    taken = {k: v for k, v in meta["data_args"].items() if k in dataset_options("synthetic")}
    val, _ = create_dataset("synthetic", "val", size=size, mean=meta["mean"], std=meta["std"],
                            **taken)  # fmt: skip
    x = torch.stack([val[i][0] for i in range(len(val))])
    y = torch.tensor([int(val[i][1]) for i in range(len(val))])
    gates = []

    def record(module, args, out):
        # The block scales its input per channel: the gate is out / in, by least squares. The
        # residual block hands SE its shortcut too (out = shortcut + in * s): take it off.
        inp, *shortcut = args
        out = out - shortcut[0] if shortcut else out
        gates.append(((out * inp).sum((2, 3)) / inp.square().sum((2, 3))).double())

    blocks = [b for layer in (model.layer1, model.layer2, model.layer3) for b in layer]
    for block in blocks:
        block.attn.register_forward_hook(record)
    with torch.no_grad():
        top1 = (model(x).argmax(1) == y).double().mean().item() * 100
    result = []
    for g in gates:
        grand = g.mean(0)
        total = (g - grand).square().sum(0)
        between = sum((y == k).sum() * (g[y == k].mean(0) - grand).square() for k in y.unique())
        varying = total > 1e-12 * len(g)
        result.append((between[varying] / total[varying]).mean().item())
    return result, top1


def test_analyze_run_folder(run_dir):
    result = CliRunner().invoke(
        app, ["analyze", str(run_dir), "--classes", "0,1", "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    report = run_dir / "analysis-synthetic"
    for name in ("class_gates.png", "specificity.png"):
        assert (report / name).read_bytes()[:4] == b"\x89PNG"
    gates = json.loads((report / "gates.json").read_text())
    # SE-ResNet-20: 9 residual blocks, 16/32/64 channels, every validation image counted.
    assert [b["channels"] for b in gates["blocks"]] == [16] * 3 + [32] * 3 + [64] * 3
    specificity, top1 = gate_specificity_by_hand(run_dir)
    # float32 gates of a barely trained net vary little between images, so eta^2 carries their
    # rounding at ~2e-5; a wrong statistic (other images, classes, channels) moves it by >1e-2.
    assert [b["specificity"] for b in gates["blocks"]] == pytest.approx(specificity, abs=1e-4)
    saturation = json.loads((report / "saturation.json").read_text())
    assert saturation["params_total"] == 272_095  # se_resnet20_cifar, 3 input channels
    assert saturation["top1_before"] == pytest.approx(top1)
    assert isinstance(saturation["replaced"], list)
    assert "layer3.2.attn" in result.output


def test_analyze_a_model_name_with_weights_and_data(run_dir, tmp_path):
    weights = str(run_dir / "best.safetensors")
    args = ["analyze", "se_resnet20_cifar", "--weights", weights, "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "--data is needed with --weights" in result.output
    out = tmp_path / "report"
    result = CliRunner().invoke(
        app, [*args, "--data", "synthetic", "--size", "100", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    gates = json.loads((out / "gates.json").read_text())
    specificity, top1 = gate_specificity_by_hand(run_dir, size=100)
    assert [b["specificity"] for b in gates["blocks"]] == pytest.approx(specificity, abs=1e-4)
    saturation = json.loads((out / "saturation.json").read_text())
    assert saturation["top1_before"] == pytest.approx(top1)


def test_analyze_refuses_a_folder_that_is_not_a_run(tmp_path):
    result = CliRunner().invoke(app, ["analyze", str(tmp_path)])
    assert result.exit_code == 2 and "not a senet run folder" in result.output


def test_analyze_refuses_fewer_than_two_images(run_dir, tmp_path):
    # One image has no spread: every gate would read saturated, every hidden unit dead.
    result = CliRunner().invoke(
        app, ["analyze", str(run_dir), "--size", "1", "--output", str(tmp_path / "a")]
    )
    assert result.exit_code == 2 and "needs at least 2 images, got size=1" in result.output
    assert not (tmp_path / "a").exists()  # nothing written


def test_analyze_weights_returns_a_gate_analysis_and_writes_the_same_json(run_dir, tmp_path):
    source = run_folder_source(run_dir)
    assert (source.model_name, source.weights, source.data) == (
        "se_resnet20_cifar", run_dir / "best.safetensors", "synthetic",
    )  # fmt: skip
    report = analyze_weights(replace(source, size=40, device="cpu"), output_dir=tmp_path)
    assert isinstance(report, GateAnalysis)
    assert (report.output_dir, report.images, report.stn_picture) == (tmp_path, 40, None)
    assert len(report.stats.blocks) == len(report.blocks) == 9
    # The files keep the keys (and order) they had when the result was a dict.
    gates = json.loads((tmp_path / "gates.json").read_text())
    assert list(gates) == ["class_names", "blocks"]
    assert list(gates["blocks"][0]) == [
        "name", "depth", "channels", "specificity", "mean_gate", "gate_std", "hidden_units",
        "dead_units", "mean", "std", "class_mean", "class_std",
    ]  # fmt: skip
    summary_keys = [
        "name", "depth", "channels", "specificity", "mean_gate", "gate_std", "hidden_units",
        "dead_units",
    ]  # fmt: skip
    assert report.blocks == [{k: b[k] for k in summary_keys} for b in gates["blocks"]]
    # r = 16 on 16/32/64 channels: one, two and four hidden units per stage.
    assert [b["hidden_units"] for b in report.blocks] == [1] * 3 + [2] * 3 + [4] * 3
    assert all(0 <= b["dead_units"] <= b["hidden_units"] for b in report.blocks)
    saturation = json.loads((tmp_path / "saturation.json").read_text())
    assert list(saturation) == [
        "threshold", "blocks", "replaced", "params_saved", "params_total", "top1_before",
        "top1_after",
    ]  # fmt: skip
    assert saturation == report.saturation
    summary = report.to_dict()
    assert list(summary) == [
        "model", "weights", "data", "images", "blocks", "saturation", "output_dir", "stn_picture",
    ]  # fmt: skip
    assert summary["weights"] == str(run_dir / "best.safetensors")
    assert summary["output_dir"] == str(tmp_path)
    json.dumps(summary)
    assert analysis_table(report).row_count == 9
