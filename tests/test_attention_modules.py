"""Each attention module against a direct computation of its paper's definition."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from senet.layers import (
    CBAM,
    ECA,
    SCSE,
    ChannelGate,
    GatherExcite,
    ResidualAttention,
    ResidualAttentionModule,
    SpatialGate,
    SqueezeExcite,
    attention_names,
    create_attn,
    eca_kernel_size,
    get_attn,
)


def conv1x1(conv: nn.Conv2d, z: torch.Tensor) -> torch.Tensor:
    return F.conv2d(z, conv.weight, conv.bias)


def test_cbam_channel_gate_sums_avg_and_max_through_one_mlp():
    gate = ChannelGate(16, reduction=4)
    x = torch.randn(2, 16, 5, 5)

    def mlp(z):
        return conv1x1(gate.fc2, F.relu(conv1x1(gate.fc1, z)))

    weights = torch.sigmoid(mlp(x.mean((2, 3), keepdim=True)) + mlp(x.amax((2, 3), keepdim=True)))
    torch.testing.assert_close(gate(x), x * weights)


def test_cbam_spatial_gate_uses_channel_max_and_mean():
    gate = SpatialGate(7).eval()
    x = torch.randn(2, 16, 9, 9)
    pooled = torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], 1)
    weights = torch.sigmoid(gate.bn(F.conv2d(pooled, gate.conv.weight, padding=3)))
    assert weights.shape == (2, 1, 9, 9)
    torch.testing.assert_close(gate(x), x * weights)


def test_cbam_is_channel_then_spatial():
    cbam = CBAM(16, 4).eval()
    x = torch.randn(2, 16, 6, 6)
    torch.testing.assert_close(cbam(x), cbam.spatial_gate(cbam.channel_gate(x)))
    # Each gate alone is available by name.
    assert isinstance(create_attn("cbam_channel", 16), ChannelGate)
    assert isinstance(create_attn("cbam_spatial", 16, kernel_size=3), SpatialGate)


@pytest.mark.parametrize(
    ("channels", "k"), [(64, 3), (128, 5), (256, 5), (512, 5), (1024, 5), (2048, 7)]
)
def test_eca_adaptive_kernel(channels, k):
    # k = |log2(C)/2 + 1/2| made odd (ECA-Net, eq. 12).
    assert eca_kernel_size(channels) == k
    assert ECA(channels).conv.kernel_size == (k,)


def test_eca_is_a_1d_conv_across_channels():
    eca = ECA(8, kernel_size=3)
    with torch.no_grad():
        eca.conv.weight.copy_(torch.tensor([[[1.0, 2.0, 3.0]]]))
    x = torch.randn(1, 8, 4, 4)
    z = x.mean((2, 3))[0]
    padded = F.pad(z, (1, 1))
    expected = torch.stack([padded[i] + 2 * padded[i + 1] + 3 * padded[i + 2] for i in range(8)])
    torch.testing.assert_close(eca.excitation(x).flatten(), torch.sigmoid(expected))
    assert sum(p.numel() for p in eca.parameters()) == 3


def test_gather_excite_global_parameter_free_is_se_without_mlp():
    ge = GatherExcite(8)
    x = torch.randn(2, 8, 6, 6)
    assert not list(ge.parameters())
    torch.testing.assert_close(ge(x), x * torch.sigmoid(x.mean((2, 3), keepdim=True)))


def test_gather_excite_local_extent_spreads_neighbourhood_context():
    ge = GatherExcite(4, extent=2)
    x = torch.randn(1, 4, 8, 8)
    s = ge.excitation(x)
    assert s.shape == x.shape
    # Each 2x2 output cell shares one gathered value (nearest-neighbour redistribution).
    assert torch.equal(s[..., 0, 0], s[..., 1, 1])
    assert not torch.equal(s[..., 0, 0], s[..., 2, 2])
    gathered = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
    torch.testing.assert_close(s[..., ::2, ::2], torch.sigmoid(gathered))


def test_gather_excite_theta_params_are_depthwise():
    c = 16
    # extent 8 -> log2(8) = 3 stride-2 depthwise 3x3 convs, each with BN (2c params).
    ge = GatherExcite(c, extent=8, extra_params=True)
    assert sum(p.numel() for p in ge.parameters()) == 3 * (9 * c + 2 * c)
    assert ge.excitation(torch.randn(1, c, 16, 16)).shape == (1, c, 16, 16)


def test_gather_excite_bad_arguments():
    with pytest.raises(ValueError, match="extent must be 0 \\(global\\) or a power of two"):
        GatherExcite(8, extent=3)
    with pytest.raises(ValueError, match="pass feat_size=H"):
        GatherExcite(8, extra_params=True)


def test_scse_adds_channel_and_spatial_excitation():
    scse = SCSE(8, 2)
    x = torch.randn(2, 8, 5, 5)
    spatial = torch.sigmoid(conv1x1(scse.sse.conv, x))
    torch.testing.assert_close(scse(x), scse.cse(x) + x * spatial)
    scse_max = SCSE(8, 2, combine="max")
    torch.testing.assert_close(scse_max(x), torch.maximum(scse_max.cse(x), scse_max.sse(x)))


def test_residual_attention_is_one_plus_mask_times_trunk():
    trunk = nn.Conv2d(4, 4, 3, padding=1)
    mask = nn.Sequential(nn.Conv2d(4, 4, 1), nn.Sigmoid())
    module = ResidualAttention(trunk, mask)
    x = torch.randn(2, 4, 6, 6)
    torch.testing.assert_close(module(x), (1 + mask(x)) * trunk(x))


def _bn_relu_conv(x: torch.Tensor, bn: nn.BatchNorm2d, conv: nn.Conv2d) -> torch.Tensor:
    x = F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
    return F.conv2d(F.relu(x), conv.weight, padding=conv.kernel_size[0] // 2)


def _unit(x: torch.Tensor, unit: nn.Module) -> torch.Tensor:
    """Pre-activation bottleneck: x + (BN, ReLU, 1x1, BN, ReLU, 3x3, BN, ReLU, 1x1)(x)."""
    b = unit.branch
    return x + _bn_relu_conv(_bn_relu_conv(_bn_relu_conv(x, b[0], b[2]), b[3], b[5]), b[6], b[8])


def _soft_mask(x: torch.Tensor, branch: nn.Module) -> torch.Tensor:
    """Wang et al. Fig. 2: max pool down, units, [nested level + skip unit], units, bilinear up."""
    y = F.max_pool2d(x, 3, stride=2, padding=1)
    for unit in branch.encode:
        y = _unit(y, unit)
    if branch.inner is not None:
        y = _soft_mask(y, branch.inner) + _unit(y, branch.skip)
    for unit in branch.decode:
        y = _unit(y, unit)
    return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


def test_residual_attention_module_follows_the_paper():
    module = ResidualAttentionModule(16, depth=3).eval()
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):  # non-trivial statistics, so every BN matters
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    x = torch.randn(1, 16, 17, 13)  # odd sizes: the mask must be resized back exactly
    masks = []
    module.attention.mask.register_forward_hook(lambda m, a, out: masks.append(out))
    with torch.no_grad():
        out = module(x)
        # p = 1 unit, then (1 + M) * T with t = 2 trunk units, then p = 1 unit.
        y = _unit(x, module.pre[0])
        head = module.attention.mask
        m = _soft_mask(y, head[0])
        m = torch.sigmoid(_bn_relu_conv(_bn_relu_conv(m, head[1], head[3]), head[4], head[6]))
        t = _unit(_unit(y, module.attention.trunk[0]), module.attention.trunk[1])
        expected = _unit((1 + m) * t, module.post[0])
    torch.testing.assert_close(masks[0], m)
    torch.testing.assert_close(out, expected)
    assert masks[0].shape == (1, 16, 17, 13) and masks[0].min() > 0 and masks[0].max() < 1


def test_create_attn_map():
    assert create_attn(None, 64) is None
    assert create_attn("none", 64) is None
    se = create_attn("se", 64, reduction=8, gate="tanh", bias=False)
    assert isinstance(se, SqueezeExcite) and se.hidden_channels == 8 and se.fc1.bias is None
    assert isinstance(se.gate, nn.Tanh)
    assert isinstance(create_attn(ECA, 64), ECA)
    assert get_attn("SE") is SqueezeExcite
    assert set(attention_names()) >= {"se", "cbam", "eca", "ge", "scse"}


def test_create_attn_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match=r"unknown attention 'sk'; expected one of cbam, .*se"):
        create_attn("sk", 64)
