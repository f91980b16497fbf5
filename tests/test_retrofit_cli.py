"""`senet retrofit`: prints sites and cost, loads base weights, saves a rebuildable checkpoint."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision
from safetensors import safe_open
from safetensors.torch import load_file
from typer.testing import CliRunner, Result

import senet
from senet.cli import app
from senet.retrofitting.cli import parse_kwargs


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
        "--strategy", "pre",
        "--init", "identity",
        "--stages", "4,5",
        "--attn-kw", "reduction=8",
        "--weights", str(tmp_path / "base.pth"),
        "--save", str(out),
        "--input-size", "64",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    state = load_file(str(out))
    # Base weights were loaded before retrofitting and kept their names.
    for key, value in base.state_dict().items():
        torch.testing.assert_close(state[key], value)
    assert sorted({k.rsplit(".attn.", 1)[0] for k in state if ".attn." in k}) == [
        "layer3.0", "layer3.1", "layer4.0", "layer4.1",
    ]  # fmt: skip
    with safe_open(str(out), "pt") as f:
        recipe = json.loads(f.metadata()["senet.retrofit"])
    assert recipe["strategy"] == "pre" and recipe["attn_kwargs"] == {"reduction": 8}
    # The recipe rebuilds the model: the saved state dict loads strictly and keeps the function.
    rebuilt = torchvision.models.resnet18().eval()
    senet.retrofit(
        rebuilt, recipe["attn"], strategy=recipe["strategy"], stages=recipe["stages"],
        init=recipe["init"], input_size=64, **recipe["attn_kwargs"],
    )  # fmt: skip
    rebuilt.load_state_dict(state, strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), base.eval()(x))


def test_cli_errors_are_clear() -> None:
    result = invoke("torchvision:resnet18", "--strategy", "sideways", "--input-size", "64")
    assert result.exit_code == 2 and "unknown strategy 'sideways'" in result.output
    result = invoke("caffe:resnet50", "--dry-run")
    assert result.exit_code == 2 and "bad model spec 'caffe:resnet50'" in result.output
    result = invoke("torchvision:resnet18", "--dry-run", "--save", "x.safetensors")
    assert result.exit_code == 2 and "nothing to --save" in result.output
    with pytest.raises(ValueError, match="key=value"):
        parse_kwargs(["reduction"])
    assert parse_kwargs(["reduction=8", "gate=tanh", "bias=False"]) == {
        "reduction": 8,
        "gate": "tanh",
        "bias": False,
    }


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
