"""A compiled run keeps what an eager run has: seeded determinism, an exact resume after a stop
mid-epoch, and the gate hooks `senet analyze` reads. The one test of the suite that compiles
(per residual stage, the variant `train.compile: auto` may pick)."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from senet.analysis import collect_gates
from senet.layers import create_attn
from senet.models import _registry
from senet.models.compiling import compile_in_place, residual_stages
from senet.train import load_config, read_weights, train
from senet.train.stop_signal import StopSignal, TrainingStopped


class SEBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.se = create_attn("se", channels, reduction=2)

    def forward(self, x):
        return torch.relu(x + self.se(self.bn(self.conv(x))))


class StagedSE(nn.Module):
    """A stem, two residual stages with an SE block each, a head."""

    def __init__(self, *, num_classes: int | None = 10, in_chans: int = 3) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_chans, 8, 3, padding=1)
        self.layer1 = nn.Sequential(SEBlock(8))
        self.layer2 = nn.Sequential(SEBlock(8))
        self.fc = nn.Linear(8, num_classes or 10)

    def forward(self, x):
        return self.fc(self.layer2(self.layer1(self.stem(x))).mean((2, 3)))


RUN = [
    "model.name=_test_staged_se",
    "data.name=synthetic",
    "data.num_classes=4",
    "data.image_size=8",
    "data.synthetic_train=128",  # 8 steps an epoch
    "data.synthetic_val=32",
    "data.batch_size=16",
    "optim.lr=0.2",
    "train.epochs=2",
    "train.compile=stages",
    "train.deterministic=true",
    "train.checkpoint_every_steps=3",
    "log.progress=none",
    "log.tensorboard=false",
    "log.plots=false",
]


@pytest.mark.slow
def test_a_compiled_run_resumes_exactly_and_its_gates_can_be_read(tmp_path, monkeypatch):
    monkeypatch.setitem(_registry._MODELS, "_test_staged_se", StagedSE)
    assert len(residual_stages(StagedSE())) == 2
    from senet.train import job

    compiled_models = []

    def compile_and_keep(model, how):
        compile_in_place(model, how)
        compiled_models.append(model)

    monkeypatch.setattr(job, "compile_in_place", compile_and_keep)
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    summary = train(load_config(None, [*RUN, f"output_dir={whole}"]))
    assert summary.fast_path["label"] == "fp32 NCHW, compiled per stage"
    # What trained was compiled, stage by stage, in place (nn.Module.compile).
    assert all(s._compiled_call_impl is not None for s in residual_stages(compiled_models[0]))
    # The same run stopped mid-epoch 2 (as on SIGTERM: its step is checkpointed), then resumed.
    asked = itertools.count(1)
    monkeypatch.setattr(StopSignal, "requested", lambda self, world, device: next(asked) == 11)
    with pytest.raises(TrainingStopped, match="after global step 11"):
        train(load_config(None, [*RUN, f"output_dir={stopped}"]))
    monkeypatch.setattr(StopSignal, "requested", lambda self, world, device: False)
    train(load_config(None, [*RUN, f"output_dir={stopped}"]), resume="auto")
    expected, _ = read_weights(whole / "last.safetensors")
    resumed, _ = read_weights(stopped / "last.safetensors")
    assert expected.keys() == resumed.keys()  # compiled in place: no _orig_mod. prefixes
    for key in expected:
        assert torch.equal(expected[key], resumed[key]), key
    # The gate hooks `senet analyze` reads fire inside compiled stages, with the eager values.
    model = StagedSE(num_classes=4)
    model.load_state_dict(expected)
    batches = [(torch.randn(16, 3, 8, 8), torch.arange(16) % 4) for _ in range(2)]
    eager = collect_gates(model, batches, num_classes=4)
    compile_in_place(model, "stages")
    compiled = collect_gates(model, batches, num_classes=4)
    assert [b.name for b in compiled.blocks] == ["layer1.0.se", "layer2.0.se"]
    for a, b in zip(eager.blocks, compiled.blocks, strict=True):
        torch.testing.assert_close(a.mean(), b.mean(), rtol=1e-4, atol=1e-5)
