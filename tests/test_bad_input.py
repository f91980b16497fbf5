"""Rough edges found by trying bad input: each says what was wrong and what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _idx_files import write_fashion_mnist
from safetensors import safe_open
from torch import nn
from typer.testing import CliRunner

import senet
import senet.data.fashion_mnist as fashion_mnist
from senet.ablation import grid_from_dict, write_report
from senet.ablation.runner import PointResult
from senet.cli import app
from senet.config import ConfigError, load_config
from senet.data import DataError, create_dataset, prepare_fashion_mnist
from senet.train import RunSummary, train

runner = CliRunner()


def test_attn_kw_values_follow_the_yaml_rules_of_train_overrides(tmp_path: Path):
    # Each --attn-kw value is read as YAML and recorded in the saved file as it was read.
    out = tmp_path / "r18.safetensors"
    pairs = ["bias=false", "reduction=8", "gate=tanh", "squeeze=avg"]
    args = [a for pair in pairs for a in ("--attn-kw", pair)]
    result = runner.invoke(
        app, ["retrofit", "torchvision:resnet18", *args, "--input-size", "32", "--save", str(out)]
    )
    assert result.exit_code == 0, result.output
    with safe_open(str(out), framework="pt") as f:
        recorded = json.loads(f.metadata()["senet"])["model_kwargs"]["retrofit"]
    assert {k: recorded[k] for k in ("bias", "reduction", "gate", "squeeze")} == {
        "bias": False,
        "reduction": 8,
        "gate": "tanh",
        "squeeze": "avg",
    }


def test_retrofit_cli_bias_false_drops_the_biases(tmp_path: Path):
    out = tmp_path / "r18.safetensors"
    args = ["retrofit", "torchvision:resnet18", "--attn-kw", "bias=false", "--input-size", "32"]
    result = runner.invoke(app, [*args, "--stages", "5", "--save", str(out)])
    assert result.exit_code == 0, result.output
    with safe_open(str(out), framework="pt") as f:
        attn_keys = [k for k in f.keys() if ".attn." in k]  # noqa: SIM118 (not a dict)
    assert attn_keys and all(not k.endswith(".bias") for k in attn_keys), attn_keys


def test_retrofit_cli_unknown_attention_argument_is_named():
    result = runner.invoke(
        app, ["retrofit", "torchvision:resnet18", "--attn-kw", "reductio=8", "--dry-run"]
    )
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "takes no argument 'reductio' (did you mean 'reduction'?)" in result.output
    assert "reduction, squeeze" in result.output  # the valid ones, in constructor order


def test_retrofit_api_unknown_attention_argument_is_a_value_error():
    with pytest.raises(ValueError, match=r"attention 'cbam' takes no argument 'gate_'"):
        senet.retrofit(nn.Sequential(nn.Conv2d(3, 8, 3)), "cbam", gate_="tanh", input_size=8)


def test_retrofit_probe_input_that_does_not_fit_says_how_to_pass_input_size():
    model = nn.Sequential(nn.Linear(4, 4))
    with pytest.raises(ValueError, match=r"probe input.*\(1, 3, 224, 224\).*input_size=") as err:
        senet.retrofit(model)
    assert "Sequential" in str(err.value)
    assert not hasattr(model[0], "attn")  # untouched


def test_truncated_fashion_mnist_file_is_named_with_the_fix(tmp_path: Path, monkeypatch):
    system = tmp_path / "system"  # stands in for Debian's copy: synthetic IDX files, no skip
    files = write_fashion_mnist(system, seed=1)
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", system)
    prepare_fashion_mnist(tmp_path)  # torchvision's layout under the root, from that copy
    damaged = tmp_path / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte"
    damaged.write_bytes(damaged.read_bytes()[:1000])
    with pytest.raises(DataError) as err:
        create_dataset("fashion_mnist", "val", root=str(tmp_path))
    message = str(err.value)
    assert str(damaged) in message and "damaged" in message
    assert "1,000 bytes" in message and "7,856" in message  # 16 + 10 x 28 x 28
    assert f"Delete it and run again: senet then reads {system}" in message
    damaged.unlink()  # the advice works: the system copy is read instead
    dataset, _ = create_dataset("fashion_mnist", "val", root=str(tmp_path))
    assert torch.equal(dataset.images[:, 0], files["val"][0])


def test_ablation_title_states_the_budget_that_ran(tmp_path: Path):
    grid = grid_from_dict(
        {"base": "r.yaml", "title": "Reduction ratio r", "axes": {"optim.lr": [0.1]}}
    )
    (point,) = grid.points
    summary = {"final_top1": 50.0, "final_top5": 90.0, "params": 10, "macs": 20}
    summary |= {"train_images": 500, "epochs": 1}  # as overridden on the command line
    results = [PointResult(point, tmp_path / "p", "done", 1, RunSummary.from_dict(summary))]
    paths = write_report(grid, results, tmp_path)
    title = paths["md"].read_text().splitlines()[0]
    assert title == "### Reduction ratio r (500 train images, 1 epochs)"


def test_attention_arguments_are_checked_when_the_config_loads():
    with pytest.raises(ConfigError, match=r"takes no argument 'reductio' \(did you mean 'redu"):
        load_config(None, ["model.attn=se", "model.attn_kwargs.reductio=8"])
    with pytest.raises(ConfigError, match=r"model.retrofit=.*attention .cbam. takes no argument"):
        load_config(None, ["model.retrofit.attn=cbam", "model.retrofit.attn_kwargs.gate_=tanh"])
    with pytest.raises(ConfigError, match=r"model.retrofit.strategy' expects 'standard' \| 'pre'"):
        load_config(None, ["model.retrofit.strategy=side"])


def test_a_model_that_cannot_be_built_writes_no_run_folder(tmp_path: Path):
    run = tmp_path / "run"
    # attn unset (the model's default SE): the typo shows only when the model is built.
    overrides = [
        "model.name=se_resnet20_cifar",
        "model.attn_kwargs.reductio=8",
        "data.name=synthetic",
    ]
    overrides += ["data.num_classes=4", "data.image_size=16", "data.synthetic_train=32"]
    overrides += ["data.synthetic_val=8", "log.progress=none", f"output_dir={run}"]
    cfg = load_config(None, overrides)
    with pytest.raises(ConfigError, match="reductio"):
        train(cfg)
    assert not run.exists()


def test_evaluate_with_a_truncated_weights_file_names_the_file(tmp_path: Path):
    from _tiny_models import tiny_models_registered

    fixture = Path(__file__).parent / "fixtures" / "run_pre020"
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes((fixture / "best.safetensors").read_bytes()[:200])
    with tiny_models_registered():
        result = runner.invoke(app, ["evaluate", str(fixture), "--weights", str(broken)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "SafetensorError" not in result.output
    assert f"could not read {broken} as safetensors" in result.output
