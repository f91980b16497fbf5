"""The fp16 loss-scaling path of the training step, on CPU: scale, unscale before clipping, skip
an overflowing step and back off, grow, and resume the scaler's state.

CUDA runs this path for amp=fp16. Here the step is driven with an enabled ``GradScaler("cpu")``
and fp16 autocast on a tiny MLP: CPU fp16 convolutions are emulated and far too slow."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from senet.train import (
    Trainer,
    restore_training_state,
    train_one_epoch,
    train_step,
    training_state,
)

CPU = torch.device("cpu")


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4))


def _batches(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(1)
    return [
        (torch.randn(8, 6, generator=gen), torch.randint(0, 4, (8,), generator=gen))
        for _ in range(n)
    ]


def _fp16_step(model, optimizer, scaler, batch, **step_kwargs) -> None:
    """One training step with an fp16 forward, as amp=fp16 runs it on CUDA."""
    x, y = batch
    with torch.autocast("cpu", dtype=torch.float16):
        loss = nn.functional.cross_entropy(model(x), y)
    train_step(model, loss, optimizer, scaler=scaler, **step_kwargs)


def _vector(model: nn.Module) -> torch.Tensor:
    return nn.utils.parameters_to_vector(model.parameters()).detach().clone()


def test_clipping_bounds_the_true_gradient_not_the_scaled_one():
    # SGD at lr 1 moves by the clipped gradient: a step of norm grad_clip exactly. Clipping the
    # scaled gradient (2^12 times too large) instead would give a step 2^12 times too short.
    model = _mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    reference = copy.deepcopy(model)
    before = _vector(model)
    _fp16_step(model, optimizer, scaler, _batches(1)[0], grad_clip=1e-3)
    step = _vector(model) - before
    assert step.norm().item() == pytest.approx(1e-3, rel=1e-3)
    # Its direction is that of the unscaled fp16 step.
    _fp16_step(reference, torch.optim.SGD(reference.parameters(), lr=1.0), None, _batches(1)[0])
    plain = _vector(reference) - before
    assert nn.functional.cosine_similarity(step, plain, dim=0).item() > 0.999


def test_an_overflowing_step_is_skipped_and_the_scale_backs_off_then_grows():
    model = _mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    # 2^24 times a logit gradient of ~0.1 overflows fp16 (max 65504) in the backward pass.
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**24, growth_interval=2)
    batches = _batches(3)
    before = _vector(model)
    _fp16_step(model, optimizer, scaler, batches[0])
    assert torch.equal(_vector(model), before)  # skipped: no NaN reached the weights
    assert scaler.get_scale() == 2.0**23
    scaler.update(2.0**8)  # a scale that fits fp16
    for batch in batches[1:]:
        moved = _vector(model)
        _fp16_step(model, optimizer, scaler, batch)
        assert not torch.equal(_vector(model), moved) and torch.isfinite(_vector(model)).all()
    assert scaler.get_scale() == 2.0**9  # two good steps in a row: the scale doubles


def test_the_trainer_hands_its_scaler_to_every_step():
    # amp=fp16 is CUDA's; an enabled scaler with amp=none still takes the scaled path.
    model = _mlp()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**4, growth_interval=2)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    trainer = Trainer(model, optimizer, nn.CrossEntropyLoss(), CPU, scaler=scaler, grad_clip=1e-3)
    before = _vector(model)
    train_one_epoch(trainer, _batches(1))
    assert (_vector(model) - before).norm().item() == pytest.approx(1e-3, rel=1e-3)
    train_one_epoch(trainer, _batches(3))
    assert scaler.get_scale() == 2.0**6  # four scaled steps, growth every second one


def _objects(model: nn.Module) -> dict:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return {
        "optimizer": optimizer,
        "scheduler": torch.optim.lr_scheduler.StepLR(optimizer, step_size=3),
        "scaler": torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=3),
        "ema": None,
    }


def _train(model: nn.Module, objects: dict, batches) -> None:
    for batch in batches:
        _fp16_step(
            model, objects["optimizer"], objects["scaler"], batch, scheduler=objects["scheduler"]
        )


def test_a_resumed_run_continues_with_the_scalers_state(tmp_path):
    batches = _batches(6)
    full = _mlp()
    full_objects = _objects(full)
    _train(full, full_objects, batches)

    model = _mlp()
    objects = _objects(model)
    _train(model, objects, batches[:4])  # scale grew once (after step 3), one step since
    assert objects["scaler"].state_dict()["_growth_tracker"] == 1
    state = training_state(
        model=model, **objects, epoch=0, step=4, rng={}, config={}, history=[], best={}
    )
    torch.save(state, tmp_path / "state.pt")
    state = torch.load(tmp_path / "state.pt", weights_only=True)

    resumed = _mlp()
    resumed_objects = _objects(resumed)
    resumed_objects["scaler"] = torch.amp.GradScaler("cpu")  # the defaults: 2^16, no growth yet
    restore_training_state(state, model=resumed, **resumed_objects)
    _train(resumed, resumed_objects, batches[4:])
    assert resumed_objects["scaler"].state_dict() == full_objects["scaler"].state_dict()
    assert resumed_objects["scaler"].get_scale() == 2.0**12  # grew after steps 3 and 6
    assert torch.equal(_vector(resumed), _vector(full))
