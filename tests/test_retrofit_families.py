"""retrofit on the paper's other families (Tables 2, 3, 6): the sites the se_ models have.

Every expected parameter count is the SE formula per site, ``2 * C * (C // 16) + C // 16 + C``
(two FC layers with biases, reduction 16), summed over the channel counts the paper's placement
gives, so agreement with the zoo's se_ models follows from the same formula.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import senet
from tests._shufflenet_v1 import ShuffleNetV1


def _timm():
    return pytest.importorskip("timm", reason="timm is not installed (pip install 'senet[test]')")


def _cadene():
    # pretrainedmodels imports six without declaring it: a missing six skips too.
    return pytest.importorskip(
        "pretrainedmodels", reason="pretrainedmodels is not installed (pip install 'senet[test]')"
    )


def se_params(channels: int, reduction: int = 16) -> int:
    hidden = channels // reduction
    return 2 * channels * hidden + hidden + channels


def outputs_equal_with_identity_init(
    model: nn.Module, x: torch.Tensor, **kwargs: object
) -> senet.RetrofitReport:
    """Retrofit with init="identity" and check the function is unchanged and still trains."""
    model.eval()
    with torch.no_grad():
        before = model(x)
    report = senet.retrofit(model, "se", init="identity", **kwargs)
    with torch.no_grad():
        torch.testing.assert_close(model(x), before, rtol=0, atol=1e-5)
    # Eval mode: a train-mode BN after a site would cancel a per-channel gate's gradient.
    out = model(x)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(0))
    (out * weights).sum().backward()
    for site in report.sites:
        attn = model.get_submodule(site.attn_path)
        assert attn.fc2.weight.grad is not None and attn.fc2.weight.grad.abs().sum() > 0, site
    return report


# ---- plain stacks: VGG-16 (BN), MobileNet v1 ------------------------------------------------

VGG16_CONV_CHANNELS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]


@pytest.mark.slow
def test_vgg16_bn_se_after_the_relu_of_each_of_13_convs() -> None:
    model = torchvision.models.vgg16_bn(weights=None)
    report = outputs_equal_with_identity_init(model, torch.randn(2, 3, 64, 64), input_size=64)

    convs = [i for i, m in enumerate(model.features) if isinstance(m, nn.Conv2d)]
    assert [s.unit for s in report.sites] == [f"features.{i}" for i in convs]
    # features.i is the conv, i+1 its BN, i+2 its ReLU: SE hangs on the ReLU's output.
    assert [s.attn_path for s in report.sites] == [f"features.{i + 2}.attn" for i in convs]
    assert all(isinstance(model.features[i + 2], nn.ReLU) for i in convs)
    assert [s.channels for s in report.sites] == VGG16_CONV_CHANNELS
    assert report.added_params == sum(se_params(c) for c in VGG16_CONV_CHANNELS) == 230_792


MOBILENET_V1_BLOCK_CHANNELS = [64, 128, 128, 256, 256, *[512] * 6, 1024, 1024]


def test_timm_mobilenet_v1_se_after_each_of_13_depthwise_separable_blocks() -> None:
    model = _timm().create_model("mobilenetv1_100")
    report = outputs_equal_with_identity_init(model, torch.randn(2, 3, 64, 64), input_size=64)

    assert len(report.sites) == 13
    assert {s.kind for s in report.sites} == {"block"}
    for site in report.sites:  # each block is depthwise 3x3 -> pointwise 1x1; SE on its output
        block = model.get_submodule(site.unit)
        convs = [
            m for n, m in block.named_modules() if isinstance(m, nn.Conv2d) and "attn" not in n
        ]
        assert [c.kernel_size for c in convs] == [(3, 3), (1, 1)]
        assert convs[0].groups == convs[0].in_channels
    assert [s.channels for s in report.sites] == MOBILENET_V1_BLOCK_CHANNELS
    assert report.added_params == sum(se_params(c) for c in MOBILENET_V1_BLOCK_CHANNELS)
    # Paper Table 3: MobileNet 4.2M -> SE-MobileNet 4.7M parameters.
    assert round(report.base_params / 1e6, 1) == 4.2
    assert round(report.params / 1e6, 1) == 4.7


# ---- Inception: one site per multi-branch module ----------------------------------------------

BNINCEPTION_MODULES = {  # module: output channels (concat of its branches)
    "inception_3a": 256, "inception_3b": 320, "inception_3c": 576,
    "inception_4a": 576, "inception_4b": 576, "inception_4c": 608, "inception_4d": 608,
    "inception_4e": 1056, "inception_5a": 1024, "inception_5b": 1024,
}  # fmt: skip


@pytest.mark.slow
def test_cadene_bninception_flat_forward_gets_one_site_per_inception_module() -> None:
    # Cadene's BNInception is one flat forward: its 10 Inception modules exist only as concats.
    model = _cadene().bninception(pretrained=None)
    report = outputs_equal_with_identity_init(model, torch.randn(1, 3, 224, 224))

    assert {s.unit: s.channels for s in report.sites} == BNINCEPTION_MODULES
    assert {s.kind for s in report.sites} == {"multi-branch"}
    assert [s.attn_path for s in report.sites] == [f"{m}_attn" for m in BNINCEPTION_MODULES]
    assert report.added_params == sum(se_params(c) for c in BNINCEPTION_MODULES.values())
    assert {s.path for s in report.skipped} == {"conv1_7x7_s2", "conv2_3x3_reduce", "conv2_3x3"}
    # The SE module sits on the concat: the next module's branches all read its output.
    seen = []
    model.inception_3b_1x1.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    model.inception_3a_attn.register_forward_hook(lambda m, args, out: seen.append(out))
    model.eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 224, 224))
    assert seen[0] is seen[1]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "make", "size", "modules"),
    [
        (
            "googlenet",
            lambda: torchvision.models.googlenet(weights=None, init_weights=False),
            224,
            ["inception3a", "inception3b", "inception4a", "inception4b", "inception4c",
             "inception4d", "inception4e", "inception5a", "inception5b"],
        ),
        (
            "inception_v3",
            lambda: torchvision.models.inception_v3(weights=None, init_weights=False),
            299,
            ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
             "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"],
        ),
        (
            "timm inception_v3",
            lambda: _timm().create_model("inception_v3"),
            299,
            ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
             "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"],
        ),
    ],
)  # fmt: skip
def test_inception_modules_are_one_site_each(name, make, size, modules) -> None:
    model = make()
    report = senet.retrofit(model, "se", input_size=size, dry_run=True)
    assert [s.unit for s in report.sites] == modules, name
    assert {s.kind for s in report.sites} == {"multi-branch"}
    # The stride-2 reduction modules too, and never a conv inside a module (the aux head's
    # convs are skipped as head convs).
    assert not any(s.unit.count(".") for s in report.sites)


IRV2_REPEATS = {"repeat": (10, 320), "repeat_1": (20, 1088), "repeat_2": (9, 2080)}
IRV2_MIXED = {"mixed_5b": 320, "mixed_6a": 1088, "mixed_7a": 2080}


@pytest.mark.slow
@pytest.mark.parametrize("source", ["timm", "cadene"])
def test_inception_resnet_v2_se_on_each_residual_branch_before_the_scaling(source: str) -> None:
    if source == "timm":
        model = _timm().create_model("inception_resnet_v2")
    else:
        model = _cadene().inceptionresnetv2(pretrained=None)
        model.avgpool_1a = nn.AdaptiveAvgPool2d(1)  # its fixed 8x8 pool needs 299x299 input
    model.eval()
    report = senet.retrofit(model, "se", input_size=139)

    residual = [f"{stage}.{i}" for stage, (n, _) in IRV2_REPEATS.items() for i in range(n)]
    assert [s.unit for s in report.sites if s.kind == "residual"] == [*residual, "block8"]
    assert [s.unit for s in report.sites if s.kind == "multi-branch"] == list(IRV2_MIXED)
    channels = [c for n, c in IRV2_REPEATS.values() for _ in range(n)] + [2080]
    channels += list(IRV2_MIXED.values())
    assert report.added_params == sum(se_params(c) for c in channels)
    assert len(report.sites) == 43

    # SE recalibrates the branch's last conv output; the residual scaling comes after it:
    # out = act(x + scale * SE(conv2d(cat(branches)))).
    block = model.repeat[0]
    assert "before the residual scaling and the add" in report.sites[1].location
    seen = {}
    block.conv2d.register_forward_hook(lambda m, a, out: seen.setdefault("conv", out))
    block.attn.register_forward_hook(lambda m, a, out: seen.update(attn_in=a[0], attn=out))
    x = torch.randn(1, 320, 15, 15)
    with torch.no_grad():
        y = block(x)
    assert seen["attn_in"] is seen["conv"]
    act = block.act if source == "timm" else block.relu
    torch.testing.assert_close(y, act(x + block.scale * seen["attn"]), rtol=0, atol=1e-6)


# ---- ShuffleNet v1: forwards that branch on stride and cannot be traced -----------------------

# Per unit: channels of the residual branch (stride-2 units produce out - in, concatenated).
SHUFFLENET_G3_BRANCH_CHANNELS = [216, *[240] * 3, 240, *[480] * 7, 480, *[960] * 3]


@pytest.mark.parametrize("traceable", [False, True])
def test_shufflenet_v1_se_at_the_branch_end_before_add_or_concat(traceable: bool) -> None:
    torch.manual_seed(0)
    model = ShuffleNetV1(groups=3, traceable=traceable).eval()
    report = outputs_equal_with_identity_init(model, torch.randn(1, 3, 64, 64), input_size=64)

    assert [s.unit for s in report.sites] == [f"features.{i}" for i in range(16)]
    assert {s.kind for s in report.sites} == {"residual"}
    assert [s.channels for s in report.sites] == SHUFFLENET_G3_BRANCH_CHANNELS
    assert report.added_params == sum(se_params(c) for c in SHUFFLENET_G3_BRANCH_CHANNELS)
    assert report.added_params == 618_805  # paper Table 3: ShuffleNet 1.8M -> 2.4M
    assert round(report.base_params / 1e6, 1) == 1.9  # this g=3 layout counts 1.86M
    assert round(report.params / 1e6, 1) == 2.5
    for site, unit in zip(report.sites, model.features, strict=True):
        merge = "add" if unit.stride == 1 else "concat with the shortcut"
        assert f"before the {merge}" in site.location, site
        if not traceable:  # read by running: the output of branch_main_2, never branch_main_1
            assert site.attn_path == f"{site.unit}.branch_main_2.attn"


def test_shufflenet_v1_untraceable_and_traceable_place_se_identically() -> None:
    """The same weights give the same outputs whether retrofit read the unit by tracing it
    (attention inserted into the forward) or by running it (attention on branch_main_2)."""
    torch.manual_seed(0)
    run = ShuffleNetV1(groups=3).eval()
    traced = ShuffleNetV1(groups=3, traceable=True).eval()
    traced.load_state_dict(run.state_dict())
    senet.retrofit(run, "se", input_size=64)
    senet.retrofit(traced, "se", input_size=64)
    state = {k.replace(".branch_main_2.attn.", ".attn."): v for k, v in run.state_dict().items()}
    traced.load_state_dict(state)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), run(x), rtol=0, atol=1e-5)


def test_untraceable_units_other_strategies_refused_post_works() -> None:
    model = ShuffleNetV1(groups=3)
    with pytest.raises(ValueError, match="needs the unit's graph"):
        senet.retrofit(model, "se", strategy="pre", input_size=64)
    report = senet.retrofit(model, "se", strategy="post", input_size=64)
    assert [s.attn_path for s in report.sites] == [f"features.{i}.attn" for i in range(16)]


class _OpaqueScaledBlock(nn.Module):
    """A residual unit that fx cannot trace and whose branch ends in a function."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 1e30:  # data-dependent control flow: untraceable
            return x
        return torch.relu(x + torch.flip(self.body(x), dims=[1]))


class _Basic(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.conv2(torch.relu(self.conv1(x))))


def test_undecided_unit_is_reported_not_guessed() -> None:
    model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), _OpaqueScaledBlock(32), _Basic(32))
    report = senet.retrofit(model, "se", input_size=32)
    assert [s.unit for s in report.sites] == ["2"]
    reasons = {s.path: s.reason for s in report.skipped}
    assert "not in a child module" in reasons["1"] and "could not be traced" in reasons["1"]
    assert not any(s.unit.startswith("1.") for s in report.sites)


# ---- detection and segmentation models: SE in the backbone (paper Table 6) --------------------

RESNET50_CHANNELS = [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3


@pytest.mark.slow
def test_faster_rcnn_whole_model_takes_se_in_its_backbone() -> None:
    model = torchvision.models.detection.fasterrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, min_size=128, max_size=128
    )
    report = senet.retrofit(model, "se")

    body = [f"backbone.body.layer{i + 1}.{j}" for i, n in enumerate((3, 4, 6, 3)) for j in range(n)]
    assert [s.unit for s in report.sites] == body
    assert [s.attn_path for s in report.sites] == [f"{u}.attn" for u in body]
    assert [s.stage for s in report.sites] == [2] * 3 + [3] * 4 + [4] * 6 + [5] * 3
    assert report.added_params == sum(se_params(c) for c in RESNET50_CHANNELS) == 2_530_992
    assert report.params == sum(p.numel() for p in model.parameters())
    skipped = {s.path for s in report.skipped}
    assert {"backbone.fpn", "rpn", "roi_heads"} <= skipped
    model.eval()
    with torch.no_grad():
        (detections,) = model([torch.rand(3, 96, 128)])
    assert set(detections) == {"boxes", "labels", "scores"}
    model.train()
    target = {"boxes": torch.tensor([[10.0, 10.0, 60.0, 50.0]]), "labels": torch.tensor([1])}
    losses = model([torch.rand(3, 96, 128)], [target])
    sum(losses.values()).backward()
    assert model.backbone.body.layer4[2].attn.fc2.weight.grad is not None


@pytest.mark.slow
@pytest.mark.parametrize("name", ["deeplabv3_resnet50", "fcn_resnet50"])
def test_segmentation_model_takes_se_in_its_backbone(name: str) -> None:
    make = getattr(torchvision.models.segmentation, name)
    model = make(weights=None, weights_backbone=None, aux_loss=True)
    report = senet.retrofit(model, "se", input_size=64)

    body = [f"backbone.layer{i + 1}.{j}" for i, n in enumerate((3, 4, 6, 3)) for j in range(n)]
    assert [s.unit for s in report.sites] == body
    assert report.added_params == sum(se_params(c) for c in RESNET50_CHANNELS)
    assert {"classifier", "aux_classifier"} <= {s.path for s in report.skipped}
    assert report.model == f"{type(model).__name__} (backbone)"
    assert "classifier: outside the backbone's feature extractor backbone" in str(report)
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert out["out"].shape == (1, 21, 64, 64)


@pytest.mark.slow
def test_detector_sites_inside_the_backbone_are_named_from_the_whole_model() -> None:
    model = torchvision.models.detection.fasterrcnn_resnet50_fpn(
        weights=None, weights_backbone=None
    )
    report = senet.retrofit(model, "se", sites=["backbone.body.layer4.2"], dry_run=True)
    assert [s.attn_path for s in report.sites] == ["backbone.body.layer4.2.attn"]
    picked = senet.retrofit(
        model, "se", dry_run=True, sites=lambda path, m: path == "backbone.body.layer3.0"
    )
    assert [s.unit for s in picked.sites] == ["backbone.body.layer3.0"]


def test_torchvision_shufflenet_v2_one_site_per_unit() -> None:
    # The stride-2 unit is channel_shuffle(cat(branch1(x), branch2(x))): its forward holds no
    # single concat output, so the inline concat is found inside it and named after the unit.
    model = torchvision.models.shufflenet_v2_x0_5(num_classes=10)
    report = senet.retrofit(model, "se", input_size=64, dry_run=True)
    units = [f"stage{s}.{i}" for s, n in ((2, 4), (3, 8), (4, 4)) for i in range(n)]
    assert [s.unit for s in report.sites] == units
    assert [s.attn_path for s in report.sites] == [f"{u}.attn" for u in units]
    assert [s.kind for s in report.sites if s.unit.endswith(".0")] == ["multi-branch"] * 3
