"""Every registered model: forward, backward, classifier interface, preprocessing config, errors."""

import pytest
import torch
from torch import nn

import senet
from senet.layers import is_attention_module
from senet.models import _registry
from senet.models._registry import get_model_builder

ALL = senet.list_models()
CFG_KEYS = {"input_size", "mean", "std", "crop_pct", "interpolation", "url"}


def is_cifar(name: str) -> bool:
    return name.endswith("_cifar")


def test_registry_holds_the_issue_names():
    expected = {
        *(f"resnet{d}" for d in (18, 34, 50, 101, 152)),
        *(f"se_resnet{d}" for d in (18, 34, 50, 101, 152)),
        "resnext50_32x4d", "resnext101_32x4d", "se_resnext50_32x4d", "se_resnext101_32x4d",
        "senet154", "cbam_resnet50", "eca_resnet50",
        *(f"resnet{d}_cifar" for d in (20, 32, 44, 56, 110, 164)),
        *(f"se_resnet{d}_cifar" for d in (20, 32, 44, 56, 110, 164)),
        "wrn16_8_cifar", "se_wrn16_8_cifar",
    }  # fmt: skip
    assert expected <= set(ALL)
    assert senet.list_models("se_resnet*_cifar") == [
        f"se_resnet{d}_cifar" for d in (110, 164, 20, 32, 44, 56)
    ]
    assert "senet154" not in senet.list_models("*", exclude="senet*")


def input_side(name: str) -> int:
    """The side of the model's pretrained_cfg input (Inception-ResNet-v2: 299)."""
    return 32 if is_cifar(name) else 299 if "inception_resnet_v2" in name else 224


# VGG's 102M-parameter first FC layer makes one backward pass take ~10 s on a 2-core CPU; the
# family's own tests run a small VGG through the same code.
HEAVY = {"vgg16_bn", "se_vgg16_bn"}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in ALL]
)
def test_forward_backward_and_head(name):
    # One build per model: 5 classes and 1 input channel exercise num_classes and in_chans.
    # Small inputs; Inception-ResNet-v2's valid-padding stem needs at least 75 pixels.
    size = 32 if is_cifar(name) else 96 if "inception_resnet_v2" in name else 64
    model = senet.create_model(name, num_classes=5, in_chans=1)
    x = torch.randn(2, 1, size, size)
    out = model(x)
    assert out.shape == (2, 5)
    assert torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    unreached = [n for n, p in model.named_parameters() if p.grad is None]
    assert not unreached, f"parameters the backward pass does not reach: {unreached[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    # A zero gradient can be legitimate (an SE bottleneck of width 16 / 16 = 1 behind a dead
    # ReLU), but not for most of the network.
    zero = sum(not p.grad.any() for p in model.parameters())
    assert zero <= 0.1 * len(list(model.parameters()))

    model.eval()
    with torch.no_grad():
        odd = torch.randn(1, 1, size + 7, size - 5)  # adaptive pooling: any input size
        features = model.forward_features(odd)
        # num_features is the pre-logits width: the feature map's, except VGG's (FC-4096 head)
        assert features.shape[:2] == (1, 512 if "vgg" in name else model.num_features)
        pooled = model.forward_head(features, pre_logits=True)
        assert pooled.shape == (1, model.num_features)
        torch.testing.assert_close(model.forward_head(features), model(odd))
        model.reset_classifier(3)
        assert model(odd).shape == (1, 3)
        model.reset_classifier(0)
        torch.testing.assert_close(model(odd), pooled)

    cfg = model.pretrained_cfg
    assert cfg.keys() >= CFG_KEYS
    assert cfg["input_size"] == (1, input_side(name), input_side(name))
    assert len(cfg["mean"]) == len(cfg["std"]) == 1


@pytest.mark.parametrize("name", ALL)
def test_attention_modules_are_named_attn(name):
    # The analysis code finds gates by is_attention_module and by the name `attn`.
    with torch.device("meta"):
        model = senet.create_model(name)
    blocks = [m for n, m in model.named_modules() if n.startswith("layer") and n.count(".") == 1]
    named = {n: m for n, m in model.named_modules() if n.rsplit(".", 1)[-1] == "attn"}
    found = [n for n, m in model.named_modules() if is_attention_module(m)]
    assert all("attn" in n.split(".") for n in found)
    if name.startswith(("se_", "senet", "cbam_", "eca_")):
        assert named and all(is_attention_module(m) for m in named.values())
        # ResNets: one per residual block (the other families' sites: test_models_families.py).
        assert len(named) == len(blocks) or not blocks
    else:
        assert not named and not found
        assert all(b.attn is None for b in blocks)


def test_defaults_and_layouts():
    assert senet.create_model("resnet20_cifar").num_classes == 10
    assert senet.create_model("resnet18").num_classes == 1000
    r50 = get_model_builder("resnet50")()
    assert r50.stride_in_1x1 and r50.stem_pool == "caffe"
    assert r50.layer2[0].conv1.stride == (2, 2) and r50.layer2[0].conv2.stride == (1, 1)
    tv = get_model_builder("resnet50")(stride_in_1x1=False, stem_pool="torch")
    assert tv.layer2[0].conv1.stride == (1, 1) and tv.layer2[0].conv2.stride == (2, 2)
    rx = get_model_builder("se_resnext50_32x4d")()
    assert rx.layer3[0].conv2.stride == (2, 2) and rx.layer3[0].conv2.groups == 32


def test_senet154_matches_the_paper_appendix():
    with torch.device("meta"):
        model = senet.create_model("senet154")
    stem_convs = [m for m in model.stem if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in stem_convs] == [64, 64, 128]
    assert [c.kernel_size for c in stem_convs] == [(3, 3)] * 3
    assert isinstance(model.stem.pool, nn.MaxPool2d)
    assert [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == [3, 8, 36, 3]
    block = model.layer2[1]  # ResNeXt 64x4d: 3x3 width 512 at stage 3, first 1x1 halved
    assert (block.conv1.out_channels, block.conv2.out_channels, block.conv2.groups) == (
        256,
        512,
        64,
    )
    proj = model.layer2[0].downsample[0]
    assert proj.kernel_size == (3, 3) and proj.stride == (2, 2)
    assert model.drop_rate == 0.2


def test_unknown_name_suggests_the_closest():
    with pytest.raises(ValueError, match="did you mean se_resnet50"):
        senet.create_model("se_resnet5")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "middle"}, "'standard', 'pre', 'post', 'identity', 'conv3x3'"),
        ({"attn_stages": (1, 2)}, r"subset of \(2, 3, 4, 5\)"),
        ({"attn_stages": 3}, r"subset of \(2, 3, 4, 5\)"),
        ({"reduction": 8}, r"attn_kwargs=\{'reduction': 8\}"),
        ({"attn": None, "attn_kwargs": {"reduction": 8}}, "attn is None"),
        ({"attn": "sse"}, "unknown attention 'sse'"),
        ({"stem_pool": "avg"}, "'caffe', 'torch'"),
        ({"num_classes": -1}, "num_classes must be an integer >= 0"),
    ],
)
def test_bad_arguments_say_what_is_valid(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        senet.create_model("se_resnet18", **kwargs)


def test_conv3x3_strategy_needs_bottlenecks():
    with pytest.raises(ValueError, match="bottleneck block"):
        senet.create_model("se_resnet18", strategy="conv3x3")
    with pytest.raises(ValueError, match="bottleneck block"):
        senet.create_model("se_wrn16_8_cifar", strategy="conv3x3")


def test_cifar_stages_and_depths_are_checked():
    with pytest.raises(ValueError, match=r"subset of \(2, 3, 4\)"):
        senet.create_model("se_resnet20_cifar", attn_stages=(5,))
    with pytest.raises(ValueError, match="depth 6n\\+2"):
        senet.create_model("resnet20_cifar", depth=21)


def test_cifar_parameter_counts_match_the_resnet_papers():
    counts = {}
    for name in ("resnet20_cifar", "resnet110_cifar", "resnet164_cifar", "wrn16_8_cifar"):
        with torch.device("meta"):
            counts[name] = sum(p.numel() for p in senet.create_model(name).parameters())
    assert round(counts["resnet20_cifar"] / 1e6, 2) == 0.27  # He et al. 2016a, Table 6
    assert round(counts["resnet110_cifar"] / 1e6, 1) == 1.7
    assert round(counts["resnet164_cifar"] / 1e6, 1) == 1.7  # He et al. 2016b, Table 2
    assert round(counts["wrn16_8_cifar"] / 1e6, 1) == 11.0  # Zagoruyko & Komodakis, Table 4


def test_fashion_mnist_shaped_input():
    model = senet.create_model("se_resnet20_cifar", in_chans=1).eval()
    assert model(torch.randn(4, 1, 28, 28)).shape == (4, 10)


def test_zero_init_last_makes_blocks_start_as_identity():
    model = senet.create_model("se_resnet50", zero_init_last=True).eval()
    block = model.layer1[1]  # no projection: output = relu(0 * ... + x) = x for x >= 0
    x = torch.rand(1, 256, 8, 8)
    torch.testing.assert_close(block(x), x)
    assert all(not b.bn3.weight.any() for layer in (model.layer1, model.layer4) for b in layer)


def test_channels_last_gives_the_same_output():
    model = senet.create_model("se_resnext50_32x4d").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        out = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "size"), [("se_resnet20_cifar", 32), ("se_resnet18", 64)])
def test_torch_compile_matches_eager(name, size):
    model = senet.create_model(name).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(model)(x), model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("name", "size"), [("se_resnet20_cifar", 32), ("cbam_resnet50", 64)])
def test_torch_export_matches_eager(name, size):
    # torch.export is the deployment path; TorchScript, deprecated by PyTorch, is not supported.
    model = senet.create_model(name).eval()
    x = torch.randn(2, 3, size, size)
    exported = torch.export.export(model, (x,)).module()
    with torch.no_grad():
        torch.testing.assert_close(exported(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.fixture
def registry_restored():
    """The public register_model really registers; afterwards the zoo is restored, since the
    other tests check that the registry holds exactly the zoo."""
    saved = dict(_registry._MODELS)
    yield
    _registry._MODELS.clear()
    _registry._MODELS.update(saved)


def test_register_model_by_decorator_by_name_and_refusing_duplicates(registry_restored):
    @senet.register_model
    def _user_tiny(num_classes: int = 10, **kwargs) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(12, num_classes))

    @senet.register_model(name="_user_renamed")
    def builder(num_classes: int = 10, **kwargs) -> nn.Module:
        return nn.Linear(3, num_classes)

    assert _user_tiny.__name__ == "_user_tiny"  # the decorator hands the builder back
    assert senet.list_models("_user_*") == ["_user_renamed", "_user_tiny"]
    assert "builder" not in senet.list_models()
    assert senet.create_model("_user_tiny", num_classes=3)(torch.zeros(2, 3, 2, 2)).shape == (2, 3)
    assert senet.create_model("_user_renamed", num_classes=5).out_features == 5
    module = __name__
    with pytest.raises(ValueError, match=rf"model '_user_tiny' is already registered by {module}"):
        senet.register_model(name="_user_tiny")(builder)
    with pytest.raises(ValueError, match=r"model 'se_resnet50' is already registered by senet\."):
        senet.register_model(name="se_resnet50")(builder)
    assert senet.create_model("_user_renamed").out_features == 10  # the first one stays
