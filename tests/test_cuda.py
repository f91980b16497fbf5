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


def _quick_run(folder, *extra: str):
    return train(load_config(None, [*QUICK, f"output_dir={folder}", "train.epochs=6", *extra]))


@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_training_on_cuda_with_amp_learns_as_cpu_fp32_does_and_loads_on_cpu(tmp_path, amp):
    with tiny_models_registered():
        # The same run in fp32 on the CPU is the reference: 6 epochs take it to 75-80% on
        # these 4 classes (25% is chance), and mixed precision on the GPU must come close.
        cpu = _quick_run(tmp_path / "cpu", "train.device=cpu")
        summary = _quick_run(
            tmp_path / "run", "train.device=cuda", f"train.amp={amp}", "train.channels_last=true"
        )
    assert cpu["best_top1"] > 60, "the reference run did not learn: the comparison says nothing"
    assert summary["best_top1"] >= max(50.0, cpu["best_top1"] - 15)
    state, meta = read_weights(tmp_path / "run" / "last.safetensors")
    assert all(t.device.type == "cpu" and torch.isfinite(t).all() for t in state.values())
    assert meta["model"] == "_test_tinynet"
    _, ckpt = CheckpointDir(tmp_path / "run" / "checkpoints").newest_valid()
    assert ckpt["epoch"] == 6
    if amp == "fp16":
        assert ckpt["scaler"], "fp16 runs keep the grad scaler's state for resuming"


def test_auto_on_cuda_times_the_gpu_candidates_and_records_the_choice(tmp_path):
    from senet.models.precision import candidate_modes

    overrides = ["data.synthetic_train=6400", "data.batch_size=16", "train.epochs=2"]
    overrides += ["train.device=cuda", "train.amp=auto", "train.channels_last=auto"]
    with tiny_models_registered():
        summary = train(load_config(None, [*QUICK, f"output_dir={tmp_path}", *overrides]))
    fast = summary.fast_path
    assert fast["source"] == "measured"  # 800 steps: long enough to time 4 candidates
    names = [row["name"] for row in fast["timings"]["_test_tinynet"]]
    assert names == [m.label for m in candidate_modes("cuda")] and "fp16 channels_last" in names
    saved = load_config(tmp_path / "config.yaml").train
    assert (saved.amp, saved.channels_last) == (fast["amp"], fast["channels_last"])


def test_optimize_for_inference_auto_times_gpu_dtypes_with_cuda_graphs():
    model = senet.create_model("se_resnet20_cifar", num_classes=10).eval().cuda()
    x = torch.randn(32, 3, 32, 32, device="cuda")
    fast = senet.optimize_for_inference(model, x)
    assert [t["name"] for t in fast.fast_path["timings"]][-1] == "fp16"
    assert fast.graphed is not None and fast.fast_path["dtype"] in ("fp32", "bf16", "fp16")
    with torch.no_grad():
        out, ref = fast(x), model(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=0, atol=0.05 * ref.abs().max().item())


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
