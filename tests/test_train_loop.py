"""train_one_epoch learns; evaluate counts exactly; fit is reproducible (resuming: see
test_train_run and test_train_resume)."""

from __future__ import annotations

import math

import pytest
import torch
from _tiny_models import TinyNet
from torch import nn

from senet.data import create_dataset, create_loader
from senet.train import (
    Trainer,
    config_from_dict,
    create_optimizer,
    create_scheduler,
    evaluate_loader,
    fit,
    topk_correct,
    train_one_epoch,
)
from senet.train.progress import SilentProgress

CPU = torch.device("cpu")


class Lookup(nn.Module):
    """Returns row i of a fixed logit table for an input image filled with the value i."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("table", table)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[x.flatten(1)[:, 0].long()]


def test_evaluate_gives_exact_numbers():
    # Sample i ranks classes (i, i+1, ..., i+5) mod 6 with logits 10, 9, ..., 5; its true class
    # sits at rank r_i. Top-1 hits: r = 0 (4 of 8); top-5 hits: r < 5 (7 of 8).
    ranks = [0, 0, 0, 1, 4, 5, 0, 2]
    table = torch.zeros(8, 6)
    targets = []
    for i, r in enumerate(ranks):
        for k in range(6):
            table[i, (i + k) % 6] = 10.0 - k
        targets.append((i + r) % 6)
    images = torch.arange(8, dtype=torch.float32).view(8, 1, 1, 1)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images, torch.tensor(targets)), batch_size=3
    )
    result = evaluate_loader(Lookup(table), loader, device=CPU, num_classes=6)
    assert result["top1"] == 50.0 and result["top5"] == 87.5 and result["images"] == 8
    # Cross-entropy_i = log(sum_k e^-k) + r_i.
    log_s = math.log(sum(math.exp(-k) for k in range(6)))
    assert result["loss"] == pytest.approx(log_s + sum(ranks) / 8, rel=1e-6)
    expected = torch.zeros(6, 6, dtype=torch.int64)
    for true, pred in [(0, 0), (1, 1), (2, 2), (4, 3), (2, 4), (4, 5), (0, 0), (3, 1)]:
        expected[true, pred] += 1
    assert torch.equal(result["confusion"], expected)
    per_class = result["per_class"]
    assert per_class[:5] == [100.0, 100.0, 50.0, 0.0, 0.0] and math.isnan(per_class[5])


class LeftRight(nn.Module):
    """Logits (left pixel, right pixel / 2, 0.6) of a 1x2 image: a mirror changes the answer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left, right = x[:, 0, 0, 0], x[:, 0, 0, 1]
        return torch.stack([left, right / 2, torch.full_like(left, 0.6)], dim=1)


def test_flip_tta_scores_the_mean_logits_of_each_image_and_its_mirror():
    pixels = torch.tensor([[1.0, 1.0], [0.0, 1.0], [0.0, 2.0], [2.0, 0.0]])
    targets = torch.tensor([0, 2, 0, 1])
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(pixels.view(4, 1, 1, 2), targets), batch_size=3
    )
    result = evaluate_loader(LeftRight(), loader, device=CPU, num_classes=3, flip=True)
    # Single view predicts 0, 2, 1, 0: two hits. Mean of the two views: (l+r)/2, (l+r)/4, 0.6,
    # i.e. 0, 2, 0, 0: three hits. The confusion matrix stays single-view.
    assert result["top1"] == 50.0 and result["flip_top1"] == 75.0
    assert result["top5"] == result["flip_top5"] == 100.0  # 3 classes: k is capped
    mean = torch.tensor([[1.0, 0.5, 0.6], [0.5, 0.25, 0.6], [1.0, 0.5, 0.6], [1.0, 0.5, 0.6]])
    assert result["flip_loss"] == pytest.approx(float(nn.functional.cross_entropy(mean, targets)))
    assert result["confusion"].diagonal().sum() == 2
    assert "flip_top1" not in evaluate_loader(LeftRight(), loader, device=CPU)


def test_topk_with_fewer_classes_than_k():
    logits = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert topk_correct(logits, torch.tensor([1, 1, 0]), (1, 5)) == [1, 3]


def _synthetic(split, size):
    ds, _ = create_dataset(
        "synthetic", split, size=size, num_classes=4, channels=3, image_size=16, seed=3
    )
    return ds


def test_few_steps_on_synthetic_data_reduce_the_loss():
    torch.manual_seed(0)
    train_set = _synthetic("train", 256)
    loader = create_loader(train_set, batch_size=32, train=True, seed=0)
    model = TinyNet(num_classes=4)
    before = evaluate_loader(model, loader, device=CPU)["loss"]
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(3):  # 24 steps
        train_one_epoch(Trainer(model, opt, nn.CrossEntropyLoss(), CPU), loader)
    after = evaluate_loader(model, loader, device=CPU)
    assert before > 1.3  # about ln 4 = 1.386 at random initialisation
    assert after["loss"] < 0.5 * before and after["top1"] > 80.0


def _fit_setup(epochs, seed=0):
    cfg = config_from_dict(
        {
            "train": {"epochs": epochs, "seed": seed, "ema": True, "ema_decay": 0.9},
            "optim": {"lr": 0.05, "lr_base_batch": None},
            "schedule": {"name": "cosine", "warmup_epochs": 1},
            "log": {"tensorboard": False},
        }
    )
    torch.manual_seed(seed)
    model = TinyNet(num_classes=4)
    train_loader = create_loader(_synthetic("train", 128), batch_size=32, train=True, seed=seed)
    val_loader = create_loader(_synthetic("val", 64), batch_size=64, train=False)
    opt = create_optimizer(model, cfg.optim, cfg.optim.lr)
    sched = create_scheduler(opt, cfg.schedule, epochs=epochs, steps_per_epoch=len(train_loader))
    from senet.train import create_ema

    objects = dict(
        optimizer=opt,
        scheduler=sched,
        scaler=torch.amp.GradScaler("cpu", enabled=False),
        ema=create_ema(model, 0.9),
        loss_fn=nn.CrossEntropyLoss(label_smoothing=0.1),
    )
    return cfg, model, train_loader, val_loader, objects


def _run_fit(epochs, seed=0):
    cfg, model, train_loader, val_loader, objects = _fit_setup(epochs, seed)
    result = fit(
        Trainer(model, device=CPU, **objects),
        train_loader,
        val_loader,
        config=cfg,
        progress=SilentProgress(),
    )
    return model, objects, result


def test_fit_is_reproducible_with_a_seed():
    a, _, ra = _run_fit(2)
    b, _, rb = _run_fit(2)
    for (name, ta), tb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(ta, tb), name
    timing = ("train_img_s", "epoch_seconds")
    strip = [{k: v for k, v in row.items() if k not in timing} for row in ra["history"]]
    assert strip == [{k: v for k, v in row.items() if k not in timing} for row in rb["history"]]
    assert len(strip) == 2 and ra["best_top1"] == rb["best_top1"]
    c, _, _ = _run_fit(2, seed=1)
    assert not torch.equal(a.fc.weight, c.fc.weight)
