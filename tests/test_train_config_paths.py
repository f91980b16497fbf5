"""Config settings no other test reaches: AdamW with its betas, Nesterov SGD, the constant
schedule, train.compile, train.eval_every and data.eval_batch_size, each against a hand-computed
result or a run without the setting."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from _tiny_models import QUICK, tiny_models_registered
from torch import nn

from senet.train import (
    OptimConfig,
    ScheduleConfig,
    create_optimizer,
    create_scheduler,
    load_config,
    read_weights,
    train,
)


def _two_steps(cfg: OptimConfig, lr: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One weight (1x1 conv, no bias) after two steps with the gradients g1 then g2."""
    model = nn.Conv2d(1, 1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    opt = create_optimizer(model, cfg, lr)
    g1, g2 = torch.tensor(0.5), torch.tensor(-2.0)
    for g in (g1, g2):
        model.weight.grad = torch.full_like(model.weight, float(g))
        opt.step()
    return model.weight.detach().flatten()[0], g1, g2


def test_adamw_uses_its_betas_and_decoupled_decay():
    b1, b2, lr, wd, eps = 0.5, 0.75, 0.1, 0.2, 1e-8
    cfg = OptimConfig(name="adamw", betas=[b1, b2], weight_decay=wd)
    got, g1, g2 = _two_steps(cfg, lr)
    # Loshchilov & Hutter: p <- p (1 - lr wd) - lr m_hat / (sqrt(v_hat) + eps), bias-corrected.
    p, m, v = 1.0, 0.0, 0.0
    for t, g in enumerate((float(g1), float(g2)), start=1):
        p *= 1 - lr * wd
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        p -= lr * (m / (1 - b1**t)) / (math.sqrt(v / (1 - b2**t)) + eps)
    assert got.item() == pytest.approx(p, rel=1e-6)
    # With the default betas the second step differs: the betas are used, not ignored.
    default, _, _ = _two_steps(OptimConfig(name="adamw", weight_decay=wd), lr)
    assert abs(default.item() - p) > 1e-3


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_with_and_without_nesterov(nesterov):
    mu, lr, wd = 0.9, 0.1, 0.0
    got, g1, g2 = _two_steps(OptimConfig(momentum=mu, nesterov=nesterov, weight_decay=wd), lr)
    # buf = mu buf + g; the step is lr * buf, or lr * (g + mu buf) with Nesterov (Sutskever).
    p, buf = 1.0, 0.0
    for g in (float(g1), float(g2)):
        buf = mu * buf + g
        p -= lr * (g + mu * buf if nesterov else buf)
    assert got.item() == pytest.approx(p, rel=1e-6)


def test_constant_schedule_after_warmup():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.4)
    cfg = ScheduleConfig(name="constant", warmup_epochs=1, warmup_start=0.25, gamma=0.1)
    sched = create_scheduler(opt, cfg, epochs=3, steps_per_epoch=4)
    lrs = []
    for _ in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    # Linear warm-up 0.1 -> 0.4 over the first epoch's 4 steps, then 0.4 (gamma never applies).
    assert lrs == pytest.approx([0.1, 0.175, 0.25, 0.325] + [0.4] * 8)


# ---- through train() ---------------------------------------------------------------------------

BASE = [
    *QUICK,
    "log.tensorboard=false",
    "log.plots=false",
    "data.synthetic_train=64",
    "data.synthetic_val=63",
]


def _run(folder: Path, *extra: str) -> list[dict[str, str]]:
    with tiny_models_registered():
        train(load_config(None, [*BASE, f"output_dir={folder}", *extra]))
    with open(folder / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_eval_every_and_eval_batch_size(tmp_path, monkeypatch):
    loaders = []  # (images, batch size) of every DataLoader the run makes
    init = torch.utils.data.DataLoader.__init__

    def recording_init(self, dataset, *args, **kwargs):
        loaders.append((len(dataset), kwargs.get("batch_size")))
        init(self, dataset, *args, **kwargs)

    monkeypatch.setattr(torch.utils.data.DataLoader, "__init__", recording_init)
    rows = _run(tmp_path / "a", "train.epochs=3", "train.eval_every=2", "data.eval_batch_size=5")
    assert sorted(set(loaders)) == [(63, 5), (64, 32)]  # val in 5s, train in 32s
    monkeypatch.undo()
    # Validation at epoch 2 and, always, after the last epoch; none at epoch 1.
    assert [bool(r["val_top1"]) for r in rows] == [False, True, True]
    # Batches of 5 (63 = 12 x 5 + 3) give the per-image means of the default batches of 64.
    ref = _run(tmp_path / "b", "train.epochs=3")
    for key in ("val_loss", "val_top1", "val_top5"):
        assert float(rows[2][key]) == pytest.approx(float(ref[2][key]), rel=1e-5), key
    assert rows[1]["val_top1"] == ref[1]["val_top1"]
    top1 = float(rows[2]["val_top1"])
    assert round(top1 * 63 / 100) == pytest.approx(top1 * 63 / 100, abs=1e-6)  # whole images


@pytest.mark.slow
def test_compiled_training_matches_eager(tmp_path):
    from torch._dynamo.utils import counters

    _run(tmp_path / "eager", "train.epochs=1")
    counters.clear()
    _run(tmp_path / "compiled", "train.epochs=1", "train.compile=true")
    assert counters["stats"]["unique_graphs"] >= 1  # dynamo did capture the model
    eager, _ = read_weights(tmp_path / "eager" / "last.safetensors")
    compiled, meta = read_weights(tmp_path / "compiled" / "last.safetensors")
    assert compiled.keys() == eager.keys()  # compiling in place keeps the state_dict keys
    for key in eager:
        torch.testing.assert_close(compiled[key], eager[key], rtol=1e-4, atol=1e-5, msg=key)
    assert meta["model"] == "_test_tinynet"
