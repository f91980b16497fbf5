"""`senet retrofit`: prints sites and cost, loads base weights, saves a rebuildable checkpoint."""

from __future__ import annotations

import json

import torch
import torchvision
from safetensors import safe_open
from safetensors.torch import load_file
from typer.testing import CliRunner, Result

import senet
from senet.cli import app


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, ["retrofit", *args])


def test_dry_run_prints_sites_and_cost() -> None:
    result = invoke("torchvision:resnet18", "--attn", "se", "--dry-run", "--input-size", "64")
    assert result.exit_code == 0, result.output
    assert "layer1.0.attn" in result.output and "layer4.1" in result.output
    assert "8 x se (standard, init=default) would add 89,080 params" in result.output
    assert "11,689,512 -> 11,778,592" in result.output


def test_weights_in_safetensors_out(tmp_path) -> None:
    torch.manual_seed(0)
    base = torchvision.models.resnet18()
    torch.save(base.state_dict(), tmp_path / "base.pth")
    out = tmp_path / "se.safetensors"
    result = invoke(
        "torchvision:resnet18",
        *("--strategy", "pre", "--init", "identity", "--stages", "4,5"),
        *("--attn-kw", "reduction=8", "--input-size", "64"),
        *("--weights", str(tmp_path / "base.pth"), "--save", str(out)),
    )
    assert result.exit_code == 0, result.output
    state = load_file(str(out))
    # Base weights were loaded before retrofitting and kept their names.
    for key, value in base.state_dict().items():
        torch.testing.assert_close(state[key], value)
    sites = sorted({k.rsplit(".attn.", 1)[0] for k in state if ".attn." in k})
    assert sites == ["layer3.0", "layer3.1", "layer4.0", "layer4.1"]
    with safe_open(str(out), "pt") as f:
        recorded = json.loads(f.metadata()["senet"])
    assert recorded["model"] == "torchvision:resnet18"
    retrofit = recorded["model_kwargs"]["retrofit"]
    assert retrofit["strategy"] == "pre" and retrofit["reduction"] == 8
    # The record rebuilds the model: create_model retrofits it the same way and loads strictly.
    rebuilt = senet.create_model("torchvision:resnet18", pretrained=out).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), base.eval()(x))


def test_cli_errors_are_clear() -> None:
    result = invoke("torchvision:resnet18", "--strategy", "sideways", "--input-size", "64")
    assert result.exit_code == 2 and "unknown strategy 'sideways'" in result.output
    result = invoke("caffe:resnet50", "--dry-run")
    assert result.exit_code == 2 and "bad model name 'caffe:resnet50'" in result.output
    result = invoke("torchvision:resnet18", "--dry-run", "--save", "x.safetensors")
    assert result.exit_code == 2 and "nothing to --save" in result.output
    result = invoke("torchvision:resnet18", "--dry-run", "--attn-kw", "reduction")
    assert result.exit_code == 2 and "expects key=value" in result.output


def test_pth_out_holds_the_same_state_as_safetensors_out(tmp_path) -> None:
    args = ["torchvision:resnet18", "--attn", "cbam", "--input-size", "64", "--save"]
    outputs = []
    for name in ("se.pth", "se.safetensors"):
        torch.manual_seed(0)  # the new modules' random init, the same for both files
        result = invoke(*args, str(tmp_path / name))
        assert result.exit_code == 0, result.output
        assert str(tmp_path / name) in result.output
        outputs.append(tmp_path / name)
    pth = torch.load(outputs[0], weights_only=True)
    assert isinstance(pth, dict) and pth.keys() == load_file(str(outputs[1])).keys()
    for key, value in load_file(str(outputs[1])).items():
        assert torch.equal(pth[key], value), key
    # It loads strictly into resnet18 retrofitted the same way: 8 CBAM blocks, nothing else.
    model = torchvision.models.resnet18()
    senet.retrofit(model, "cbam", input_size=64)
    model.load_state_dict(pth)
    assert sum(".attn." in k for k in pth) == 8 * len(model.layer1[0].attn.state_dict())
