"""Every figure of the golden complexity table, counted by hand from the architectures.

``complexity.json`` is written by senet.profile, so comparing the models with it only guards
against change. These counts come from the papers' layer lists instead, written here layer by
layer without senet's counter: a conv costs k*k*Cin/groups*Cout*H*W multiply-adds and an FC
in*out; an attention module's own work is one op per element (the paper's GFLOPs convention that
senet.profile reports as ``macs``): a pooling reads C*H*W, the scale writes C*H*W, and each gate,
activation, norm or sum inside the module costs one op per output element. BN, ReLU and residual
adds outside attention are left out, as in the paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from senet.models.complexity import load_golden

# The paper's other families (#14) and the Residual Attention Networks (#17) are checked against
# their papers' printed figures in their own tests; every other stored row needs a hand count here.
PAPER_CHECKED = {
    "attention56", "attention92", "attention92_cifar", "bninception", "se_bninception",
    "inception_resnet_v2", "se_inception_resnet_v2", "mobilenet_v1", "se_mobilenet_v1",
    "shufflenet_v1_g3", "se_shufflenet_v1_g3", "vgg16_bn", "se_vgg16_bn",
    "shake_shake26_2x96d_cifar", "se_shake_shake26_2x96d_cifar",
}  # fmt: skip
GOLDEN = {k: v for k, v in load_golden().items() if k not in PAPER_CHECKED}


@dataclass
class Tally:
    params: int = 0
    conv_fc: int = 0  # conv + FC multiply-adds, attention FCs included
    attn_conv_fc: int = 0  # the attention modules' share of conv_fc
    attn_other: int = 0  # the attention modules' pooling, gates, scale: one op per element

    def conv(self, cin: int, cout: int, k: int, side: int, groups: int = 1, *, bias: bool = False,
             attn: bool = False, calls: int = 1) -> None:  # fmt: skip
        weights = k * k * cin // groups * cout
        self.params += weights + (cout if bias else 0)
        macs = calls * weights * side * side
        self.conv_fc += macs
        self.attn_conv_fc += macs if attn else 0

    def bn(self, channels: int) -> None:
        self.params += 2 * channels  # weight and bias; running statistics are buffers

    def fc(self, cin: int, cout: int) -> None:
        self.params += cin * cout + cout
        self.conv_fc += cin * cout

    def row(self) -> dict[str, int]:
        return {
            "params": self.params,
            "conv_fc_macs": self.conv_fc,
            "macs": self.conv_fc + self.attn_other,
            "attention_macs": self.attn_conv_fc + self.attn_other,
        }


# ---- attention modules (reduction 16, FC biases, as the zoo builds them) ----------------------


def se(t: Tally, c: int, side: int) -> None:
    """Avg pool, FC C->C/16, ReLU, FC C/16->C, sigmoid, scale (SE paper Fig. 3)."""
    hidden, hw = max(1, c // 16), side * side
    t.conv(c, hidden, 1, 1, bias=True, attn=True)
    t.conv(hidden, c, 1, 1, bias=True, attn=True)
    t.attn_other += c * hw + hidden + c + c * hw


def cbam(t: Tally, c: int, side: int) -> None:
    """CBAM (Woo et al. 2018): channel gate, then the spatial gate (7x7 conv, BN, sigmoid)."""
    hidden, hw = max(1, c // 16), side * side
    # Channel: avg and max descriptors through one shared MLP (two calls each FC), sum, sigmoid.
    t.conv(c, hidden, 1, 1, bias=True, attn=True, calls=2)
    t.conv(hidden, c, 1, 1, bias=True, attn=True, calls=2)
    t.attn_other += 2 * c * hw + 2 * hidden + c + c + c * hw
    # Spatial: max and mean over channels, 2->1 7x7 conv (no bias before the BN), BN, sigmoid.
    t.conv(2, 1, 7, side, attn=True)
    t.bn(1)
    t.attn_other += 2 * c * hw + hw + hw + c * hw


def eca(t: Tally, c: int, side: int) -> None:
    """ECA (Wang et al. 2020): avg pool, 1-D conv of k taps across channels, sigmoid, scale."""
    k = int(math.log2(c) / 2 + 1 / 2)  # the ECA paper's |log2(C)/gamma + b/gamma|, gamma 2, b 1
    k += 1 - k % 2  # made odd
    hw = side * side
    t.params += k
    t.conv_fc += c * k
    t.attn_conv_fc += c * k
    t.attn_other += c * hw + c + c * hw


ATTN = {None: None, "se": se, "cbam": cbam, "eca": eca}


# ---- ImageNet ResNets, Caffe layout, 224x224 ---------------------------------------------------


def imagenet_resnet(block: str, layers: tuple[int, ...], attn: str | None = None, groups: int = 1,
                    base_width: int = 64, stride_in_1x1: bool = True,
                    senet154: bool = False) -> dict[str, int]:  # fmt: skip
    t, add_attn = Tally(), ATTN[attn]
    if senet154:  # deep stem: 3x3/2 (64), 3x3 (64), 3x3 (128), each with BN
        for cin, cout in ((3, 64), (64, 64), (64, 128)):
            t.conv(cin, cout, 3, 112)
            t.bn(cout)
        cin = 128
    else:
        t.conv(3, 64, 7, 112)  # 7x7/2 stem
        t.bn(64)
        cin = 64
    side = 56  # after the 3x3/2 max pool
    for stage, n in enumerate(layers):
        planes = 64 * 2**stage
        for j in range(n):
            stride = 2 if stage > 0 and j == 0 else 1
            out_side = side // stride
            if block == "basic":
                cout = planes
                t.conv(cin, planes, 3, out_side)
                t.bn(planes)
                t.conv(planes, planes, 3, out_side)
                t.bn(planes)
            else:
                width, cout = planes * base_width // 64 * groups, 4 * planes
                first = width // 2 if senet154 else width  # SENet-154 halves the first 1x1
                t.conv(cin, first, 1, out_side if stride_in_1x1 else side)
                t.bn(first)
                t.conv(first, width, 3, out_side, groups)
                t.bn(width)
                t.conv(width, cout, 1, out_side)
                t.bn(cout)
            if add_attn:
                add_attn(t, cout, out_side)
            if stride > 1 or cin != cout:  # projection shortcut; SENet-154's strided ones 3x3
                t.conv(cin, cout, 3 if senet154 and stride > 1 else 1, out_side)
                t.bn(cout)
            cin, side = cout, out_side
    t.fc(cin, 1000)
    return t.row()


R18, R34 = ("basic", (2, 2, 2, 2)), ("basic", (3, 4, 6, 3))
R50, R101, R152 = ("bottleneck", (3, 4, 6, 3)), ("bottleneck", (3, 4, 23, 3)), ("bottleneck", (3, 8, 36, 3))  # fmt: skip
X32x4 = {"groups": 32, "base_width": 4, "stride_in_1x1": False}

# ---- CIFAR ResNets, 32x32, 10 classes ----------------------------------------------------------


def cifar_resnet(block: str, n: int, attn: str | None = None, widen: int = 1) -> dict[str, int]:
    """Conv3x3 stem (16), three stages of n blocks at 32, 16, 8 pixels, [BN], pool, FC."""
    t, add_attn = Tally(), ATTN[attn]
    preact = block != "basic"
    t.conv(3, 16, 3, 32)
    if not preact:
        t.bn(16)
    side, cin = 32, 16
    for stage in range(3):
        planes = 16 * 2**stage * widen
        for j in range(n):
            stride = 2 if stage > 0 and j == 0 else 1
            out_side = side // stride
            if block == "basic":  # He et al. 2016a; option-A shortcut: no parameters, no MACs
                cout = planes
                t.conv(cin, planes, 3, out_side)
                t.bn(planes)
                t.conv(planes, planes, 3, out_side)
                t.bn(planes)
            elif block == "preact_basic":  # WRN: BN, ReLU, conv3x3, BN, ReLU, conv3x3
                cout = planes
                t.bn(cin)
                t.conv(cin, planes, 3, out_side)
                t.bn(planes)
                t.conv(planes, planes, 3, out_side)
            else:  # pre-activation bottleneck (He et al. 2016b), the stride on the 3x3
                cout = 4 * planes
                t.bn(cin)
                t.conv(cin, planes, 1, side)
                t.bn(planes)
                t.conv(planes, planes, 3, out_side)
                t.bn(planes)
                t.conv(planes, cout, 1, out_side)
            if add_attn:
                add_attn(t, cout, out_side)
            if preact and (stride > 1 or cin != cout):  # 1x1 projection, no BN
                t.conv(cin, cout, 1, out_side)
            cin, side = cout, out_side
    if preact:
        t.bn(cin)  # the final BN before pooling
    t.fc(cin, 10)
    return t.row()


def oracle(name: str) -> dict[str, int]:
    if name == "senet154":  # SE-ResNeXt-152 (64x4d), stride on the 3x3 (paper appendix)
        return imagenet_resnet(*R152, "se", groups=64, base_width=4, stride_in_1x1=False,
                               senet154=True)  # fmt: skip
    if name.endswith("_cifar"):
        attn = "se" if name.startswith("se_") else None
        base = name.removeprefix("se_").removesuffix("_cifar")
        if base == "wrn16_8":
            return cifar_resnet("preact_basic", 2, attn, widen=8)
        depth = int(base.removeprefix("resnet"))
        if depth == 164:
            return cifar_resnet("preact_bottleneck", (164 - 2) // 9, attn)
        return cifar_resnet("basic", (depth - 2) // 6, attn)
    prefix, _, base = name.rpartition("_") if name.count("_") else ("", "", name)
    if base.startswith("32x4d"):  # (se_)resnext*_32x4d
        attn = "se" if name.startswith("se_") else None
        arch = R50 if "resnext50" in name else R101
        return imagenet_resnet(*arch, attn, **X32x4)
    arch = {"resnet18": R18, "resnet34": R34, "resnet50": R50, "resnet101": R101,
            "resnet152": R152}[base]  # fmt: skip
    return imagenet_resnet(*arch, prefix or None)


def test_every_model_has_an_oracle():
    assert len(GOLDEN) == 37
    assert set(load_golden()) >= PAPER_CHECKED  # no stale exemption


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_stored_table_equals_the_hand_count(name):
    stored = {k: GOLDEN[name][k] for k in ("params", "conv_fc_macs", "macs", "attention_macs")}
    assert stored == oracle(name)


def test_the_oracle_reproduces_the_published_sizes():
    # Independent anchors for the oracle itself: the Caffe ports' SE-ResNet-50 and the CIFAR
    # ResNet papers' parameter counts (ResNet-20 0.27M, ResNet-110 1.7M, WRN-16-8 11.0M).
    se50 = oracle("se_resnet50")
    assert se50["params"] == 28_088_024 and round(se50["conv_fc_macs"] / 1e9, 4) == 3.8605
    assert round(oracle("resnet20_cifar")["params"] / 1e6, 2) == 0.27
    assert round(oracle("resnet110_cifar")["params"] / 1e6, 1) == 1.7
    assert round(oracle("wrn16_8_cifar")["params"] / 1e6, 1) == 11.0
    assert round(oracle("senet154")["params"] / 1e6, 2) == 115.09  # Cadene's senet154
