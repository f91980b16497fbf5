"""Behaviour every attention layer shares: shapes, dtypes, gradients, memory formats, export."""

import pytest
import torch
from torch import nn

from senet.layers import (
    CBAM,
    ECA,
    SCSE,
    GatherExcite,
    ResidualAttentionModule,
    SpatialTransformer,
    SqueezeExcite,
    attention_names,
    create_attn,
)

C = 32

LAYERS = {
    **{
        f"create_attn:{name}": (lambda name=name: create_attn(name, C))
        for name in attention_names()
    },
    "se_max": lambda: SqueezeExcite(C, 4, squeeze="max"),
    "se_nosqueeze": lambda: SqueezeExcite(C, 4, squeeze="none"),
    "se_tanh_nobias": lambda: SqueezeExcite(C, 8, gate="tanh", bias=False),
    "ge_extent4": lambda: GatherExcite(C, 4),
    "ge_theta": lambda: GatherExcite(C, 4, extra_params=True),
    "ge_theta_global": lambda: GatherExcite(C, 0, extra_params=True, feat_size=8),
    "ge_theta_plus": lambda: GatherExcite(C, 2, extra_params=True, use_mlp=True),
    "eca_k5": lambda: ECA(C, 5),
    "cbam_k3": lambda: CBAM(C, 4, 3),
    "scse_max": lambda: SCSE(C, 4, combine="max"),
    "stn": lambda: SpatialTransformer(C),
    "residual_attention": lambda: ResidualAttentionModule(C, depth=2),
}


@pytest.fixture(params=sorted(LAYERS))
def layer(request) -> nn.Module:
    return LAYERS[request.param]()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_shape_and_dtype_kept(layer, dtype):
    layer = layer.to(dtype)
    x = torch.randn(2, C, 8, 8, dtype=dtype)
    y = layer(x)
    assert y.shape == x.shape and y.dtype == dtype
    assert torch.isfinite(y.float()).all()


def test_gradients_reach_every_parameter(layer):
    x = torch.randn(2, C, 8, 8, requires_grad=True)
    if isinstance(layer, SpatialTransformer):
        # The identity-initialised regressor has zero weights: give it some to exercise all paths.
        nn.init.normal_(layer.regressor[-1].weight, std=0.01)
    layer(x).square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in layer.named_parameters():
        assert p.grad is not None, f"{name} received no gradient"
        assert p.grad.abs().sum() > 0, f"{name} received an all-zero gradient"


def test_channels_last_gives_same_values(layer):
    layer.eval()
    x = torch.randn(2, C, 8, 8)
    expected = layer(x)
    cl_layer = layer.to(memory_format=torch.channels_last)
    y = cl_layer(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(y, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["se", "cbam", "eca"])
def test_channels_last_output_stays_channels_last(name):
    layer = create_attn(name, C).to(memory_format=torch.channels_last)
    x = torch.randn(2, C, 8, 8).contiguous(memory_format=torch.channels_last)
    assert layer(x).is_contiguous(memory_format=torch.channels_last)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["se", "cbam"])
def test_torch_compile_matches_eager(name):
    layer = create_attn(name, C).eval()
    x = torch.randn(2, C, 8, 8)
    compiled = torch.compile(layer)
    torch.testing.assert_close(compiled(x), layer(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["se", "cbam"])
def test_onnx_export_runs_and_matches(name, tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript", reason="torch.onnx.export(dynamo=True) needs onnxscript")
    from onnx.reference import ReferenceEvaluator

    layer = create_attn(name, C).eval()
    x = torch.randn(2, C, 8, 8)
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(layer, (x,), str(path), dynamo=True, input_names=["x"])
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    (y,) = ReferenceEvaluator(model).run(None, {"x": x.numpy()})
    torch.testing.assert_close(torch.from_numpy(y), layer(x).detach(), rtol=1e-4, atol=1e-5)
