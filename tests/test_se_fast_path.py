"""SE's fast path (SE nearly free in wall time) computes exactly the paper's formula.

The fast path changes how SE runs (FCs as matrix products outside autocast, the squeeze by
matmul on CPU bf16 maps, the scale fused with the residual add) but not what it computes:
outputs and gradients are checked against the formula written out in float64, in every
squeeze/gate/strategy option, fp32 and bf16, NCHW and channels_last.
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import senet
from senet.layers import CBAM, ECA, GatherExcite, SqueezeExcite, spatial_mean
from senet.models.blocks import STRATEGIES, BasicBlock, Bottleneck, PreActBasicBlock

GATES = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": F.relu,
    "hard_sigmoid": F.hardsigmoid,
    "clamp": lambda y: y.clamp(0, 1),
}
SQUEEZES = {
    "avg": lambda x: x.mean((2, 3)),
    "max": lambda x: x.amax((2, 3)),
    "avgmax": lambda x: 0.5 * (x.mean((2, 3)) + x.amax((2, 3))),
}


def reference_se(se: SqueezeExcite, x: torch.Tensor, squeeze: str, gate: str) -> torch.Tensor:
    """Eqs. 2-4 in float64 from the module's own weights."""
    x64 = x.double()
    w1, w2 = se.fc1.weight.double()[:, :, 0, 0], se.fc2.weight.double()[:, :, 0, 0]
    b1 = se.fc1.bias.double() if se.fc1.bias is not None else 0.0
    b2 = se.fc2.bias.double() if se.fc2.bias is not None else 0.0
    z = SQUEEZES[squeeze](x64)
    s = GATES[gate](F.relu(z @ w1.T + b1) @ w2.T + b2)
    return x64 * s[:, :, None, None]


@pytest.mark.parametrize("squeeze", sorted(SQUEEZES))
@pytest.mark.parametrize("gate", sorted(GATES))
@pytest.mark.parametrize("bias", [True, False])
def test_fp32_output_and_gradients_equal_the_formula(squeeze, gate, bias):
    se = SqueezeExcite(32, reduction=4, squeeze=squeeze, gate=gate, bias=bias)
    x = torch.randn(3, 32, 6, 5, requires_grad=True)
    out = se(x)
    ref = reference_se(se, x, squeeze, gate)
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=1e-6)
    weights = torch.randn_like(out)
    grads = torch.autograd.grad((out * weights).sum(), [x, se.fc1.weight, se.fc2.weight])
    ref_grads = torch.autograd.grad(
        (ref * weights.double()).sum(), [x, se.fc1.weight, se.fc2.weight]
    )
    for g, r in zip(grads, ref_grads, strict=True):
        # gradients sum ~100 fp32 products: fp32 rounding, ~1e-6 of the largest term
        torch.testing.assert_close(g.double(), r.double(), rtol=1e-5, atol=1e-5)


def test_residual_form_is_the_residual_plus_the_scale():
    se = SqueezeExcite(16, reduction=4)
    x, residual = torch.randn(2, 16, 7, 7), torch.randn(2, 16, 7, 7)
    torch.testing.assert_close(se(x, residual), residual + se(x), rtol=0, atol=1e-6)
    assert se(x, residual).data_ptr() != residual.data_ptr()  # the residual is not overwritten


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("mode", ["autocast", "bf16_weights"])
def test_bf16_is_within_bf16_rounding_of_the_formula(channels_last, mode):
    se = SqueezeExcite(64, reduction=16)
    x = torch.randn(4, 64, 14, 14)
    ref = reference_se(se, x, "avg", "sigmoid")
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    xb = x.to(torch.bfloat16).to(memory_format=fmt)
    if mode == "autocast":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = se(xb)
    else:
        out = copy.deepcopy(se).to(torch.bfloat16)(xb)
    assert out.dtype == torch.bfloat16
    assert out.is_contiguous(memory_format=fmt)
    # bf16 keeps 8 significant bits: relative error 2^-8 per rounding, a few roundings deep
    torch.testing.assert_close(out.double(), ref, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_spatial_mean_equals_mean_forward_and_backward(channels_last, dtype):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(3, 24, 9, 11).to(dtype).to(memory_format=fmt).requires_grad_()
    out = spatial_mean(x)
    ref = x.double().mean((2, 3), keepdim=True)
    tol = 1e-6 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol)
    (grad,) = torch.autograd.grad(out.sum(), x)
    expected = torch.full(x.shape, 1 / 99, dtype=torch.float64)
    torch.testing.assert_close(grad.double(), expected, rtol=tol, atol=tol)  # 1/99 in x's dtype


class _RecordCasts(TorchDispatchMode):
    """Records the shapes of every dtype cast that runs."""

    def __init__(self):
        super().__init__()
        self.casts = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in (torch.ops.aten._to_copy, torch.ops.aten.copy_):
            self.casts.append(tuple(args[0].shape))
        return func(*args, **(kwargs or {}))


def test_autocast_casts_neither_the_weights_nor_the_activation():
    se = SqueezeExcite(64, reduction=4)
    x = torch.randn(2, 64, 8, 8, dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16), _RecordCasts() as rec:
        se(x)
    weight_shapes = {tuple(p.shape) for p in se.parameters()}
    assert not weight_shapes & set(rec.casts), rec.casts
    assert tuple(x.shape) not in rec.casts  # the squeeze reads bf16 directly
    assert all(s in {(2, 64, 1, 1), (2, 64)} for s in rec.casts), rec.casts  # only tiny vectors


def test_gate_hook_sees_the_excitation_and_checkpoint_keys_are_unchanged():
    se = SqueezeExcite(32, reduction=8)
    seen = []
    se.gate.register_forward_hook(lambda m, i, o: seen.append(o))
    x = torch.randn(2, 32, 4, 4)
    s = se.excitation(x)
    assert seen[0].shape == (2, 32, 1, 1)
    torch.testing.assert_close(seen[0], s)
    assert {k: tuple(v.shape) for k, v in se.state_dict().items()} == {
        "fc1.weight": (4, 32, 1, 1),
        "fc1.bias": (4,),
        "fc2.weight": (32, 4, 1, 1),
        "fc2.bias": (32,),
    }


def _unfused(block):
    ref = copy.deepcopy(block)
    ref.attn.fuses_residual = False  # the block then scales, adds and rectifies in three steps
    return ref


BLOCKS = [
    (BasicBlock, {"in_chs": 16, "planes": 16}),
    (Bottleneck, {"in_chs": 64, "planes": 16}),
    (PreActBasicBlock, {"in_chs": 16, "planes": 16}),
]


@pytest.mark.parametrize("attn", ["se", "eca", "cbam", "ge"])
@pytest.mark.parametrize("strategy", ["standard", "identity"])
@pytest.mark.parametrize(("block_cls", "kwargs"), BLOCKS)
def test_fused_residual_add_equals_the_unfused_block(attn, strategy, block_cls, kwargs):
    block = block_cls(**kwargs, attn=attn, strategy=strategy)
    assert block.attn.fuses_residual
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0, 0.3)  # non-trivial BN affines and gates
    ref = _unfused(block)
    x = torch.randn(2, kwargs["in_chs"], 8, 8)
    x_ref = x.clone().requires_grad_()
    x.requires_grad_()
    out, out_ref = block(x), ref(x_ref)
    torch.testing.assert_close(out, out_ref, rtol=0, atol=1e-5)
    out.square().sum().backward()
    out_ref.square().sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-5)
    for (name, p), p_ref in zip(block.named_parameters(), ref.parameters(), strict=True):
        # the same sums in another order: fp32 rounding relative to the largest entry
        scale = p_ref.grad.abs().max().item()
        torch.testing.assert_close(p.grad, p_ref.grad, rtol=1e-5, atol=2e-6 * scale, msg=name)


def test_every_strategy_of_se_resnet_keeps_its_function_under_bf16_channels_last():
    x = torch.randn(2, 3, 32, 32)
    for strategy in (s for s in STRATEGIES if s != "conv3x3"):  # basic blocks: no lone 3x3
        model = senet.create_model("se_resnet20_cifar", strategy=strategy, num_classes=10)
        model.eval()
        ref = model(x)
        fast = copy.deepcopy(model).to(memory_format=torch.channels_last)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            out = fast(x.to(memory_format=torch.channels_last))
        torch.testing.assert_close(out.float(), ref, rtol=0.05, atol=0.05)


def test_a_block_whose_attention_is_swapped_for_a_plain_module_still_runs():
    block = BasicBlock(16, 16, attn="se")
    x = torch.randn(2, 16, 8, 8)
    block.attn = torch.nn.Identity()  # e.g. an analysis freezing a gate, or a user's own module
    expected = torch.relu(block.bn2(block.conv2(block.act1(block.bn1(block.conv1(x))))) + x)
    torch.testing.assert_close(block(x), expected)


def test_other_gating_modules_take_the_residual_too():
    x, residual = torch.randn(2, 32, 8, 8), torch.randn(2, 32, 8, 8)
    for module in (ECA(32), CBAM(32, reduction=4), GatherExcite(32)):
        torch.testing.assert_close(module(x, residual), residual + module(x), atol=1e-6, rtol=0)


def _plain(module, x, residual=None):
    """The unfused formula through ordinary autograd: residual + x * excitation(x)."""
    s = module.excitation(x).to(x.dtype)
    return x * s if residual is None else residual + x * s


@pytest.mark.parametrize("make", [lambda: SqueezeExcite(32, reduction=4), lambda: ECA(32)])
@pytest.mark.parametrize("with_residual", [False, True])
def test_fused_squeeze_and_scale_backward_equals_plain_autograd(make, with_residual):
    module = make()
    fmt = torch.channels_last
    x = torch.randn(3, 32, 6, 5).to(memory_format=fmt).requires_grad_()
    residual = torch.randn_like(x).requires_grad_() if with_residual else None  # same layout
    out = module(x, residual) if with_residual else module(x)
    assert type(out.grad_fn).__name__ == "_ScaleBackward"  # the fused path ran
    expected = _plain(module, x, residual)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    weights = torch.randn_like(out)
    inputs = [x, *module.parameters()] + ([residual] if with_residual else [])
    got = torch.autograd.grad((out * weights).sum(), inputs)
    ref = torch.autograd.grad((expected * weights).sum(), inputs)
    for g, r in zip(got, ref, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-6)
    assert got[0].is_contiguous(memory_format=fmt)  # x's gradient keeps x's layout


def test_fused_backward_in_bf16_autocast_channels_last_is_within_bf16_rounding():
    se = SqueezeExcite(64, reduction=16)
    x = torch.randn(4, 64, 14, 14).to(torch.bfloat16, memory_format=torch.channels_last)
    x.requires_grad_()
    residual = torch.randn_like(x).requires_grad_()
    weights = torch.randn(4, 64, 14, 14)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = se(x, residual)
    assert type(out.grad_fn).__name__ == "_ScaleBackward"
    got = torch.autograd.grad((out.float() * weights).sum(), [x, residual, se.fc1.weight])
    x32, r32 = x.detach().float().requires_grad_(), residual.detach().float().requires_grad_()
    ref_out = r32 + se.excitation(x32) * x32  # the plain formula in fp32
    ref = torch.autograd.grad((ref_out * weights).sum(), [x32, r32, se.fc1.weight])
    for g, r in zip(got, ref, strict=True):
        scale = r.abs().max().item()
        torch.testing.assert_close(g.float(), r, rtol=0.02, atol=0.02 * scale)


def test_fused_path_handles_a_loss_on_the_gate_alone_and_a_second_backward():
    se = SqueezeExcite(16, reduction=4)
    seen = []
    se.gate.register_forward_hook(lambda m, i, o: seen.append(o))
    x = torch.randn(2, 16, 5, 5).to(memory_format=torch.channels_last).requires_grad_()
    out = se(x)
    (g_gate,) = torch.autograd.grad(seen[-1].sum(), x, retain_graph=True)  # scale unused
    (ref_gate,) = torch.autograd.grad(se.excitation(x).sum(), x)
    torch.testing.assert_close(g_gate, ref_gate, rtol=1e-5, atol=1e-7)
    first = torch.autograd.grad(out.sum(), x, retain_graph=True)[0]
    second = torch.autograd.grad(out.sum(), x)[0]  # the hand-off is refilled, not stale
    torch.testing.assert_close(first, second)
    torch.testing.assert_close(first, torch.autograd.grad(_plain(se, x).sum(), x)[0])


def test_fused_path_only_where_measured_faster_and_with_gradients():
    x = torch.randn(2, 16, 5, 5).to(memory_format=torch.channels_last)
    assert type(SqueezeExcite(16, reduction=4)(x.requires_grad_()).grad_fn).__name__ == (
        "_ScaleBackward"
    )
    nchw = torch.randn(2, 16, 5, 5, requires_grad=True)
    assert type(SqueezeExcite(16, reduction=4)(nchw).grad_fn).__name__ == "MulBackward0"
    with torch.no_grad():
        assert SqueezeExcite(16, reduction=4)(x).grad_fn is None
    out = SqueezeExcite(16, reduction=4, squeeze="max")(x)
    assert type(out.grad_fn).__name__ == "MulBackward0"
