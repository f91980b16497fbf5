"""CUDA paths: layers, zoo, retrofit and training on a GPU agree with the CPU.

Skipped without CUDA; `bash benchmarks/gpu.sh` runs them (with the GPU benchmarks) on a machine
that has one.
"""

from __future__ import annotations

import pytest
import torch
from _tiny_models import QUICK, tiny_models_registered
from torch import nn

import senet
from senet.layers import create_attn
from senet.train import CheckpointDir, load_config, read_weights, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(autouse=True)
def _exact_fp32():
    # TF32 convs and matmuls would make the CPU/GPU comparisons 1e-3-loose; compare true fp32.
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@pytest.mark.parametrize("name", ["se", "cbam", "eca", "ge", "scse"])
def test_attention_on_cuda_matches_cpu(name):
    layer = create_attn(name, 64).eval()
    x = torch.randn(2, 64, 14, 14)
    expected = layer(x)
    gpu = layer.cuda()
    got = gpu(x.cuda().to(memory_format=torch.channels_last))
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-5, atol=1e-5)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        half = gpu(x.cuda().bfloat16())
    assert half.dtype == torch.bfloat16 and torch.isfinite(half).all()
    torch.testing.assert_close(half.float().cpu(), expected, rtol=0.05, atol=0.05)


@pytest.mark.parametrize("name", ["se_resnet20_cifar", "se_resnext50_32x4d"])
def test_model_on_cuda_matches_cpu_and_backpropagates(name):
    model = senet.create_model(name, num_classes=10).eval()
    size = 32 if name.endswith("cifar") else 64
    x = torch.randn(2, 3, size, size)
    expected = model(x)
    model.cuda().to(memory_format=torch.channels_last)
    got = model(x.cuda().to(memory_format=torch.channels_last))
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-4, atol=1e-4)
    model.train()
    model(x.cuda()).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_retrofit_identity_init_on_cuda():
    torchvision = pytest.importorskip("torchvision")
    base = torchvision.models.resnet18(num_classes=10).eval()
    x = torch.randn(2, 3, 64, 64, device="cuda")
    expected = base.cuda()(x)
    report = senet.retrofit(base.cpu(), "se", init="identity")
    assert len(report.sites) == 8
    torch.testing.assert_close(base.cuda()(x), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_training_on_cuda_with_amp_writes_weights_that_load_on_cpu(tmp_path, amp):
    with tiny_models_registered():
        cfg = load_config(
            None,
            [
                *QUICK,
                f"output_dir={tmp_path / 'run'}",
                "train.device=cuda",
                f"train.amp={amp}",
                "train.channels_last=true",
                "train.epochs=2",
            ],
        )
        summary = train(cfg)
    assert summary["best_top1"] > 25  # 4 classes: above chance after 2 epochs
    state, meta = read_weights(tmp_path / "run" / "last.safetensors")
    assert all(t.device.type == "cpu" and torch.isfinite(t).all() for t in state.values())
    assert meta["model"] == "_test_tinynet"
    _, ckpt = CheckpointDir(tmp_path / "run" / "checkpoints").newest_valid()
    assert ckpt["epoch"] == 2
    if amp == "fp16":
        assert ckpt["scaler"], "fp16 runs keep the grad scaler's state for resuming"


def test_profile_timing_on_cuda_reports_memory():
    model: nn.Module = senet.create_model("se_resnet20_cifar")
    result = senet.profile(model, (3, 32, 32), batch_size=8, device="cuda", timing=True)
    assert result.timing is not None
    assert result.timing.peak_memory_bytes > 0 and result.timing.median_ms > 0


def test_cuda_graphed_inference_matches_eager_per_shape_and_keeps_outputs():
    model = senet.create_model("se_resnet20_cifar", num_classes=10).eval().cuda()
    graphed = senet.optimize_for_inference(model, dtype="fp32", input_size=(3, 32, 32))
    eager = senet.optimize_for_inference(
        model, dtype="fp32", input_size=(3, 32, 32), cuda_graph=False
    )
    assert graphed.graphed is not None and eager.graphed is None
    with torch.no_grad():
        for batch in (1, 8, 1):  # a new shape captures its own graph; a seen one replays
            x = torch.randn(batch, 3, 32, 32, device="cuda")
            first = graphed(x)
            torch.testing.assert_close(first, eager(x), rtol=1e-4, atol=1e-4)
            kept = first.clone()
            graphed(torch.randn_like(x))  # the next replay must not overwrite what was returned
            torch.testing.assert_close(first, kept)
    assert graphed.graphed.shapes == [(1, 3, 32, 32), (8, 3, 32, 32)]
    with pytest.raises(ValueError, match="takes inputs on a CUDA device, got one on cpu"):
        graphed(torch.randn(1, 3, 32, 32))
