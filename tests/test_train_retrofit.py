"""Training torchvision/timm models, with attention retrofitted by ``model.retrofit``."""

from __future__ import annotations

import pytest
import torch
import torchvision
from _tiny_models import QUICK

import senet
from senet.config import create_model_from_config
from senet.data import create_dataset
from senet.evaluation import EvalSource, evaluate_weights
from senet.train import ConfigError, load_config, read_weights, train
from senet.train.setup import model_for_data

RESNET18_SE = [
    "model.name=torchvision:resnet18",
    "model.retrofit.attn=se",
    "model.retrofit.reduction=8",
]


def _se_params(channels: list[int], reduction: int) -> int:
    # Two 1x1 convs with biases: C -> C/r -> C.
    return sum(2 * c * (c // reduction) + c // reduction + c for c in channels)


def _config(tmp_path, *extra):
    return load_config(None, [*QUICK, f"output_dir={tmp_path / 'run'}", *extra])


def test_train_a_retrofitted_torchvision_model_and_evaluate_it(tmp_path):
    summary = train(_config(tmp_path, *RESNET18_SE, "train.epochs=1"))
    base = sum(p.numel() for p in torchvision.models.resnet18(num_classes=4).parameters())
    se = _se_params([64, 64, 128, 128, 256, 256, 512, 512], reduction=8)
    assert summary["params"] == base + se
    state, meta = read_weights(tmp_path / "run" / "best.safetensors")
    assert meta["model_kwargs"]["retrofit"] == {"attn": "se", "reduction": 8}
    assert "layer4.1.attn.fc1.weight" in state
    # senet evaluate rebuilds the model, retrofit included, from the weights' metadata.
    weights = tmp_path / "run" / "best.safetensors"
    source = EvalSource("torchvision:resnet18", weights, "synthetic", size=64)
    report = evaluate_weights(source, output_dir=tmp_path / "eval")
    assert report.top1 == pytest.approx(summary["best_top1"])


def test_base_weights_load_before_the_retrofit(tmp_path):
    base = torchvision.models.resnet18(num_classes=4)
    torch.save(base.state_dict(), tmp_path / "base.pth")
    config = _config(
        tmp_path,
        *RESNET18_SE,
        "model.retrofit.init=identity",
        f"model.weights={tmp_path / 'base.pth'}",
    )
    val, info = create_dataset("synthetic", "val", num_classes=4, image_size=16, synthetic_size=8)
    model, kwargs, _, _ = model_for_data(config.model, info, val)
    assert kwargs["retrofit"]["init"] == "identity"
    assert torch.equal(model.conv1.weight, base.conv1.weight)
    assert isinstance(model.layer1[0].attn, senet.layers.SqueezeExcite)
    x = torch.stack([val[i][0] for i in range(4)])
    with torch.no_grad():  # identity init: the pretrained function, unchanged
        torch.testing.assert_close(model.eval()(x), base.eval()(x), rtol=0, atol=1e-5)


def test_foreign_model_errors_name_the_way_out(tmp_path):
    with pytest.raises(ConfigError, match=r"torchvision:resnet18 reads 3-channel images.*timm:"):
        train(_config(tmp_path, *RESNET18_SE, "data.channels=1"))
    with pytest.raises(ConfigError, match=r"unknown torchvision model 'resnet181'"):
        train(_config(tmp_path, "model.name=torchvision:resnet181"))
    with pytest.raises(ConfigError, match=r"model.retrofit=.*unknown attention 'sse'"):
        train(_config(tmp_path, "model.name=torchvision:resnet18", "model.retrofit.attn=sse"))


def test_retrofit_builds_on_the_meta_device_for_grid_checks(tmp_path):
    # `senet ablate` builds every point's model under torch.device("meta") before any run.
    config = _config(tmp_path, *RESNET18_SE)
    with torch.device("meta"):
        model, kwargs = create_model_from_config(config.model, num_classes=4, in_chans=3)
    assert next(model.parameters()).is_meta and kwargs["retrofit"]["attn"] == "se"
    base = sum(p.numel() for p in torchvision.models.resnet18(num_classes=4).parameters())
    se = _se_params([64, 64, 128, 128, 256, 256, 512, 512], reduction=8)
    assert sum(p.numel() for p in model.parameters()) == base + se


def test_fine_tune_from_weights_with_another_head(tmp_path):
    # ImageNet-style weights (1000 classes) into a 4-class model: weights_head=false keeps the
    # model's new classifier and loads everything else, before the retrofit.
    base = torchvision.models.resnet18(num_classes=1000)
    torch.save(base.state_dict(), tmp_path / "imagenet.pth")
    common = [*RESNET18_SE, f"model.weights={tmp_path / 'imagenet.pth'}"]
    val, info = create_dataset("synthetic", "val", num_classes=4, image_size=16, synthetic_size=8)
    with pytest.raises(
        ConfigError,
        match=r"(?s)imagenet.pth: the checkpoint does not fit ResNet.*fc.weight.*weights_head=false",
    ):
        model_for_data(_config(tmp_path, *common).model, info, val)
    model, _, _, _ = model_for_data(
        _config(tmp_path, *common, "model.weights_head=false").model, info, val
    )
    assert model.fc.out_features == 4 and torch.equal(model.conv1.weight, base.conv1.weight)
    assert torch.equal(model.layer4[1].bn2.running_var, base.layer4[1].bn2.running_var)
