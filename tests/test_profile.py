"""senet.profile: exact counts against hand arithmetic, fvcore and the SE paper's Table 2."""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch
import torchvision
from torch import nn

from senet.layers import CBAM, SCSE, ChannelGate, SpatialGate, SqueezeExcite
from senet.profiling.counter import ProfileError, compare_costs, profile
from senet.profiling.op_costs import ELEMENTWISE_COSTS
from tests.caffe_resnet import CaffeResNet50

aten = torch.ops.aten


# ---- hand-computed counts ---------------------------------------------------------------------


def small_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # 16x16 -> 16x16
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False),  # -> 8x8
        nn.Flatten(),
        nn.Linear(16 * 8 * 8, 10),
    )


def test_small_conv_net_matches_hand_count():
    r = profile(small_net(), (3, 16, 16))
    conv1, conv2, fc = 8 * 16 * 16 * 3 * 9, 16 * 8 * 8 * 8 * 9, 10 * 1024
    assert r.params == r.trainable_params == (8 * 27 + 8) + 16 + (16 * 72) + (10 * 1024 + 10)
    assert (
        r.conv_fc_macs == r.macs == conv1 + conv2 + fc
    )  # BN and ReLU are outside the paper's count
    assert r.attention_macs == 0
    assert r.elementwise_ops == 8 * 256 + 8 * 256  # BN and ReLU, one op per element
    assert r.flops == 2 * r.conv_fc_macs + r.elementwise_ops
    assert r.activations == 8 * 256 + 16 * 64 + 10  # conv and linear outputs
    assert [m.macs for m in r.modules[1:]] == [conv1, 0, 0, conv2, 0, fc]


def test_counts_scale_with_the_batch():
    one, four = profile(small_net(), (3, 16, 16)), profile(small_net(), (3, 16, 16), batch_size=4)
    assert (four.macs, four.activations, four.params) == (
        4 * one.macs,
        4 * one.activations,
        one.params,
    )


def test_grouped_depthwise_and_transposed_convs():
    net = nn.Sequential(
        nn.Conv2d(8, 16, 3, padding=1, groups=4),  # 10x10, each output sees 8/4 input channels
        nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False),  # depthwise
        nn.ConvTranspose2d(16, 4, 2, stride=2),  # 10x10 -> 20x20, one tap per output
    )
    r = profile(net, (8, 10, 10))
    assert [m.macs for m in r.modules[1:]] == [16 * 100 * 2 * 9, 16 * 100 * 9, 4 * 400 * 16]
    assert r.params == (16 * 2 * 9 + 16) + 16 * 9 + (16 * 4 * 4 + 4)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_on_vectors_and_sequences(bias):
    assert profile(nn.Linear(20, 30, bias=bias), (20,), batch_size=3).macs == 3 * 20 * 30
    assert profile(nn.Linear(20, 30, bias=bias), (5, 20), batch_size=3).macs == 3 * 5 * 20 * 30


def se_cost(c: int, hw: int, hidden: int, batch: int = 1) -> dict[str, int]:
    """SE by hand: pool (read C*HW), FC, ReLU, FC, gate, scale (write C*HW)."""
    fc = 2 * c * hidden
    elementwise = c * hw + hidden + c + c * hw
    return {"conv_fc": batch * fc, "macs": batch * (fc + elementwise)}


@pytest.mark.parametrize("gate", ["sigmoid", "hard_sigmoid", "tanh", "clamp", "relu"])
@pytest.mark.parametrize("squeeze", ["avg", "max"])
def test_se_block_pool_fc_gate_scale_exact(gate, squeeze):
    se = SqueezeExcite(64, reduction=16, gate=gate, squeeze=squeeze)
    r = profile(se, (64, 8, 8), batch_size=2)
    want = se_cost(64, 64, 4, batch=2)
    assert r.params == (64 * 4 + 4) + (4 * 64 + 64)
    assert r.conv_fc_macs == want["conv_fc"]
    assert r.macs == r.attention_macs == want["macs"]
    assert r.module("squeeze").macs == 2 * 64 * 64  # one op per element read
    assert r.module("gate").macs == 2 * 64


def test_avgmax_squeeze_counts_both_pools_and_their_mean():
    r = profile(SqueezeExcite(32, squeeze="avgmax"), (32, 4, 4))
    assert r.module("squeeze").macs == 2 * 32 * 16 + 32 + 32  # mean, amax, add, * 0.5


def test_se_inside_a_network_is_the_attention_share():
    net = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1, bias=False), SqueezeExcite(64))
    r = profile(net, (3, 8, 8))
    conv = 64 * 64 * 27
    se = se_cost(64, 64, 4)
    assert r.attention_macs == r.module("1").macs == se["macs"]
    assert r.macs == conv + se["macs"]
    assert r.conv_fc_macs == conv + se["conv_fc"]
    assert r.module("1").attention and not r.module("0").attention


def cbam_cost(c: int, h: int, w: int, hidden: int, k: int = 7) -> tuple[int, int]:
    hw = h * w
    # avg and max descriptors through the shared MLP (two calls), sum, sigmoid, scale
    channel = 2 * c * hw + 2 * (2 * c * hidden + hidden) + c + c + c * hw
    # channel-wise max and mean (read C*HW each), 2->1 KxK conv, BN, sigmoid, scale
    spatial = 2 * c * hw + hw * 2 * k * k + hw + hw + c * hw
    return channel, spatial


def test_nested_attention_is_counted_once():
    net = nn.Sequential(nn.Conv2d(3, 32, 1, bias=False), CBAM(32))
    r = profile(net, (3, 8, 8))
    channel, spatial = cbam_cost(32, 8, 8, 2)
    assert r.module("1.channel_gate").macs == channel  # ChannelGate's fc1 runs twice: both count
    assert r.module("1.spatial_gate").macs == spatial
    assert r.attention_macs == r.module("1").macs == channel + spatial
    assert r.macs == 32 * 3 * 64 + channel + spatial


def test_attention_modules_alone_and_side_by_side():
    # The model itself an attention module; SCSE holds cSE and sSE side by side.
    r = profile(SCSE(16, reduction=4), (16, 4, 4))
    cse = se_cost(16, 16, 4)["macs"]
    sse = 16 * 16 + 16 + 16 * 16  # 1x1 conv to one channel (C*HW MACs), sigmoid (HW), scale
    assert r.macs == r.attention_macs == cse + sse + 16 * 16  # + the add of the two
    # CBAM's two halves alone: 8 channels give a hidden width of max(1, 8 // 16) = 1.
    channel, spatial = cbam_cost(8, 2, 2, 1)
    assert profile(ChannelGate(8), (8, 2, 2)).attention_macs == channel
    assert profile(SpatialGate(), (8, 2, 2)).attention_macs == spatial


def test_op_table_formulas():
    shape = torch.Size([2, 4, 8, 8])
    pooled = torch.Size([2, 4, 4, 4])
    assert (
        ELEMENTWISE_COSTS[aten.mean](shape, [2, 3], True, out_shape=torch.Size([2, 4, 1, 1])) == 512
    )
    assert ELEMENTWISE_COSTS[aten.mul](shape, shape, out_shape=shape) == 512
    assert ELEMENTWISE_COSTS[aten.avg_pool2d](shape, [3, 3], [2, 2], out_shape=pooled) == 128 * 9
    # max_pool2d_with_indices returns (values, indices): the values' shape counts.
    assert (
        ELEMENTWISE_COSTS[aten.max_pool2d_with_indices](shape, [3], out_shape=(pooled, pooled))
        == 128 * 9
    )
    assert ELEMENTWISE_COSTS[aten.relu_](shape, out_shape=shape) == 512


def test_windowed_pools_outside_attention_count_only_in_flops():
    r = profile(nn.Sequential(nn.MaxPool2d(3, 2, 1), nn.AvgPool2d(2)), (4, 8, 8))
    assert r.macs == 0
    assert r.elementwise_ops == r.flops == 4 * 16 * 9 + 4 * 4 * 4


# ---- references: fvcore, analytic formulas, the paper -----------------------------------------


@pytest.fixture(scope="module")
def resnet50() -> nn.Module:
    return torchvision.models.resnet50().eval()


def test_resnet50_conv_linear_and_activations_match_fvcore(resnet50):
    fvcore_nn = pytest.importorskip("fvcore.nn")
    x = torch.randn(1, 3, 128, 128)
    flops = fvcore_nn.FlopCountAnalysis(resnet50, x).unsupported_ops_warnings(False)
    by_op = flops.by_operator()
    acts = fvcore_nn.ActivationCountAnalysis(resnet50, x).unsupported_ops_warnings(False).total()
    r = profile(resnet50, (3, 128, 128))
    assert r.conv_fc_macs == pytest.approx(by_op["conv"] + by_op["linear"], rel=1e-3)
    assert r.activations == pytest.approx(acts, rel=1e-3)
    # At 224 the torchvision layout (stride on the 3x3 conv) costs 4.09 G, not the paper's 3.86 G.
    assert profile(resnet50).macs == 4_089_184_256


def test_vgg16_bn_matches_the_analytic_count_and_the_paper():
    r = profile(torchvision.models.vgg16_bn())
    widths = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
    macs, c, size = 0, 3, 224
    for w in widths:
        if w == "M":
            size //= 2
        else:
            macs += size * size * w * c * 9
            c = w
    macs += 512 * 7 * 7 * 4096 + 4096 * 4096 + 4096 * 1000
    assert r.conv_fc_macs == r.macs == macs
    assert round(r.macs / 1e9, 2) == 15.47  # Table 2, VGG-16 (BN)


@pytest.fixture(scope="module")
def caffe_pair() -> dict[str, nn.Module]:
    return {"se_resnet50": CaffeResNet50(se=True), "resnet50": CaffeResNet50(se=False)}


def test_table2_resnet50_pair_in_the_caffe_layout(caffe_pair):
    se, base = profile(caffe_pair["se_resnet50"]), profile(caffe_pair["resnet50"])
    assert (base.params, se.params) == (25_557_032, 28_088_024)
    assert round(se.conv_fc_macs / 1e9, 4) == 3.8605  # the public Caffe port's conv+FC count
    assert (round(base.macs / 1e9, 2), round(se.macs / 1e9, 2)) == (3.86, 3.87)
    # SE's own work: per block pool + scale on C x H x W, ReLU on C/16, gate on C.
    stages = [(3, 256, 56 * 56), (4, 512, 28 * 28), (6, 1024, 14 * 14), (3, 2048, 7 * 7)]
    se_elementwise = sum(n * (2 * c * hw + c // 16 + c) for n, c, hw in stages)
    se_fc = sum(n * 2 * c * (c // 16) for n, c, _ in stages)
    assert se.macs - se.conv_fc_macs == se_elementwise
    assert se.attention_macs == se_elementwise + se_fc
    assert se.conv_fc_macs - base.conv_fc_macs == se_fc


def test_module_rows_add_up_to_the_model(caffe_pair):
    r = profile(caffe_pair["se_resnet50"], (3, 64, 64))
    children = [m for m in r.modules if m.depth == 1]
    for field in ("macs", "attention_macs", "conv_fc_macs", "flops", "activations", "params"):
        assert sum(getattr(m, field) for m in children) == getattr(r, field), field
    assert r.module("layer1.0.se").attention and r.module("layer1.0.se.fc1").attention


def test_torchvision_squeeze_excitation_counts_like_senets():
    from torchvision.ops import SqueezeExcitation

    r = profile(SqueezeExcitation(16, 4), (16, 8, 8))  # adaptive_avg_pool2d, ReLU, sigmoid
    assert r.macs == r.attention_macs == se_cost(16, 64, 4)["macs"]


def test_foreign_se_modules_are_attention():
    timm = pytest.importorskip("timm")
    r = profile(timm.create_model("seresnet18", pretrained=False), (3, 64, 64))
    se_rows = [m for m in r.modules if m.type == "SEModule"]
    assert len(se_rows) == 8
    assert r.attention_macs == sum(m.macs for m in se_rows) > 0


# ---- counting pass: meta device, model left untouched -----------------------------------------


def figures(r):
    return (r.params, r.macs, r.attention_macs, r.conv_fc_macs, r.flops, r.activations)


def test_meta_and_real_counting_agree_and_leave_the_model_alone(caffe_pair):
    model = caffe_pair["se_resnet50"]
    model.train()
    model.layer1.eval()  # mixed flags must come back as they were
    before = {k: v.clone() for k, v in model.state_dict().items()}
    meta = profile(model, (3, 32, 32), batch_size=2)
    real = profile(model, (3, 32, 32), batch_size=2, count_on_meta=False)
    assert (meta.counted_on, real.counted_on) == ("meta", "cpu")
    assert figures(meta) == figures(real)
    assert model.training and not model.layer1.training and model.layer2[0].bn1.training
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN statistics untouched too


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y * 2 if y.sum().item() > -1e9 else y  # needs real numbers


def test_models_meta_cannot_run_are_counted_for_real():
    r = profile(DataDependent(), (3, 4, 4))
    assert r.counted_on == "cpu"
    assert r.conv_fc_macs == 4 * 3 * 16


# ---- errors -----------------------------------------------------------------------------------


def test_wrong_input_size_names_the_size_and_the_module():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Sequential(nn.Flatten(), nn.Linear(8 * 30 * 30, 2)))
    with pytest.raises(ProfileError, match=r"input size \(3, 64, 64\).*'1\.1' \(Linear\)"):
        profile(net, (3, 64, 64))
    with pytest.raises(ProfileError, match=r"input size \(1, 32, 32\).*'0' \(Conv2d\).*3 channels"):
        profile(net, (1, 32, 32))


def test_batch_norm_channel_mismatch_is_caught():
    net = nn.Sequential(nn.Conv2d(3, 8, 1), nn.BatchNorm2d(16))
    with pytest.raises(ProfileError, match=r"in module '1' \(BatchNorm2d\).*16"):
        profile(net, (3, 4, 4))


@pytest.mark.parametrize("size", [(3, 0, 4), (), "3x224x224", (3.0, 8, 8), (True, 8, 8), None])
def test_bad_input_size(size):
    with pytest.raises(ValueError, match="input_size must be the shape of one sample"):
        profile(small_net(), size)


def test_bad_arguments():
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        profile(small_net(), (3, 16, 16), batch_size=0)
    with pytest.raises(TypeError, match=r"expects an nn\.Module, got function"):
        profile(torchvision.models.resnet18, (3, 16, 16))
    with pytest.raises(ValueError, match="non-empty dict"):
        compare_costs({})
    with pytest.raises(KeyError, match="no module named 'nope'"):
        profile(small_net(), (3, 16, 16)).module("nope")


# ---- timing, compare, rendering ---------------------------------------------------------------


def test_timing_fields_are_consistent():
    model = small_net()
    r = profile(model, (3, 16, 16), batch_size=4, timing=True, warmup=1, repeats=5)
    t = r.timing
    assert t is not None and t.repeats == 5 and t.device == "cpu" and not t.compiled
    assert min(t.latencies_ms) <= t.median_ms <= t.p90_ms <= max(t.latencies_ms)
    assert t.p90_ms == sorted(t.latencies_ms)[4]  # nearest rank: ceil(0.9 * 5) = 5th
    assert t.throughput == pytest.approx(4 / (t.median_ms / 1000))
    assert t.peak_memory_bytes is not None and t.peak_memory_bytes >= 0  # see the test below
    assert model.training  # restored


class Allocates64MiB(nn.Module):
    """A forward that writes a 64 MiB temporary, so its peak memory is known from below."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.ones(16 * 2**20).sum()  # 16 Mi float32, every page written


def test_peak_memory_sees_a_forward_temporary():
    t = profile(Allocates64MiB(), (3, 4, 4), timing=True, warmup=1, repeats=1).timing
    assert t is not None and t.peak_memory_bytes is not None, t
    # At least the temporary (less a page-rounding margin), and not a unit off (KiB vs bytes).
    assert 60 * 2**20 <= t.peak_memory_bytes < 256 * 2**20, (t.peak_memory_bytes, t.memory_method)


def test_channels_last_timing_runs_on_a_copy():
    model = small_net()
    r = profile(model, (3, 16, 16), timing=True, channels_last=True, warmup=1, repeats=2)
    assert r.timing is not None and r.timing.channels_last
    assert model[0].weight.is_contiguous()  # the caller's weights keep their layout


def test_compare_deltas_and_interleaved_timing():
    wide = nn.Sequential(nn.Conv2d(3, 16, 3), nn.Flatten())
    narrow = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten())
    c = compare_costs({"wide": wide, "narrow": narrow}, (3, 8, 8), timing=True, warmup=1, repeats=3)
    base, other = c.rows()
    assert (base["params_delta_pct"], base["latency_ratio"]) == (0.0, 1.0)
    assert other["params_delta_pct"] == pytest.approx(100 * (8 * 28 - 16 * 28) / (16 * 28))
    assert other["macs_delta_pct"] == pytest.approx(-50.0)
    assert other["latency_ratio"] == pytest.approx(
        c.results[1].timing.median_ms / c.results[0].timing.median_ms
    )
    assert [r.timing.repeats for r in c.results] == [3, 3]


def test_renderings_state_the_convention_and_parse(caffe_pair):
    r = profile(caffe_pair["se_resnet50"], (3, 64, 64))
    text = str(r)
    assert "Convention: MACs = multiply-adds of conv and linear layers" in text
    assert f"({r.params:,})" in text and f"({r.macs:,})" in text
    tree = r.render(by_module=True, depth=1)
    assert "layer4" in tree and "layer4.0" not in tree and "conv1" not in tree
    assert "modules" not in json.loads(r.render("json"))
    data = json.loads(r.render("json", by_module=True))
    assert data["macs"] == r.macs and data["modules"][0]["params"] == r.params
    rows = list(csv.DictReader(io.StringIO(r.render("csv", by_module=True, depth=1))))
    assert [row["name"] for row in rows] == [
        "",
        "stem",
        "layer1",
        "layer2",
        "layer3",
        "layer4",
        "pool",
        "fc",
    ]
    assert int(rows[0]["macs"]) == r.macs
    md = r.render("markdown").splitlines()
    assert md[3].startswith("| --- | ---: |") and md[-1].startswith("_MACs = multiply-adds")
    with pytest.raises(ValueError, match="unknown format 'yaml'"):
        r.render("yaml")


def test_comparison_table_is_table2s_row(caffe_pair):
    c = compare_costs(caffe_pair)
    text = str(c)
    se_line = next(line for line in text.splitlines() if line.strip().startswith("se_resnet50"))
    base_line = next(line for line in text.splitlines() if line.strip().startswith("resnet50"))
    assert se_line.split()[1:4] == ["28.1M", "baseline", "3.87"]
    assert base_line.split()[1:4] == ["25.6M", "-9.01%", "3.86"]
    rows = list(csv.DictReader(io.StringIO(c.render("csv"))))
    assert [int(row["params"]) for row in rows] == [28_088_024, 25_557_032]


def test_timing_on_a_missing_gpu_says_so():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="needs a CUDA GPU; torch sees none"):
        profile(small_net(), (3, 16, 16), timing=True, device="cuda")


def test_meta_models_are_counted_but_not_timed():
    with torch.device("meta"):
        model = small_net()
    assert profile(model, (3, 16, 16)).macs == profile(small_net(), (3, 16, 16)).macs
    with pytest.raises(ValueError, match="timing needs real weights"):
        profile(model, (3, 16, 16), timing=True)


@pytest.mark.slow
def test_compiled_timing():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), SqueezeExcite(8, 4))
    r = profile(model, (3, 16, 16), timing=True, compile=True, warmup=2, repeats=3)
    assert r.timing is not None and r.timing.compiled and r.timing.repeats == 3
    assert r.macs == profile(model, (3, 16, 16)).macs  # counting never goes through compile
