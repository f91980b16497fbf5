"""Checkpoint import for the other families: torchvision vgg16_bn, Cadene bninception and
inceptionresnetv2, timm inception_resnet_v2 and mobilenetv1_100 give the same outputs in senet's
models (random weights, no download)."""

import importlib.util
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import senet
from senet.models.weights import CheckpointError, convert_state_dict, detect_layout

timm = pytest.importorskip("timm")
torchvision = pytest.importorskip("torchvision")


def cadene(module: str):
    """A pretrainedmodels model file, loaded by path (the package re-exports functions under the
    module names, which hides the modules themselves)."""
    spec = importlib.util.find_spec("pretrainedmodels")
    if spec is None:
        pytest.skip("pretrainedmodels is not installed")
    path = Path(spec.submodule_search_locations[0]) / "models" / f"{module}.py"
    module_spec = importlib.util.spec_from_file_location(f"cadene_{module}", path)
    loaded = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(loaded)
    return loaded


def prepared(model: nn.Module) -> nn.Module:
    """Random BN statistics, affine terms and biases (sources zero-init some), eval mode; the
    fixed-size head pools of the Cadene models made adaptive so that small inputs run."""
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
        if getattr(m, "bias", None) is not None:
            m.bias.data.uniform_(-0.2, 0.2)
    for attr in ("global_pool", "avgpool_1a"):
        if isinstance(getattr(model, attr, None), nn.AvgPool2d):
            setattr(model, attr, nn.AdaptiveAvgPool2d(1))
    return model.eval()


# id: (source builder, senet name, layout, input side)
SOURCES = {
    "torchvision-vgg16_bn": (
        lambda: torchvision.models.vgg16_bn(num_classes=10), "vgg16_bn", "torchvision_vgg", 32
    ),
    "cadene-bninception": (
        lambda: cadene("bninception").BNInception(num_classes=10),
        "bninception", "cadene_bninception", 64,
    ),
    "cadene-inceptionresnetv2": (
        lambda: cadene("inceptionresnetv2").InceptionResNetV2(num_classes=10),
        "inception_resnet_v2", "inception_resnet_v2", 75,
    ),
    "timm-inception_resnet_v2": (
        lambda: timm.create_model("inception_resnet_v2", num_classes=10),
        "inception_resnet_v2", "inception_resnet_v2", 75,
    ),
    "timm-mobilenetv1_100": (
        lambda: timm.create_model("mobilenetv1_100", num_classes=10),
        "mobilenet_v1", "timm_mobilenetv1", 64,
    ),
}  # fmt: skip


@pytest.mark.parametrize("source_id", SOURCES)
def test_imported_weights_reproduce_the_source_model(source_id):
    build, name, layout, side = SOURCES[source_id]
    ref = prepared(build())
    state = ref.state_dict()
    assert detect_layout(state) == layout
    model = senet.load_weights(senet.create_model(name, num_classes=10), state).eval()
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        expected = ref(x)
        diff = (model(x) - expected).abs().max().item()
    assert diff <= 1e-5 * max(1.0, expected.abs().max().item()), diff


def test_a_safetensors_file_loads_whatever_its_key_order(tmp_path):
    # safetensors stores keys sorted (blocks.10 before blocks.2): the renaming must not rely on
    # the order of the keys.
    ref = prepared(timm.create_model("mobilenetv1_100", num_classes=10))
    path = tmp_path / "mobilenet.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    model = senet.create_model("mobilenet_v1", pretrained=path, num_classes=10).eval()
    assert model.pretrained_cfg["weights_layout"] == "timm_mobilenetv1"
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), atol=1e-5, rtol=0)


def test_vgg_conv_biases_are_folded_into_the_bn_running_mean():
    state = {
        "features.0.weight": torch.ones(2, 1, 3, 3),
        "features.0.bias": torch.tensor([1.0, -2.0]),
        "features.1.running_mean": torch.tensor([0.5, 0.5]),
        "features.1.running_var": torch.ones(2),
        "features.1.weight": torch.ones(2),
        "features.1.bias": torch.zeros(2),
        "features.3.weight": torch.ones(2, 2, 3, 3),
        "features.4.running_mean": torch.zeros(2),
        "features.7.weight": torch.ones(2, 2, 3, 3),
        "features.8.running_mean": torch.zeros(2),
        "classifier.0.weight": torch.ones(4, 2),
        "classifier.6.weight": torch.ones(3, 4),
    }
    out = convert_state_dict(state, "torchvision_vgg")
    assert out["features.conv1_1.bn.running_mean"].tolist() == [-0.5, 2.5]
    assert "features.conv1_1.conv.bias" not in out
    # features.3 follows conv 0 directly (same stage); features.7 comes after a pool (stage 2).
    assert "features.conv1_2.conv.weight" in out and "features.conv2_1.conv.weight" in out
    assert "fc.weight" in out and "pre_logits.0.weight" in out


def test_cadene_inceptionresnetv2_background_class_is_dropped():
    state = {"conv2d_1a.conv.weight": torch.zeros(1), "last_linear.weight": torch.arange(1001.0)}
    out = convert_state_dict(state, detect_layout(state))
    assert out["fc.weight"].tolist() == list(range(1, 1001))


def test_a_foreign_key_is_refused_with_its_name():
    state = {"conv1_7x7_s2.weight": torch.zeros(1), "inception_9z_mystery.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError, match="inception_9z_mystery"):
        convert_state_dict(state, detect_layout(state))


def test_a_family_checkpoint_does_not_fit_another_family():
    ref = timm.create_model("mobilenetv1_100", num_classes=10)
    with pytest.raises(CheckpointError, match="does not fit"):
        senet.load_weights(senet.create_model("shufflenet_v1_g3", num_classes=10), ref.state_dict())


def test_cadene_bninception_weights_bring_their_caffe_preprocessing(tmp_path):
    ref = cadene("bninception").BNInception(num_classes=10)
    path = tmp_path / "bninception.pth"
    torch.save(ref.state_dict(), path)
    cfg = senet.create_model("bninception", pretrained=path, num_classes=10).pretrained_cfg
    assert cfg["input_space"] == "BGR" and cfg["input_range"] == (0.0, 255.0)
    assert cfg["mean"] == (104.0, 117.0, 128.0) and cfg["std"] == (1.0, 1.0, 1.0)
    assert cfg["weights_layout"] == "cadene_bninception"


def test_vgg16_bn_knows_torchvision_weights():
    with torch.device("meta"):
        cfg = senet.create_model("vgg16_bn", num_classes=0).pretrained_cfg
    assert cfg["url"].endswith("/vgg16_bn-6c64b313.pth")
    assert cfg["weights_layout"] == "torchvision_vgg"
