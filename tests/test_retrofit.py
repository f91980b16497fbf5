"""senet.retrofit: attention into torchvision, timm and user CNNs, at the paper's places."""

from __future__ import annotations

import copy
import io
import threading
import warnings
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import senet
from senet.layers import ECA, SqueezeExcite
from senet.retrofitting.insert import CenteredGate, IdentityBlend


def se_params(channels: int, reduction: int = 16) -> int:
    """Parameters of the paper's SE block with FC biases: 2 C^2 / r + C / r + C."""
    hidden = max(1, channels // reduction)
    return 2 * channels * hidden + hidden + channels


def _timm_resnet50() -> nn.Module:
    timm = pytest.importorskip("timm")
    return timm.create_model("resnet50")


BOTTLENECK_OUT = [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3
MODELS: dict[str, tuple[Callable[[], nn.Module], int, list[int]]] = {
    # name: (builder, input size, channels of each site in order)
    "resnet18": (
        torchvision.models.resnet18,
        64,
        [64] * 2 + [128] * 2 + [256] * 2 + [512] * 2,
    ),
    "resnet50": (torchvision.models.resnet50, 64, BOTTLENECK_OUT),
    "resnext50_32x4d": (torchvision.models.resnext50_32x4d, 64, BOTTLENECK_OUT),
    "wide_resnet50_2": (torchvision.models.wide_resnet50_2, 64, BOTTLENECK_OUT),
    # Every inverted-residual block: 10 with a residual add (SE before it), 7 without (SE on
    # the block output); the stem conv and the final 1x1 conv are not blocks.
    "mobilenet_v2": (
        torchvision.models.mobilenet_v2,
        64,
        [16, 24, 24, 32, 32, 32, 64, 64, 64, 64, 96, 96, 96, 160, 160, 160, 320],
    ),
    # A plain network: SE after every conv-BN-ReLU.
    "vgg16_bn": (
        torchvision.models.vgg16_bn,
        64,
        [64, 64, 128, 128, 256, 256, 256] + [512] * 6,
    ),
    # SE-Inception: one SE per Inception module (Mixed_5b .. Mixed_7c).
    "inception_v3": (
        lambda: torchvision.models.inception_v3(init_weights=False, aux_logits=False),
        80,
        [256, 288, 288, 768, 768, 768, 768, 768, 1280, 2048, 2048],
    ),
    # One SE per dense layer, on the growth-rate features it adds.
    "densenet121": (torchvision.models.densenet121, 64, [32] * 58),
    "timm_resnet50": (_timm_resnet50, 64, BOTTLENECK_OUT),
}


@pytest.fixture(scope="module")
def base_models() -> dict[str, nn.Module]:
    """Each base model built once; tests retrofit deep copies."""
    return {}


def fresh(base_models: dict[str, nn.Module], name: str) -> nn.Module:
    if name not in base_models:
        torch.manual_seed(0)
        base_models[name] = MODELS[name][0]().eval()
    return copy.deepcopy(base_models[name])


def count_calls(modules: list[nn.Module]) -> tuple[dict[int, int], list]:
    calls = {id(m): 0 for m in modules}

    def hook(module: nn.Module, args: object) -> None:
        calls[id(module)] += 1

    return calls, [m.register_forward_pre_hook(hook) for m in modules]


def inserted(model: nn.Module, report: senet.RetrofitReport) -> list[nn.Module]:
    return [model.get_submodule(s.attn_path) for s in report.sites]


@pytest.mark.parametrize("name", list(MODELS))
def test_sites_params_forward_backward(base_models: dict[str, nn.Module], name: str) -> None:
    model = fresh(base_models, name)
    _, size, channels = MODELS[name]
    before = sum(p.numel() for p in model.parameters())
    report = senet.retrofit(model, "se", input_size=size)

    assert [s.channels for s in report.sites] == channels
    assert report.added_params == sum(se_params(c) for c in channels)
    assert sum(p.numel() for p in model.parameters()) == before + report.added_params
    modules = inserted(model, report)
    assert all(isinstance(m, SqueezeExcite) and m.reduction == 16 for m in modules)

    # The no-op trap: every inserted module must run, once per forward.
    model.train()
    calls, handles = count_calls(modules)
    out = model(torch.randn(2, 3, size, size))
    for h in handles:
        h.remove()
    assert out.shape == (2, 1000)
    assert list(calls.values()) == [1] * len(modules)
    out.logsumexp(1).mean().backward()
    # DDP's default needs every parameter used: all of them, old and new, get a gradient.
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []
    if name != "timm_resnet50":  # timm zero-inits each bn3, so SE sees zeros at first
        # (fc2.bias: with C = 16 the single hidden ReLU unit may be off for both samples.)
        assert all(m.fc2.bias.grad.abs().sum() > 0 for m in modules)


def sgd_steps(model: nn.Module, size: int, steps: int = 3) -> None:
    """A few plain training steps: train mode, cross-entropy on random labels."""
    torch.manual_seed(1)
    x, y = torch.randn(4, 3, size, size), torch.arange(4)
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize("name", list(MODELS))
def test_identity_init_keeps_function_and_trains(
    base_models: dict[str, nn.Module], name: str
) -> None:
    model = fresh(base_models, name)
    base = copy.deepcopy(model)
    size = MODELS[name][1]
    report = senet.retrofit(model, "se", init="identity", input_size=size)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        diff = (model(x) - base(x)).abs().max().item()
    assert diff <= 1e-5
    # SE at its identity point: same parameters as the paper's SE, logit layer zeroed, gate
    # 2 * sigmoid (exactly 1 at the start).
    assert report.added_params == sum(se_params(c) for c in MODELS[name][2])
    modules = inserted(model, report)
    assert {s.init for s in report.sites} == {"gate=1"}
    assert all(isinstance(m.gate, CenteredGate) and not m.fc2.weight.any() for m in modules)

    before = [copy.deepcopy(m.state_dict()) for m in modules]
    sgd_steps(model, size)
    for site, module, state in zip(report.sites, modules, before, strict=True):
        changed = [k for k, v in module.state_dict().items() if not torch.equal(v, state[k])]
        # The gate's logit layer moves (only its bias where C = 16 leaves one hidden unit whose
        # ReLU is off for these samples).
        assert {"fc2.weight", "fc2.bias"} & set(changed), site.attn_path


def test_identity_blend_for_modules_without_identity_point(
    base_models: dict[str, nn.Module],
) -> None:
    """Gather-Excite has no identity point: it gets x + alpha * (ge(x) - x), alpha = 0."""
    model = fresh(base_models, "resnet18")
    base = copy.deepcopy(model)
    report = senet.retrofit(model, "ge", init="identity", input_size=64)
    assert {s.init for s in report.sites} == {"blend"}
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (model(x) - base(x)).abs().max().item() <= 1e-5
    blends = [model.get_submodule(f"{s.attn_path}_blend") for s in report.sites]
    assert all(isinstance(b, IdentityBlend) and b.alpha.item() == 0.0 for b in blends)
    sgd_steps(model, 64, steps=1)
    assert all(b.alpha.item() != 0.0 for b in blends)


def _bottleneck_by_hand(block: nn.Module, x: torch.Tensor, strategy: str) -> torch.Tensor:
    """torchvision Bottleneck forward with SE where the paper's Fig. 5 puts it."""
    se = block.attn
    shortcut = x if block.downsample is None else block.downsample(x)
    h = se(x) if strategy == "pre" else x
    h = block.relu(block.bn1(block.conv1(h)))
    h = block.relu(block.bn2(block.conv2(h)))
    if strategy == "conv3x3":
        h = se(h)
    h = block.bn3(block.conv3(h))
    if strategy == "standard":
        h = se(h)
    if strategy == "identity":
        shortcut = se(shortcut)
    out = block.relu(h + shortcut)
    return se(out) if strategy == "post" else out


STRATEGY_CHANNELS = {
    "standard": BOTTLENECK_OUT,
    "post": BOTTLENECK_OUT,
    "identity": BOTTLENECK_OUT,
    # a unit's input: the previous unit's output (64 from the stem for layer1.0)
    "pre": [64, *BOTTLENECK_OUT[:-1]],
    "conv3x3": [64] * 3 + [128] * 4 + [256] * 6 + [512] * 3,
}


@pytest.mark.parametrize("strategy", list(STRATEGY_CHANNELS))
def test_resnet50_strategies_match_paper_figure(
    base_models: dict[str, nn.Module], strategy: str
) -> None:
    model = fresh(base_models, "resnet50")
    report = senet.retrofit(model, "se", strategy=strategy, input_size=64)
    assert [s.channels for s in report.sites] == STRATEGY_CHANNELS[strategy]
    assert [s.unit for s in report.sites] == [
        f"layer{i}.{j}" for i, n in enumerate((3, 4, 6, 3), 1) for j in range(n)
    ]
    assert all(s.attn_path == f"{s.unit}.attn" and s.strategy == strategy for s in report.sites)
    # Numerically, each unit computes what the paper's figure draws: checked on the first
    # (projection shortcut) and second (identity shortcut) unit of a stage.
    with torch.no_grad():
        x = torch.randn(2, 256, 16, 16)
        for block in (model.layer2[0], model.layer2[1]):
            inp = x if block is model.layer2[0] else torch.randn(2, 512, 8, 8)
            torch.testing.assert_close(block(inp), _bottleneck_by_hand(block, inp, strategy))


def test_standard_se_on_torchvision_bottleneck_is_se_resnet50(
    base_models: dict[str, nn.Module],
) -> None:
    """SE(C, r=16, FC biases) after bn3, before the add: the layout of se_resnet50."""
    model = fresh(base_models, "resnet50")
    report = senet.retrofit(model, "se", input_size=64)
    for site in report.sites:
        block = model.get_submodule(site.unit)
        se = block.attn
        assert isinstance(block, torchvision.models.resnet.Bottleneck)
        assert (se.channels, se.reduction, se.fc1.bias is not None) == (
            block.bn3.num_features,
            16,
            True,
        )
        assert site.location == "branch end: after bn3, before the add"
    # Paper Table 2 / REFERENCE.md: SE-ResNet-50 has 28,088,024 parameters.
    assert report.params == 28_088_024
    assert report.base_params == 25_557_032


def test_stages_follow_paper_table_13(base_models: dict[str, nn.Module]) -> None:
    model = fresh(base_models, "resnet50")
    dry = senet.retrofit(model, "se", input_size=64, dry_run=True)
    assert [s.stage for s in dry.sites] == [2] * 3 + [3] * 4 + [4] * 6 + [5] * 3
    report = senet.retrofit(model, "se", stages=[4], input_size=64)
    assert [s.unit for s in report.sites] == [f"layer3.{i}" for i in range(6)]
    # Table 13: "SE in stage 4 only" has 26.4M parameters (25.6M + 6 SE blocks of C = 1024).
    assert report.added_params == 6 * se_params(1024)
    assert abs(report.params / 1e6 - 26.4) < 0.06
    assert sum("not in stages" in s.reason for s in report.skipped) == 10


def test_dry_run_changes_nothing(base_models: dict[str, nn.Module]) -> None:
    model = fresh(base_models, "resnet18")
    keys = list(model.state_dict())
    rng = torch.get_rng_state()
    report = senet.retrofit(model, "se", input_size=64, dry_run=True)
    assert not report.applied and len(report.sites) == 8
    assert list(model.state_dict()) == keys
    assert type(model.layer1[0]) is torchvision.models.resnet.BasicBlock
    # Not even the random stream: sample passes use a private generator, modules a forked one.
    assert torch.equal(torch.get_rng_state(), rng)


def test_retrofitting_twice_adds_nothing(base_models: dict[str, nn.Module]) -> None:
    model = fresh(base_models, "resnet18")
    senet.retrofit(model, "se", input_size=64)
    keys = list(model.state_dict())
    with pytest.warns(UserWarning, match="already has 8 attention module") as caught:
        again = senet.retrofit(model, "se", input_size=64)
    assert again.sites == [] and len(again.existing) == 8
    assert list(model.state_dict()) == keys
    # The warning names the caller's line, not senet's frames (the callable package, retrofit).
    assert caught[0].filename == __file__

    class Detector(nn.Module):  # the backbone recursion (torchvision detectors' layout)
        def __init__(self) -> None:
            super().__init__()
            self.backbone = model

    with pytest.warns(UserWarning, match="already has 8 attention module") as caught:
        senet.retrofit(Detector(), "se", input_size=64)
    assert caught[0].filename == __file__


def test_weights_stay_usable_and_round_trip(base_models: dict[str, nn.Module]) -> None:
    base = fresh(base_models, "resnet50")
    base_state = base.state_dict()
    model = copy.deepcopy(base)
    report = senet.retrofit(model, "se", strategy="pre", init="identity", input_size=64)
    state = model.state_dict()
    # Original names unchanged; new ones under the unit.
    assert set(base_state) <= set(state)
    new = sorted(set(state) - set(base_state))
    assert new == sorted(
        f"{s.unit}.{leaf}"
        for s in report.sites
        for leaf in ("attn.fc1.weight", "attn.fc1.bias", "attn.fc2.weight", "attn.fc2.bias")
    )
    # A pretrained base state dict loads strictly on its keys after retrofitting ...
    result = model.load_state_dict(base_state, strict=False)
    assert result.unexpected_keys == [] and set(result.missing_keys) == set(new)
    # ... and a retrofitted checkpoint rebuilds: fresh base + same retrofit + strict load.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    rebuilt = fresh(base_models, "resnet50")
    senet.retrofit(rebuilt, "se", strategy="pre", init="identity", input_size=64)
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x))
        # Whole-model pickling and deepcopy keep the rewritten forward.
        buffer = io.BytesIO()
        torch.save(model, buffer)
        buffer.seek(0)
        loaded = torch.load(buffer, weights_only=False)
        torch.testing.assert_close(loaded(x), model(x))
        assert isinstance(loaded.layer1[0], torchvision.models.resnet.Bottleneck)
        torch.testing.assert_close(copy.deepcopy(model)(x), model(x))


def test_channels_last(base_models: dict[str, nn.Module]) -> None:
    model = fresh(base_models, "resnet18")
    senet.retrofit(model, "se", input_size=64)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        model = model.to(memory_format=torch.channels_last)
        out = model(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


def test_ddp_single_process(base_models: dict[str, nn.Module], tmp_path) -> None:
    import torch.distributed as dist

    model = fresh(base_models, "resnet18")
    senet.retrofit(model, "se", init="identity", input_size=64)
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        ddp = nn.parallel.DistributedDataParallel(model.train(), find_unused_parameters=False)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
        for _ in range(2):
            opt.zero_grad()
            ddp(torch.randn(2, 3, 64, 64)).logsumexp(1).mean().backward()
            opt.step()
        assert all(p.grad is not None for p in ddp.parameters())
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_torch_compile(base_models: dict[str, nn.Module]) -> None:
    model = fresh(base_models, "resnet18")
    senet.retrofit(model, "se", strategy="pre", input_size=64)  # rewritten forwards
    senet.retrofit(model, "se", sites=["layer4.1"], input_size=64)  # and an output patch
    x = torch.randn(2, 3, 64, 64)
    compiled = torch.compile(model, fullgraph=True)  # fullgraph: a graph break is an error
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), atol=1e-4, rtol=1e-4)
    compiled(x).sum().backward()
    assert model.layer1[0].attn.fc1.weight.grad is not None


class ToyBlock(nn.Module):
    """A user's own residual block, written with functional ReLUs."""

    def __init__(self, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(channels // stride, channels, 3, stride, 1, bias=False)
        self.norm_a = nn.BatchNorm2d(channels)
        self.conv_b = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.norm_b = nn.BatchNorm2d(channels)
        self.proj = (
            nn.Conv2d(channels // stride, channels, 1, stride, bias=False) if stride > 1 else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm_b(self.conv_b(F.relu(self.norm_a(self.conv_a(x)))))
        shortcut = x if self.proj is None else self.proj(x)
        return F.relu(y + shortcut)


class ToyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.body = nn.Sequential(ToyBlock(16), ToyBlock(32, stride=2), ToyBlock(32))
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(F.relu(self.stem(x))).mean((2, 3)))


def test_user_residual_network() -> None:
    model = ToyNet().eval()
    base = copy.deepcopy(model)
    report = senet.retrofit(model, "se", reduction=4, init="identity", input_size=32)
    assert [(s.unit, s.kind, s.channels) for s in report.sites] == [
        ("body.0", "residual", 16),
        ("body.1", "residual", 32),
        ("body.2", "residual", 32),
    ]
    assert all("after norm_b, before the add" in s.location for s in report.sites)
    assert [s.path for s in report.skipped] == ["stem"]
    assert isinstance(model.body[1], ToyBlock)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert (model(x) - base(x)).abs().max() <= 1e-5
    # identity strategy on the projection unit scales the projected shortcut
    model = copy.deepcopy(base)
    senet.retrofit(model, "se", strategy="identity", input_size=32)
    block = model.body[1]
    with torch.no_grad():
        inp = torch.randn(2, 16, 32, 32)
        y = block.norm_b(block.conv_b(F.relu(block.norm_a(block.conv_a(inp)))))
        torch.testing.assert_close(block(inp), F.relu(y + block.attn(block.proj(inp))))


class PlainNet(nn.Module):
    """No blocks at all, activations as functions: conv units in the root's own forward."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.c2 = nn.Conv2d(16, 16, 3, padding=1, groups=16)  # depthwise: merged into c3
        self.c3 = nn.Conv2d(16, 32, 1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.c1(x))), 2)
        x = F.relu(self.c3(F.relu(self.c2(x))))
        return self.fc(x.mean((2, 3)))


def test_plain_network_conv_units() -> None:
    model = PlainNet().eval()
    base = copy.deepcopy(model)
    report = senet.retrofit(model, "se", reduction=4, init="identity", input_size=32)
    assert [(s.unit, s.attn_path, s.channels, s.stage) for s in report.sites] == [
        ("c1", "c1_attn", 16, 1),
        ("c3", "c3_attn", 32, 2),
    ]
    assert report.skipped[0].path == "c2" and "depthwise" in report.skipped[0].reason
    calls, handles = count_calls(inserted(model, report))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert (model(x) - base(x)).abs().max() <= 1e-5
    assert list(calls.values()) == [1, 1]
    for h in handles:
        h.remove()


class ChannelsLastBlock(nn.Module):
    """A transformer-style block on (N, H, W, C) tensors, as in Swin: norm and MLP on the last dim."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, 2 * channels), nn.GELU())
        self.proj = nn.Linear(2 * channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.proj(self.mlp(self.norm(x)))


class ChannelsLastNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, 24, 4, stride=4)  # NCHW, then permuted to NHWC
        self.blocks = nn.Sequential(ChannelsLastBlock(24), ChannelsLastBlock(24))
        self.head = nn.Linear(24, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.patch(x).permute(0, 2, 3, 1))
        return self.head(x.mean((1, 2)))


def test_channels_last_blocks_are_not_mistaken_for_feature_maps() -> None:
    # (N, 8, 8, 24) is 4-D, but its dim 1 is height: SE there would pool over the wrong dims.
    for size, shape in [(32, "(1, 8, 8, 24)"), ((3, 64, 32), "(1, 16, 8, 24)")]:
        with pytest.raises(ValueError, match="found no insertion site") as err:
            senet.retrofit(ChannelsLastNet(), "se", input_size=size)
        for block in ("blocks.0", "blocks.1"):
            assert f"{block}: standard site: shape {shape}" in str(err.value)
        assert "looks channels-last (N, H, W, C)" in str(err.value)
        # The NCHW conv before the permute is a feature map, with the input's aspect ratio.
        report = senet.retrofit(ChannelsLastNet(), "se", sites=["patch"], input_size=size)
        assert [(s.unit, s.channels) for s in report.sites] == [("patch", 24)]
    with pytest.raises(ValueError, match=r"site 'blocks.1.proj' .* looks channels-last"):
        senet.retrofit(ChannelsLastNet(), "se", sites=["blocks.1.proj"], input_size=32)


def test_explicit_sites(base_models: dict[str, nn.Module]) -> None:
    model = fresh(base_models, "resnet50")
    report = senet.retrofit(model, "se", sites=["layer1.0", "layer4.2"], input_size=64)
    assert [(s.unit, s.strategy, s.channels) for s in report.sites] == [
        ("layer1.0", "standard", 256),
        ("layer4.2", "standard", 2048),
    ]
    model = fresh(base_models, "resnet50")
    bottleneck = torchvision.models.resnet.Bottleneck
    report = senet.retrofit(
        model, "eca", sites=lambda path, m: isinstance(m, bottleneck), input_size=64
    )
    assert len(report.sites) == 16 and isinstance(model.layer1[0].attn, ECA)
    vgg = fresh(base_models, "vgg16_bn")
    report = senet.retrofit(vgg, "se", sites=["features.5", "features.42"], input_size=64)
    assert [(s.strategy, s.channels) for s in report.sites] == [("output", 64), ("output", 512)]


class AppendingSequential(nn.Sequential):
    """A Sequential subclass whose forward loops over its children (timm's VoVNet has one)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [x]
        for child in self:
            outputs.append(child(outputs[-1]))
        return torch.cat(outputs, dim=1)


def _two_stage_sequential() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.ReLU()),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    ).eval()


@pytest.mark.parametrize("init", ["default", "identity"])
def test_plain_sequential_site_runs_its_attention_once(init: str) -> None:
    base = _two_stage_sequential()
    model = copy.deepcopy(base)
    report = senet.retrofit(model, "se", sites=["2"], reduction=4, init=init, input_size=32)
    assert [(s.attn_path, s.channels) for s in report.sites] == [("2.attn", 16)]
    x = torch.randn(2, 3, 32, 32)
    calls, handles = count_calls(inserted(model, report))
    with torch.no_grad():
        y = model(x)
    assert list(calls.values()) == [1]
    for h in handles:
        h.remove()
    with torch.no_grad():
        expected = base[3:](attended_output(model[2], base[2](base[1](base[0](x)))))
    torch.testing.assert_close(y, expected)
    if init == "identity":
        torch.testing.assert_close(y, base(x), rtol=0, atol=1e-5)
    rebuilt = copy.deepcopy(model)  # the retrofitted class survives copying / pickling
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), y)


def attended_output(block: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """The attention output the retrofitted Sequential ``block`` should produce."""
    attended = block.attn(features)
    blend = getattr(block, "attn_blend", None)  # identity init of a gate-less module
    return attended if blend is None else blend(features, attended)


def test_containers_that_loop_over_children_are_not_patched() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        AppendingSequential(nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)),
        nn.Conv2d(24, 8, 1),
    ).eval()
    with pytest.raises(ValueError, match=r"site '1': a container with its own forward"):
        senet.retrofit(model, "se", sites=["1"], input_size=16)
    assert "attn" not in dict(model[1].named_children())
    report = senet.retrofit(model, "se", sites=["1.0", "2"], reduction=4, input_size=16)
    assert [(s.unit, s.channels) for s in report.sites] == [("1.0", 8), ("2", 8)]
    assert model(torch.randn(1, 3, 16, 16)).shape == (1, 8, 16, 16)


class CallsBlockTwice(nn.Module):
    """One block applied twice: attention wired into it would run twice per forward."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.block = ToyBlock(16)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(self.block(F.relu(self.stem(x)))).mean((2, 3)))


class CallsBlockOnce(CallsBlockTwice):
    """Runs its block on the first forward only: a later forward never calls the attention."""

    def __init__(self) -> None:
        super().__init__()
        self.runs = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        if self.runs == 0:
            x = self.block(x)
        self.runs += 1
        return self.head(x.mean((2, 3)))


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize(
    ("net", "sites", "calls"), [(CallsBlockTwice, None, 2), (CallsBlockOnce, ["block"], 0)]
)
def test_a_failed_check_leaves_the_model_unchanged(net, sites, calls) -> None:
    model = net().eval()
    before = _snapshot(model)
    with pytest.raises(RuntimeError, match=rf"not called exactly once.*left unchanged: block.attn: {calls}$"):  # fmt: skip
        senet.retrofit(model, "se", sites=sites, input_size=32)
    assert type(model.block).forward is ToyBlock.forward and not hasattr(model.block, "attn")
    assert model.state_dict().keys() == before.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


def test_a_failed_check_on_a_model_that_cannot_be_copied_says_what_it_left() -> None:
    # No copy to try the plan on: the check runs in place, and its error names what stayed in.
    model = CallsBlockTwice().eval()
    model.lock = threading.Lock()  # deepcopy refuses it
    with pytest.raises(RuntimeError, match=r"could not be copied, so it now holds the modules named: block.attn: 2"):  # fmt: skip
        senet.retrofit(model, "se", input_size=32)
    assert isinstance(model.block.attn, nn.Module)


def test_a_model_that_cannot_be_copied_is_checked_in_place() -> None:
    model = ToyNet().eval()
    model.lock = threading.Lock()  # deepcopy refuses it
    with pytest.raises(ValueError, match=r"dry_run wires the plan into a copy.*cannot be copied"):
        senet.retrofit(model, "se", input_size=32, dry_run=True)
    assert not hasattr(model.body[0], "attn")
    report = senet.retrofit(model, "se", input_size=32)
    assert len(report.sites) == 3 and isinstance(model.body[0].attn, SqueezeExcite)


class DataDependentNet(ToyNet):
    """Reads a value in forward (``.item()``), which shapes alone cannot give."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = 2.0 if x.mean().item() > 10 else 1.0
        return super().forward(x * scale)


@pytest.mark.parametrize(("net", "real_copies"), [(ToyNet, 0), (DataDependentNet, 1)])
def test_the_plan_is_checked_on_a_meta_copy(
    monkeypatch: pytest.MonkeyPatch, net: type, real_copies: int
) -> None:
    # The checking copy costs no memory; only a model that cannot run on meta gets a real one.
    copies: list[object] = []
    real_deepcopy = copy.deepcopy

    def counting_deepcopy(x: object, memo: dict | None = None) -> object:
        if memo is None and isinstance(x, nn.Module):
            copies.append(x)
        return real_deepcopy(x, memo)

    monkeypatch.setattr(copy, "deepcopy", counting_deepcopy)
    model = net().eval()
    base = real_deepcopy(model)
    report = senet.retrofit(model, "se", init="identity", input_size=32)
    assert len(report.sites) == 3 and len(copies) == real_copies
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), base(x), rtol=0, atol=1e-5)


def test_bad_input_errors(base_models: dict[str, nn.Module]) -> None:
    model = fresh(base_models, "resnet18")
    with pytest.raises(ValueError, match=r"unknown attention 'sqex'.*cbam.*se"):
        senet.retrofit(model, "sqex", input_size=64)
    with pytest.raises(ValueError, match=r"unknown strategy 'middle'.*'standard'.*'conv3x3'"):
        senet.retrofit(model, "se", strategy="middle", input_size=64)
    with pytest.raises(ValueError, match="unknown init"):
        senet.retrofit(model, "se", init="zeros", input_size=64)
    with pytest.raises(ValueError, match="stage numbers >= 1"):
        senet.retrofit(model, "se", stages=[0], input_size=64)
    with pytest.raises(ValueError, match=r"'layer1.9'.*close matches: .*layer1.0"):
        senet.retrofit(model, "se", sites=["layer1.9"], input_size=64)
    with pytest.raises(ValueError, match=r"site 'fc' \(Linear\) output: shape \(1, 1000\), not"):
        senet.retrofit(model, "se", sites=["fc"], input_size=64)
    with pytest.raises(ValueError, match=r"site 'layer1.0.relu' .* called 2 times"):
        senet.retrofit(model, "se", sites=["layer1.0.relu"], input_size=64)
    with pytest.raises(ValueError, match=r"no insertion site in stages \[7\]"):
        senet.retrofit(model, "se", stages=[7], input_size=64)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
    with pytest.raises(ValueError, match=r"found no insertion site in Sequential.*sites="):
        senet.retrofit(mlp, "se", input_size=(3, 8, 8))
    assert "attn" not in dict(model.named_children()) and not any(
        "attn" in k for k in model.state_dict()
    )


def test_existing_attention_reported_and_replaced() -> None:
    model = torchvision.models.mobilenet_v3_small().eval()
    keys = list(model.state_dict())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = senet.retrofit(model, "se", input_size=64)
    assert len(report.sites) == 0 and len(report.existing) == 9
    assert "SqueezeExcitation" in report.existing[0]
    assert any("replace_existing=True" in str(w.message) for w in caught)
    assert list(model.state_dict()) == keys

    report = senet.retrofit(model, "eca", replace_existing=True, input_size=64)
    assert len(report.sites) == 9 and {s.strategy for s in report.sites} == {"replace"}
    for site in report.sites:
        assert isinstance(model.get_submodule(site.attn_path), ECA)
    # Only the swapped modules' keys changed.
    se_paths = tuple(f"{s.attn_path}." for s in report.sites)
    assert [k for k in model.state_dict() if not k.startswith(se_paths)] == [
        k for k in keys if not k.startswith(se_paths)
    ]
    model(torch.randn(2, 3, 64, 64)).sum().backward()


def test_report_prints_a_table(base_models: dict[str, nn.Module]) -> None:
    model = fresh(base_models, "resnet18")
    report = senet.retrofit(model, "cbam", strategy="post", input_size=64)
    text = str(report)
    assert "layer1.0.attn" in text and "layer4.1" in text and "post" in text
    assert f"{report.added_params:,} params" in text
    # MACs at the probe size (64x64), counted by senet.profile before and after.
    base_macs = senet.profile(fresh(base_models, "resnet18"), (3, 64, 64)).macs
    assert report.base_macs == base_macs
    assert report.added_macs == senet.profile(model, (3, 64, 64)).macs - base_macs > 0
    assert f"{report.added_macs:,} MACs" in text


# The logit layer that identity init zeroes, per attention with an identity point.
LOGITS = {"cbam": ("channel_gate.fc2", "spatial_gate.conv"), "eca": ("conv",),
          "cbam_spatial": ("conv",)}  # fmt: skip


@pytest.mark.parametrize("attn", ["cbam", "eca", "cbam_spatial", "scse"])
def test_identity_init_of_the_other_attentions(attn: str) -> None:
    model = ToyNet().eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):  # non-trivial statistics: the map is not near zero
            m.running_var.uniform_(0.5, 2)
            m.bias.data.uniform_(-0.5, 0.5)
    base = copy.deepcopy(model)
    report = senet.retrofit(model, attn, init="identity", input_size=32)
    assert len(report.sites) == 3
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), base(x)) or (model(x) - base(x)).abs().max() <= 1e-6
        # Not a no-op by construction: default init changes the function.
        other = copy.deepcopy(base)
        senet.retrofit(other, attn, input_size=32)
        assert (other(x) - base(x)).abs().max() > 1e-3
    modules = inserted(model, report)
    if attn == "scse":  # no identity point (cSE + x * sSE is 2x at gate 1): a zero blend
        assert {s.init for s in report.sites} == {"blend"}
        blends = [model.get_submodule(f"{s.attn_path}_blend") for s in report.sites]
        assert all(b.alpha.item() == 0.0 for b in blends)
        sgd_steps(model, 32, steps=1)
        assert all(b.alpha.item() != 0.0 for b in blends)
        return
    assert {s.init for s in report.sites} == {"gate=1"}
    for module in modules:
        assert all(not module.get_submodule(name).weight.any() for name in LOGITS[attn])
    before = [copy.deepcopy(m.state_dict()) for m in modules]
    sgd_steps(model, 32)
    for module, state in zip(modules, before, strict=True):  # the zeroed logits learn
        for name in LOGITS[attn]:
            assert not torch.equal(module.state_dict()[f"{name}.weight"], state[f"{name}.weight"])
