"""`senet analyze` on a run folder that `senet train` wrote."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from senet.cli import app
from senet.train import load_config, train

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
    assert all(0 <= b["specificity"] <= 1 for b in gates["blocks"])
    saturation = json.loads((report / "saturation.json").read_text())
    assert saturation["params_total"] == 272_095  # se_resnet20_cifar, 3 input channels
    assert saturation["top1_before"] >= 0 and isinstance(saturation["replaced"], list)
    assert "layer3.2.attn" in result.output


def test_analyze_refuses_a_folder_that_is_not_a_run(tmp_path):
    result = CliRunner().invoke(app, ["analyze", str(tmp_path)])
    assert result.exit_code == 2 and "not a senet run folder" in result.output
