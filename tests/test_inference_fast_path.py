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
