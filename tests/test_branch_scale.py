"""BranchScale: a residual branch times a constant, the control for SE's constant gates."""

from pathlib import Path

import pytest
import torch

import senet
from senet.ablation import load_grid
from senet.config import attn_kwargs_problem
from senet.layers import BranchScale, create_attn
from senet.models.blocks import BasicBlock
from senet.train.resume import config_differences

REPO = Path(__file__).resolve().parents[1]


def test_scales_the_branch_and_fuses_the_add():
    scale = create_attn("scale", 8, value=0.25)
    assert isinstance(scale, BranchScale) and not list(scale.parameters())
    x, shortcut = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)
    torch.testing.assert_close(scale(x), x * 0.25, rtol=0, atol=0)
    torch.testing.assert_close(scale(x, shortcut), shortcut + 0.25 * x)
    assert create_attn("scale", 8).value == 0.5  # SE's gate at sigmoid(0)


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [("standard", lambda out, sc: sc + 0.5 * out), ("identity", lambda out, sc: out + 0.5 * sc)],
)
def test_block_scales_the_side_the_strategy_names(strategy, expected):
    block = BasicBlock(8, 8, attn="scale", strategy=strategy).eval()
    plain = BasicBlock(8, 8).eval()
    plain.load_state_dict(block.state_dict())  # BranchScale adds no weights
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        out = plain.bn2(plain.conv2(plain.act1(plain.bn1(plain.conv1(x)))))
        torch.testing.assert_close(block(x), torch.relu(expected(out, x)))


def test_value_one_is_the_plain_network_and_a_half_is_not():
    torch.manual_seed(0)
    plain = senet.create_model("resnet20_cifar", in_chans=1).eval()

    def scaled(value: float) -> torch.nn.Module:
        model = senet.create_model(
            "resnet20_cifar", in_chans=1, attn="scale", attn_kwargs={"value": value}
        )
        model.load_state_dict(plain.state_dict())
        return model.eval()

    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        expected = plain(x)
        torch.testing.assert_close(scaled(1.0)(x), expected, rtol=0, atol=0)
        assert (scaled(0.5)(x) - expected).abs().max() > 1e-3


def test_bad_arguments_and_input_say_what_was_wrong():
    with pytest.raises(ValueError, match="value must be a finite number, got 'half'"):
        BranchScale(8, value="half")
    with pytest.raises(ValueError, match="value must be a finite number, got nan"):
        BranchScale(8, value=float("nan"))
    with pytest.raises(ValueError, match=r"BranchScale\(channels=8\) got input with 4 channels"):
        BranchScale(8)(torch.randn(1, 4, 2, 2))
    assert "did you mean 'value'" in attn_kwargs_problem("scale", {"valu": 0.5})


def test_control_grid_differs_from_the_depth_grids_resnet110_only_in_the_scale():
    ablations = REPO / "experiments" / "fashion_mnist" / "grids"
    control = load_grid(ablations / "fashion_mnist_depth_scale.yaml")
    depth = load_grid(ablations / "fashion_mnist_depth.yaml")
    twins = {p.run_id: p for p in depth.points if p.run_id.startswith("name=resnet110_cifar__")}
    assert [p.seed for p in control.points] == [0, 1, 2]
    for point in control.points:
        twin = twins[f"name=resnet110_cifar__seed={point.seed}"]
        changed = config_differences(
            depth.point_config(twin).to_dict(), control.point_config(point).to_dict()
        )
        assert changed == ["model.attn: None -> 'scale'", "model.attn_kwargs: {} -> {'value': 0.5}"]
