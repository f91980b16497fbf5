"""Why retrofit gives a unit a one-off subclass of its own class: the four properties it keeps.

A retrofitted unit stays an instance of the user's class, keeps the user's methods and every
original parameter name, and the whole model pickles (and deep-copies) with its new forward.
Each property is checked for both ways attention goes in: an output patch (post) and a rewritten
forward (standard, inside the residual branch).
"""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch
from torch import nn

import senet


class UserBlock(nn.Module):
    """A residual block as a user writes it, with a method of its own."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(out)))

    def width(self) -> int:
        return self.channels * 2


class UserNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.blocks = nn.Sequential(UserBlock(16), UserBlock(16))
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.head(x.mean((2, 3)))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x)).mean((2, 3))


@pytest.fixture(params=["standard", "post"], ids=["rewritten forward", "output patch"])
def retrofitted(request):
    torch.manual_seed(0)
    base = UserNet().eval()
    model = copy.deepcopy(base)
    report = senet.retrofit(model, "se", strategy=request.param, reduction=4, input_size=16)
    assert len(report.sites) == 2
    return base, model.eval()


def test_the_unit_stays_an_instance_of_the_users_class(retrofitted):
    _, model = retrofitted
    for block in model.blocks:
        assert isinstance(block, UserBlock)
        assert type(block) is not UserBlock  # a one-off subclass carries the new forward
        assert isinstance(block.attn, nn.Module)


def test_the_users_methods_still_work(retrofitted):
    _, model = retrofitted
    assert [block.width() for block in model.blocks] == [32, 32]
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model.embed(x), model.blocks(model.stem(x)).mean((2, 3)))


def test_original_parameter_names_are_kept(retrofitted):
    base, model = retrofitted
    before, after = base.state_dict(), model.state_dict()
    assert before.keys() <= after.keys()
    for key, value in before.items():
        assert torch.equal(after[key], value), key
    assert all(".attn." in key for key in after.keys() - before.keys())
    # A base state dict still loads (the retrofit's new keys keep their own values).
    fresh = UserNet().state_dict()
    missing, unexpected = model.load_state_dict(fresh, strict=False)
    assert not unexpected and all(".attn." in key for key in missing)


def test_the_model_pickles_and_copies_with_its_new_forward(retrofitted):
    _, model = retrofitted
    x = torch.randn(2, 3, 16, 16)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    for restored in (loaded, pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert all(isinstance(block, UserBlock) for block in restored.blocks)
        assert all(hasattr(block, "attn") for block in restored.blocks)
        with torch.no_grad():
            torch.testing.assert_close(restored(x), model(x))
