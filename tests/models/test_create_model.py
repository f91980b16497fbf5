"""``senet.create_model``, the one builder: names from three sources, weights in every layout
(a run's file rebuilds its model), retrofit and STN, the head policy, errors naming arguments."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

import senet
from senet.config import ConfigError, create_model_from_config, load_config
from senet.models import CheckpointError, ModelError, STNClassifier, classifier_prefix
from senet.models.weights import save_weights

PACKAGE = Path(senet.__file__).parent


def test_names_from_senet_torchvision_and_timm():
    assert type(senet.create_model("se_resnet20_cifar")).__name__ == "CifarResNet"
    assert type(senet.create_model("torchvision:resnet18", num_classes=3)).__name__ == "ResNet"
    pytest.importorskip("timm")
    timm_model = senet.create_model("timm:resnet10t", in_chans=1, num_classes=3).eval()
    assert timm_model(torch.randn(1, 1, 32, 32)).shape == (1, 3)


def test_retrofit_and_stn_arguments_build_the_whole_model():
    model = senet.create_model(
        "torchvision:resnet18",
        num_classes=4,
        retrofit={"attn": "se", "reduction": 8, "input_size": 32},
        stn={"kind": "affine"},
    )
    assert isinstance(model, STNClassifier)
    assert isinstance(model.model.layer1[0].attn, nn.Module)
    assert classifier_prefix(model) == "model.fc."


def test_a_runs_weights_rebuild_the_model_it_was_trained_as(tmp_path):
    kwargs = {"num_classes": 4, "in_chans": 1, "retrofit": {"attn": "eca"}, "stn": {}}
    kwargs["retrofit"]["input_size"] = 28
    kwargs["stn"] = {"kind": "affine", "output_size": 28}
    trained = senet.create_model("resnet20_cifar", **kwargs).eval()
    path = tmp_path / "best.safetensors"
    save_weights(path, trained, {"model": "resnet20_cifar", "model_kwargs": kwargs})
    rebuilt = senet.create_model("resnet20_cifar", pretrained=path).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), trained(x))
    with pytest.raises(CheckpointError, match="holds weights of 'resnet20_cifar'"):
        senet.create_model("resnet56_cifar", pretrained=path)


def test_torchvision_weights_pick_the_layout_the_family_declares(tmp_path):
    torch.manual_seed(0)
    source = torchvision.models.resnet18(num_classes=5).eval()
    torch.save(source.state_dict(), tmp_path / "tv.pth")
    model = senet.create_model("resnet18", pretrained=tmp_path / "tv.pth").eval()
    # The checkpoint's head (5 classes) and its architecture (stride on the 3x3) come with it.
    assert model.num_classes == 5 and model.stride_in_1x1 is False
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), source(x), rtol=1e-4, atol=1e-4)
    # A family that does not read the torchvision ResNet layout says which layouts it reads.
    with pytest.raises(CheckpointError, match=r"reads the layouts senet, torchvision_vgg"):
        senet.create_model("vgg16_bn", pretrained=tmp_path / "tv.pth")


def test_the_head_policy(tmp_path):
    source = senet.create_model("resnet20_cifar", num_classes=10)
    path = tmp_path / "w.pth"
    torch.save(source.state_dict(), path)
    fc = source.fc.weight
    loaded = senet.create_model("resnet20_cifar", pretrained=path)
    assert torch.equal(loaded.fc.weight, fc)  # fits: loaded
    fresh = senet.create_model("resnet20_cifar", pretrained=path, num_classes=3)
    assert fresh.fc.out_features == 3  # does not fit: a fresh head (pretrained_head=None)
    kept = senet.create_model("resnet20_cifar", pretrained=path, pretrained_head=False)
    assert not torch.equal(kept.fc.weight, fc)
    assert torch.equal(kept.layer1[0].conv1.weight, source.layer1[0].conv1.weight)
    with pytest.raises(CheckpointError, match="pretrained_head=False keeps a fresh one") as err:
        senet.create_model("resnet20_cifar", pretrained=path, num_classes=3, pretrained_head=True)
    assert err.value.argument == "pretrained_head"


@pytest.mark.parametrize(
    ("call", "argument", "message"),
    [
        (dict(name="se_resnet5"), "name", "unknown model 'se_resnet5'; did you mean"),
        (dict(name="keras:resnet50"), "name", "bad model name 'keras:resnet50'"),
        (dict(name="resnet20_cifar", pretrained=3), "pretrained", "pretrained must be"),
        (dict(name="resnet20_cifar", pretrained=True), "pretrained", "no public weights"),
        (dict(name="torchvision:resnet18", in_chans=1), "in_chans", "reads 3-channel images"),
        (dict(name="resnet20_cifar", retrofit={"attn": "sse"}), "retrofit", "unknown attention"),
        (dict(name="resnet20_cifar", stn={"kind": "tps"}), "stn", "unknown kind 'tps'"),
    ],
)
def test_errors_name_the_argument(call, argument, message):
    name = call.pop("name")
    with pytest.raises(ModelError, match=message) as err:
        senet.create_model(name, **call)
    assert err.value.argument == argument


def test_missing_and_truncated_weights_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope\.safetensors.*does not exist"):
        senet.create_model("resnet20_cifar", pretrained=tmp_path / "nope.safetensors")
    good = tmp_path / "good.safetensors"
    save_weights(good, senet.create_model("resnet20_cifar"), {"model": "resnet20_cifar"})
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(good.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"broken\.safetensors.*truncated"):
        senet.create_model("resnet20_cifar", pretrained=broken)


def test_the_config_layer_names_the_key(tmp_path):
    def build(*overrides: str) -> None:
        cfg = load_config(None, list(overrides)).model
        create_model_from_config(cfg, num_classes=10, in_chans=1)

    with pytest.raises(ConfigError, match=r"^model\.weights=.*nope\.pth.*does not exist"):
        build(f"model.weights={tmp_path / 'nope.pth'}")
    with pytest.raises(ConfigError, match=r"^model\.retrofit=\{'attn': 'sse'"):
        build("model.retrofit.attn=sse")
    with pytest.raises(ConfigError, match=r"^model\.in_chans=None: torchvision:resnet18 reads 3"):
        build("model.name=torchvision:resnet18")
    with pytest.raises(ConfigError, match=r"^model\.name=se_resnet5: unknown model"):
        build("model.name=se_resnet5")
    imagenet_head = senet.create_model("resnet20_cifar", num_classes=1000, in_chans=1)
    torch.save(imagenet_head.state_dict(), tmp_path / "w.pth")
    with pytest.raises(
        ConfigError, match=r"(?s)^model\.weights_head=True: .*w\.pth: .*weights_head=false"
    ):
        build("model.name=resnet20_cifar", f"model.weights={tmp_path / 'w.pth'}")


def _weight_loading_calls(source: str) -> list[int]:
    """Lines of ``source`` that copy a state dict into a module."""
    loads = {"load_state_dict", "load_weights", "load_converted"}
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in loads:
                lines.append(node.lineno)
    return lines


def test_only_models_loads_weights_into_a_new_model():
    # Resuming restores a checkpoint into the run's own parts (train/checkpoint.py); every other
    # load into a model goes through create_model.
    allowed = ("models/", "train/checkpoint.py")
    outside = [
        f"{path.relative_to(PACKAGE)}:{line}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if not str(path.relative_to(PACKAGE)).startswith(allowed)
        for line in _weight_loading_calls(path.read_text())
    ]
    assert not outside, f"weights loaded outside senet.models: {outside}"


def test_the_weight_loading_guard_sees_a_load():
    source = "def sneaky(model, state):\n    model.load_state_dict(state)\n    load_weights(model, state)\n"
    assert _weight_loading_calls(source) == [2, 3]
