"""SqueezeExcite against the paper's equations and the common reference implementations."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from senet.layers import SqueezeExcite, hidden_width, make_divisible


def paper_se(x, w1, b1, w2, b2, delta=F.relu, sigma=torch.sigmoid):
    """Eqs. 2-4 of the paper written out: z = F_sq(u), s = sigma(W2 delta(W1 z)), u * s."""
    z = x.mean(dim=(2, 3))  # eq. 2, (N, C)
    s = sigma(delta(z @ w1.T + b1) @ w2.T + b2)  # eq. 3
    return x * s[:, :, None, None]  # eq. 4


def fc_weights(se: SqueezeExcite):
    return se.fc1.weight[:, :, 0, 0], se.fc1.bias, se.fc2.weight[:, :, 0, 0], se.fc2.bias


def test_matches_the_paper_equations():
    se = SqueezeExcite(64, reduction=16)
    x = torch.randn(3, 64, 9, 7)
    torch.testing.assert_close(se(x), paper_se(x, *fc_weights(se)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("gate", "sigma"),
    [
        ("sigmoid", torch.sigmoid),
        ("tanh", torch.tanh),
        ("relu", F.relu),
        ("hard_sigmoid", F.hardsigmoid),
        ("clamp", lambda y: y.clamp(0, 1)),
    ],
)
def test_gate_operators_of_table_12(gate, sigma):
    se = SqueezeExcite(32, reduction=4, gate=gate)
    x = torch.randn(2, 32, 5, 5)
    torch.testing.assert_close(se(x), paper_se(x, *fc_weights(se), sigma=sigma))


class CommonSELayer(nn.Module):
    """The widely copied SELayer: Linear layers with bias and a clamp(0, 1) gate."""

    def __init__(self, channel: int, reduction: int = 4) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channel, channel // reduction),
            nn.ReLU(inplace=True),
            nn.Linear(channel // reduction, channel),
        )

    def forward(self, x):
        b, c, _, _ = x.size()
        y = self.avg_pool(x).view(b, c)
        y = torch.clamp(self.fc(y), 0, 1).view(b, c, 1, 1)
        return x * y


def test_clamp_gate_reduction_4_equals_common_selayer():
    reference = CommonSELayer(48, reduction=4)
    se = SqueezeExcite(48, reduction=4, gate="clamp", bias=True)
    with torch.no_grad():
        se.fc1.weight.copy_(reference.fc[0].weight[:, :, None, None])
        se.fc1.bias.copy_(reference.fc[0].bias)
        se.fc2.weight.copy_(reference.fc[2].weight[:, :, None, None])
        se.fc2.bias.copy_(reference.fc[2].bias)
    x = torch.randn(4, 48, 6, 6)
    torch.testing.assert_close(se(x), reference(x), rtol=1e-6, atol=1e-6)
    # Clamping must bite somewhere, or this would not test the gate.
    pre_gate = reference.fc(x.mean((2, 3)))
    assert (pre_gate < 0).any() and (pre_gate.abs() < 1).any()


@pytest.mark.parametrize(
    ("channels", "reduction"), [(64, 16), (256, 16), (2048, 16), (96, 8), (10, 4)]
)
@pytest.mark.parametrize("bias", [True, False])
def test_param_count_follows_formula(channels, reduction, bias):
    hidden = channels // reduction
    expected = 2 * channels * hidden + (hidden + channels if bias else 0)
    se = SqueezeExcite(channels, reduction, bias=bias)
    assert sum(p.numel() for p in se.parameters()) == expected


def test_squeeze_operators():
    x = torch.randn(2, 8, 4, 4)
    z_avg, z_max = x.mean((2, 3), keepdim=True), x.amax((2, 3), keepdim=True)
    for squeeze, z in [("avg", z_avg), ("max", z_max), ("avgmax", 0.5 * (z_avg + z_max))]:
        se = SqueezeExcite(8, 2, squeeze=squeeze)
        torch.testing.assert_close(se.squeeze(x), z)
        expected = x * se.gate(se.fc2(se.act(se.fc1(z))))
        torch.testing.assert_close(se(x), expected)


def test_nosqueeze_excites_each_position():
    se = SqueezeExcite(16, 4, squeeze="none")
    x = torch.randn(2, 16, 5, 6)
    s = se.excitation(x)
    assert s.shape == x.shape
    # Position (i, j) depends only on x[:, :, i, j]: the paper's NoSqueeze (Table 16).
    w1, b1, w2, b2 = fc_weights(se)
    pixel = x[:, :, 2, 3]
    torch.testing.assert_close(s[:, :, 2, 3], torch.sigmoid(F.relu(pixel @ w1.T + b1) @ w2.T + b2))


def test_hidden_width_rules():
    assert hidden_width(256, 16) == 16
    assert hidden_width(8, 16) == 1  # floored at min_channels=1: the paper's widths are exact
    assert hidden_width(8, 16, min_channels=4) == 4
    assert make_divisible(64 / 4, 8) == 16
    assert make_divisible(24 / 4, 8) == 8
    assert make_divisible(100 / 4, 8) == 24  # 25 -> nearest multiple of 8
    assert SqueezeExcite(100, 4, divisor=8).hidden_channels == 24
    assert SqueezeExcite(64, hidden_channels=5).hidden_channels == 5


def test_gate_is_readable_by_hook_and_method():
    se = SqueezeExcite(32, 4)
    seen = []
    se.gate.register_forward_hook(lambda module, args, out: seen.append(out.detach()))
    x = torch.randn(2, 32, 4, 4)
    y = se(x)
    assert len(seen) == 1 and seen[0].shape == (2, 32, 1, 1)
    torch.testing.assert_close(seen[0], se.excitation(x))
    torch.testing.assert_close(y, x * seen[0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channels": 0}, "channels must be an integer >= 1, got 0"),
        ({"channels": 64, "reduction": 0}, "reduction must be an integer >= 1, got 0"),
        ({"channels": 64, "reduction": 2.5}, "reduction must be an integer >= 1, got 2.5"),
        (
            {"channels": 64, "squeeze": "median"},
            "SqueezeExcite: unknown squeeze 'median'; expected one of",
        ),
        ({"channels": 64, "gate": "softmax"}, "unknown gate 'softmax'; expected one of"),
        ({"channels": 64, "act_layer": "prelu"}, "unknown act_layer 'prelu'"),
    ],
)
def test_constructor_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SqueezeExcite(**kwargs)


def test_wrong_channel_count_is_named():
    se = SqueezeExcite(64)
    with pytest.raises(
        ValueError, match=r"SqueezeExcite\(channels=64\) got input with 32 channels"
    ):
        se(torch.randn(1, 32, 4, 4))
    with pytest.raises(
        ValueError, match=r"expects a 4-D \(N, C, H, W\) tensor, got shape \(64, 4\)"
    ):
        se(torch.randn(64, 4))
