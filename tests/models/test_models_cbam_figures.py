"""CBAM's own figures (Woo et al., ECCV 2018, ResNet-50 rows of the ImageNet table), counted
afresh by senet.profile (not read from the golden table), and the spatial gate's cost."""

import pytest
import torch

import senet

# Woo et al. 2018, ImageNet-1K, ResNet-50 rows: params (M) and GFLOPs (conv/FC multiply-adds).
CBAM_PAPER = {"resnet50": (25.56, 3.858), "se_resnet50": (28.09, 3.860), "cbam_resnet50": (28.09, 3.864)}  # fmt: skip


@pytest.fixture(scope="module")
def cbam50():
    with torch.device("meta"):
        model = senet.create_model("cbam_resnet50").eval()
    return senet.profile(model, (3, 224, 224))


@pytest.mark.parametrize("name", CBAM_PAPER)
def test_resnet50_rows_of_the_cbam_paper(name):
    with torch.device("meta"):
        model = senet.create_model(name).eval()
    result = senet.profile(model, (3, 224, 224))
    params, gflops = CBAM_PAPER[name]
    assert round(result.params / 1e6, 2) == params
    assert round(result.conv_fc_macs / 1e9, 3) == gflops


def spatial_gate_ops(channels, side):
    # 7x7 conv 2 -> 1 (98 MACs per position); channel max and mean (C*H*W each, one op per
    # input element); BN and sigmoid on the 1-channel map; the scale x * s (C*H*W).
    hw = side * side
    return 98 * hw + 2 * hw + 3 * channels * hw


def test_spatial_gate_cost_is_counted_exactly(cbam50):
    gate = cbam50.module("layer4.0.attn.spatial_gate")
    assert gate.conv_fc_macs == 98 * 7 * 7
    assert gate.attention_macs == gate.macs == spatial_gate_ops(2048, 7) == 305_956
    assert cbam50.module("layer1.0.attn.spatial_gate").macs == spatial_gate_ops(256, 56)
    # Every block's gate, in the four stages of widths 256..2048 at 56..7 pixels.
    spatial = [m for m in cbam50.modules if m.type == "SpatialGate"]
    expected = sum(
        n * spatial_gate_ops(c, s)
        for n, c, s in ((3, 256, 56), (4, 512, 28), (6, 1024, 14), (3, 2048, 7))
    )
    assert len(spatial) == 16 and sum(m.macs for m in spatial) == expected


def test_spatial_gate_shows_in_the_attention_share(cbam50):
    spatial = sum(m.attention_macs for m in cbam50.modules if m.type == "SpatialGate")
    channel = sum(m.attention_macs for m in cbam50.modules if m.type == "ChannelGate")
    # The attention share is channel gates + spatial gates, nothing else.
    assert spatial + channel == cbam50.attention_macs
    assert round(spatial / cbam50.attention_macs, 3) == 0.454  # almost half of CBAM's own work
    assert 0.0101 < cbam50.attention_share < 0.0102  # of all the paper-convention MACs
