"""senet.optimize_for_inference: BN folded, channels_last, fast dtype; same function, clear errors."""

import copy

import pytest
import torch
import torchvision
from torch import nn

import senet
from senet.models.inference import InferenceModel, conv_bn_pairs

timm = pytest.importorskip("timm", reason="timm is not installed (pip install 'senet[test]')")


def _close_logits(fast_out, ref, *, bf16):
    assert fast_out.dtype == torch.float32
    tol = 0.05 * ref.abs().max().item() if bf16 else 1e-4 * max(ref.abs().max().item(), 1)
    torch.testing.assert_close(fast_out, ref, rtol=0, atol=tol)


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_senet_model_folds_every_conv_bn_pair_and_keeps_its_function(dtype):
    model = senet.create_model("se_resnet20_cifar", in_chans=1).eval()
    for m in model.modules():  # non-trivial BN statistics, so a wrong fold shows
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(m.weight, 0.5, 1.5), nn.init.uniform_(m.bias, -0.2, 0.2)
    before = copy.deepcopy(model.state_dict())
    x = torch.randn(4, 1, 28, 28)
    ref = model(x)
    fast = senet.optimize_for_inference(model, dtype=dtype, input_size=(1, 28, 28))
    assert isinstance(fast, InferenceModel)
    # ResNet-20: the stem plus two conv-BN pairs in each of 9 blocks (option-A shortcuts: no conv)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in fast.modules()) == 0
    assert sum(isinstance(m, nn.Identity) for m in fast.modules()) >= 19
    convs = [
        m for m in fast.model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)
    ]
    assert len(convs) == 19 and all(c.bias is not None for c in convs)
    assert next(fast.parameters()).dtype == (torch.float32 if dtype == "fp32" else torch.bfloat16)
    with torch.no_grad():
        _close_logits(fast(x), ref, bf16=dtype == "bf16")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # untouched


def test_retrofitted_torchvision_and_timm_models():
    for base in (torchvision.models.resnet18(), timm.create_model("resnet18")):
        senet.retrofit(base, "se", input_size=(3, 64, 64))
        base.eval()
        x = torch.randn(2, 3, 64, 64)
        ref = base(x)
        pairs = conv_bn_pairs(base, x)
        assert len(pairs) == 20  # stem, 8 blocks x 2, 3 projection shortcuts
        fast = senet.optimize_for_inference(base, dtype="fp32", input_size=(3, 64, 64))
        with torch.no_grad():
            _close_logits(fast(x), ref, bf16=False)


def test_training_flag_of_the_original_is_kept():
    model = senet.create_model("resnet20_cifar")
    model.train()
    senet.optimize_for_inference(model, input_size=(3, 32, 32))
    assert model.training and all(m.training for m in model.modules())


class _ConvOutputUsedTwice(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y  # folding the BN into conv would change the second use


def test_a_fold_that_changes_the_function_is_refused():
    model = _ConvOutputUsedTwice().eval()
    model.bn.running_mean.fill_(1.0)
    with pytest.raises(
        RuntimeError, match=r"folding BatchNorm changed the model's output.*fold_bn=False"
    ):
        senet.optimize_for_inference(model, input_size=(3, 8, 8))
    fast = senet.optimize_for_inference(model, input_size=(3, 8, 8), fold_bn=False, dtype="fp32")
    x = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(fast(x), model(x))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dtype": "int8"}, "unknown dtype 'int8'; expected one of auto, fp32, bf16, fp16"),
        ({"dtype": "fp16"}, "dtype='fp16' needs CUDA; on CPU use 'bf16'"),
        ({"input_size": (28, 28)}, r"input_size must be \(C, H, W\) of positive ints"),
        ({"cuda_graph": True}, r"cuda_graph=True needs the model on a CUDA device, it is on cpu"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        senet.optimize_for_inference(senet.create_model("resnet20_cifar"), **kwargs)


def test_cpu_models_are_not_graphed_by_default():
    fast = senet.optimize_for_inference(senet.create_model("resnet20_cifar"), input_size=(3, 8, 8))
    assert fast.graphed is None and "cuda_graph" not in repr(fast)


# --- dtype="auto": timed at the example's batch, never read from CPU flags -------------------


def test_auto_times_the_dtypes_at_the_examples_batch_and_caches_them(monkeypatch):
    from senet.models import precision

    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: True)
    model = senet.create_model("resnet20_cifar", in_chans=1).eval()
    x = torch.randn(4, 1, 16, 16)
    fast = senet.optimize_for_inference(model, x)
    record = fast.fast_path
    assert record["source"] == "measured" and record["batch"] == 4
    assert [t["name"] for t in record["timings"]] == ["fp32", "bf16"]
    assert fast.dtype == {"fp32": torch.float32, "bf16": torch.bfloat16}[record["dtype"]]
    assert any(line.strip().startswith("fp32") for line in record["table"])
    assert senet.optimize_for_inference(model, x).fast_path["source"] == "cached"
    assert senet.optimize_for_inference(model, x[:2]).fast_path["source"] == "measured"


@pytest.mark.parametrize(("bf16_ms", "expected"), [(50.0, torch.float32), (5.0, torch.bfloat16)])
def test_auto_keeps_the_faster_dtype_even_where_the_cpu_reports_bf16(
    monkeypatch, bf16_ms, expected
):
    # Issue 39's Xeon reported AVX512-BF16 and ran se_resnet50 slower in bf16 at batch 1 and 8.
    from senet.models import inference_dtype, precision
    from senet.models.race import RaceResult, Timing

    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: True)
    timed = RaceResult([Timing("fp32", "timed", 0.01), Timing("bf16", "timed", bf16_ms / 1e3)])
    monkeypatch.setattr(inference_dtype, "race", lambda candidates, **kwargs: timed)
    fast = senet.optimize_for_inference(
        senet.create_model("resnet20_cifar"), torch.randn(8, 3, 8, 8)
    )
    assert fast.dtype == expected


def test_when_timing_fails_auto_falls_back_to_fp32_and_warns(monkeypatch):
    from senet.models import inference_dtype, precision

    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: True)

    def broken(candidates, **kwargs):
        raise OSError("clock unavailable")

    monkeypatch.setattr(inference_dtype, "race", broken)
    with pytest.warns(UserWarning, match=r"timing the dtypes failed \(OSError: clock unavailable"):
        fast = senet.optimize_for_inference(senet.create_model("resnet20_cifar"))
    assert fast.dtype == torch.float32 and fast.fast_path["source"] == "fallback"


def test_every_dtype_failing_is_an_error_naming_each(monkeypatch):
    from senet.models import inference_dtype, precision
    from senet.models.race import NoCandidateRan, Timing

    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: True)
    failed = [Timing("fp32", "failed", note="E: a"), Timing("bf16", "failed", note="E: b")]

    def none_ran(candidates, **kwargs):
        raise NoCandidateRan(failed)

    monkeypatch.setattr(inference_dtype, "race", none_ran)
    with pytest.raises(
        RuntimeError, match=r"no candidate mode could run a step \(fp32: E: a; bf16"
    ):
        senet.optimize_for_inference(senet.create_model("resnet20_cifar"))


def test_channels_last_on_an_input_that_is_not_4d_is_refused_by_name():
    model = nn.Sequential(nn.Conv1d(3, 4, 3), nn.BatchNorm1d(4), nn.Flatten(), nn.LazyLinear(2))
    signal = torch.randn(2, 3, 16)
    model(signal)  # the lazy layer takes its shape
    with pytest.raises(ValueError, match=r"channels_last=True needs 4-D \(N, C, H, W\) input"):
        senet.optimize_for_inference(model.eval(), signal)
    fast = senet.optimize_for_inference(model.eval(), signal, channels_last=False, dtype="fp32")
    torch.testing.assert_close(fast(signal), model(signal))


def test_example_input_and_input_size_together_are_refused():
    with pytest.raises(ValueError, match="pass example_input or input_size, not both"):
        senet.optimize_for_inference(
            senet.create_model("resnet20_cifar"), torch.randn(1, 3, 8, 8), input_size=(3, 8, 8)
        )
