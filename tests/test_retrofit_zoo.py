"""Retrofitting torchvision's ResNet-50 gives exactly senet's SE-ResNet-50 (torchvision layout)."""

import torch
import torchvision

import senet
from senet.profiling.counter import profile


def test_retrofitted_resnet50_is_se_resnet50():
    base = torchvision.models.resnet50(weights=None).eval()
    report = senet.retrofit(base, "se", strategy="standard")
    zoo = senet.create_model("se_resnet50", stride_in_1x1=False, stem_pool="torch").eval()

    assert report.params == sum(p.numel() for p in zoo.parameters()) == 28_088_024
    retrofitted, reference = profile(base), profile(zoo)
    assert (retrofitted.params, retrofitted.macs) == (reference.params, reference.macs)
    assert report.base_macs + report.added_macs == reference.macs

    # Their weights are interchangeable: the retrofitted model's checkpoint (torchvision key
    # layout, SE under .attn) loads strictly into the zoo model and computes the same function.
    fresh = senet.create_model("se_resnet50", stride_in_1x1=False, stem_pool="torch").eval()
    senet.load_weights(fresh, base.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(fresh(x), base(x), rtol=0, atol=1e-5)
