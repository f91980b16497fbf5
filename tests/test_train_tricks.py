"""Each training trick has a test of its effect, with numbers worked out by hand."""

from __future__ import annotations

import csv
import math

import pytest
import torch
import torch.nn.functional as F
from _tiny_models import QUICK, TinyNet, tiny_models_registered
from torch import nn

import senet
from senet.data import create_dataset
from senet.train import (
    LRSchedule,
    OptimConfig,
    ScheduleConfig,
    Trainer,
    batchnorm_modules,
    create_ema,
    create_optimizer,
    create_scheduler,
    load_config,
    param_groups,
    read_weights,
    scaled_lr,
    train,
    train_one_epoch,
)


def run_epoch(model, batches, opt, loss_fn, **kwargs):
    """``train_one_epoch`` on CPU; ``kwargs`` go to the Trainer or to the epoch, by name."""
    epoch_kwargs = {
        k: kwargs.pop(k) for k in ("freeze_bn", "sync_every", "first_step") if k in kwargs
    }
    trainer = Trainer(model, opt, loss_fn, torch.device("cpu"), **kwargs)
    return train_one_epoch(trainer, batches, **epoch_kwargs)


def _batches(n: int = 4, size: int = 16, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(size, 3, 16, 16, generator=gen), torch.randint(0, 10, (size,), generator=gen))
        for _ in range(n)
    ]


# --- learning rate -----------------------------------------------------------------------------


def test_linear_scaling_rule_matches_the_paper():
    # Paper: LR 0.6 at batch 1024, i.e. 0.15 per 256 images.
    assert scaled_lr(0.6, 1024, 1024) == pytest.approx(0.6)
    assert scaled_lr(0.6, 256, 1024) == pytest.approx(0.15)
    assert scaled_lr(0.1, 512, 256) == pytest.approx(0.2)
    assert scaled_lr(0.1, 512, None) == 0.1


def test_step_schedule_divides_by_ten_every_30_epochs():
    s = LRSchedule("step", steps_per_epoch=10, epochs=100, step_size=30, gamma=0.1)
    factors = {e: s(e * 10) for e in (0, 29, 30, 59, 60, 90, 99)}
    assert factors == pytest.approx({0: 1, 29: 1, 30: 0.1, 59: 0.1, 60: 0.01, 90: 1e-3, 99: 1e-3})
    assert s(299) == 1 and s(300) == pytest.approx(0.1)  # the drop is at the epoch boundary


def test_multistep_schedule():
    s = LRSchedule("multistep", steps_per_epoch=5, epochs=164, milestones=(82, 123), gamma=0.1)
    assert [s(e * 5) for e in (0, 81, 82, 122, 123, 163)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01]
    )


def test_linear_warmup_then_schedule():
    s = LRSchedule(
        "step", steps_per_epoch=4, epochs=10, step_size=5, warmup_epochs=2, warmup_start=0.1
    )
    # 8 warm-up steps rising from 0.1 by 0.9/8 per step, then 1.
    assert [s(i) for i in range(9)] == pytest.approx([0.1 + 0.9 * i / 8 for i in range(8)] + [1])
    assert s(20) == pytest.approx(0.1)


def test_cosine_schedule_endpoints_and_midpoint():
    s = LRSchedule("cosine", steps_per_epoch=10, epochs=10, min_lr_ratio=0.0)
    assert s(0) == pytest.approx(1.0)
    assert s(50) == pytest.approx(0.5)
    assert s(99) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.99)))  # floor after the end
    assert s(100) == pytest.approx(0.0, abs=1e-12)
    floor = LRSchedule("cosine", steps_per_epoch=10, epochs=10, min_lr_ratio=0.1)
    assert floor(100) == pytest.approx(0.1)
    assert floor(50) == pytest.approx(0.55)


def test_scheduler_drives_the_optimizer_per_step():
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.4)
    sched = create_scheduler(
        opt,
        ScheduleConfig(name="step", step_size=1, gamma=0.5, warmup_epochs=1, warmup_start=0.5),
        epochs=3,
        steps_per_epoch=2,
    )
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    # Warm-up 0.2 -> 0.3 over epoch 0; then 0.4 * 0.5^epoch.
    assert lrs == pytest.approx([0.2, 0.3, 0.2, 0.2, 0.1, 0.1])


# --- label smoothing ---------------------------------------------------------------------------


def test_label_smoothing_loss_value():
    # Logits (ln 1, ln 2, ln 1): softmax = (1/4, 1/2, 1/4); target class 1, epsilon 0.3, C = 3.
    # Smoothed target = (0.1, 0.8, 0.1): loss = -(0.1 ln 1/4 + 0.8 ln 1/2 + 0.1 ln 1/4).
    logits = torch.tensor([[0.0, math.log(2.0), 0.0]])
    expected = -(0.2 * math.log(0.25) + 0.8 * math.log(0.5))
    loss = nn.CrossEntropyLoss(label_smoothing=0.3)(logits, torch.tensor([1]))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert nn.CrossEntropyLoss()(logits, torch.tensor([1])).item() == pytest.approx(math.log(2))


def test_training_minimises_the_smoothed_loss(tmp_path):
    # One step of 64 images at a vanishing LR: the logged train loss is the smoothed loss of the
    # initial model on the whole training set, recomputed here from the formula.
    eps = 0.3
    overrides = [
        *QUICK, "data.synthetic_train=64", "data.batch_size=64", "data.augment=false",
        "optim.lr=1e-30", "train.epochs=1", f"train.label_smoothing={eps}", "log.plots=false",
        "log.tensorboard=false", f"output_dir={tmp_path}",
    ]  # fmt: skip
    with tiny_models_registered():
        train(load_config(None, overrides))
        model = senet.create_model("_test_tinynet", num_classes=4).train()
    state, _ = read_weights(tmp_path / "last.safetensors")
    model.load_state_dict(state)  # = the initial weights: a 1e-30 step changes no float32
    data, _ = create_dataset("synthetic", "train", synthetic_size=64, num_classes=4,
                             image_size=16, seed=0)  # fmt: skip
    x = torch.stack([data[i][0] for i in range(64)])
    y = torch.tensor([int(data[i][1]) for i in range(64)])
    with torch.no_grad():
        logp = model(x).log_softmax(1)  # BN in training mode: batch statistics, as in the step
    smoothed = (1 - eps) * -logp.gather(1, y[:, None]).mean() + eps * -logp.mean()
    with open(tmp_path / "metrics.csv") as f:
        logged = float(next(csv.DictReader(f))["train_loss"])
    assert logged == pytest.approx(smoothed.item(), abs=1e-5)
    # Near-uniform initial logits keep the two close, but 100x the tolerance apart.
    plain = -logp.gather(1, y[:, None]).mean().item()
    assert abs(logged - plain) > 1e-3


# --- no weight decay on BN and bias --------------------------------------------------------------


def test_no_wd_groups_hold_exactly_bn_params_and_biases():
    model = TinyNet()
    wd, no_wd = param_groups(model, 5e-4, no_wd_bn_bias=True)
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[id(p)] for p in no_wd["params"]) == [
        "fc.bias",
        "features.1.bias",
        "features.1.weight",
        "features.4.bias",
        "features.4.weight",
    ]
    assert sorted(names[id(p)] for p in wd["params"]) == [
        "fc.weight",
        "features.0.weight",
        "features.3.weight",
    ]
    assert (wd["weight_decay"], no_wd["weight_decay"]) == (5e-4, 0.0)
    (single,) = param_groups(model, 5e-4, no_wd_bn_bias=False)
    assert len(single["params"]) == len(list(model.parameters()))


def test_no_wd_effect_on_a_zero_gradient_step():
    model = TinyNet()
    opt = create_optimizer(
        model, OptimConfig(weight_decay=0.1, momentum=0.0, no_wd_bn_bias=True), lr=1.0
    )
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    after = dict(model.named_parameters())
    # Decayed: w <- w - lr * wd * w = 0.9 w. Not decayed: unchanged.
    torch.testing.assert_close(after["fc.weight"], 0.9 * before["fc.weight"])
    torch.testing.assert_close(after["features.1.weight"], before["features.1.weight"])
    torch.testing.assert_close(after["fc.bias"], before["fc.bias"])


# --- BatchNorm freezing -------------------------------------------------------------------------


def _bn_state(model):
    return {
        f"{i}.{k}": v.detach().clone()
        for i, m in enumerate(batchnorm_modules(model))
        for k, v in {**dict(m.named_parameters()), **dict(m.named_buffers())}.items()
    }


@pytest.mark.parametrize("frozen", [True, False])
def test_frozen_batchnorm_keeps_stats_and_affine_fixed(frozen):
    torch.manual_seed(0)
    model = TinyNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    bn_before = _bn_state(model)
    conv_before = model.features[0].weight.detach().clone()
    run_epoch(model, _batches(), opt, nn.CrossEntropyLoss(), freeze_bn=frozen)
    bn_after = _bn_state(model)
    changed = [k for k in bn_before if not torch.equal(bn_before[k], bn_after[k])]
    if frozen:
        assert changed == []  # running mean/var, batch count, weight and bias all bit-identical
        assert all(not m.training for m in batchnorm_modules(model))
    else:
        assert len(changed) == len(bn_before)  # every BN tensor moves in a normal epoch
    assert not torch.equal(conv_before, model.features[0].weight)  # the rest still trains


# --- EMA, clipping, mixed precision ---------------------------------------------------------------


def test_ema_update_formula():
    model = nn.Linear(3, 2)
    ema = create_ema(model, decay=0.9)
    ema.update_parameters(model)  # first update copies the weights
    w0 = model.weight.detach().clone()
    torch.testing.assert_close(ema.module.weight, w0)
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update_parameters(model)
    torch.testing.assert_close(ema.module.weight, 0.9 * w0 + 0.1 * (w0 + 1.0))
    with torch.no_grad():
        model.weight.mul_(2.0)
    ema.update_parameters(model)
    expected = 0.9 * (0.9 * w0 + 0.1 * (w0 + 1.0)) + 0.1 * (2 * (w0 + 1.0))
    torch.testing.assert_close(ema.module.weight, expected)


def test_ema_averages_batchnorm_statistics_by_the_same_formula():
    # BatchNorm first: its running statistics follow from the input batches alone.
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(3, momentum=0.25)
    model = nn.Sequential(bn, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 10))
    decay = 0.8
    ema = create_ema(model, decay=decay)
    batches = [(x * 2 + 1, y) for x, y in _batches(n=3)]  # statistics far from the initial 0, 1
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    run_epoch(model, batches, opt, nn.CrossEntropyLoss(), ema=ema)
    mean, var = torch.zeros(3), torch.ones(3)  # BatchNorm's initial running statistics
    ema_mean, ema_var = None, None
    for x, _ in batches:
        mean = 0.75 * mean + 0.25 * x.mean((0, 2, 3))
        var = 0.75 * var + 0.25 * x.var((0, 2, 3), unbiased=True)
        if ema_mean is None:  # the first update copies
            ema_mean, ema_var = mean, var
        else:
            ema_mean = decay * ema_mean + (1 - decay) * mean
            ema_var = decay * ema_var + (1 - decay) * var
    torch.testing.assert_close(bn.running_mean, mean)
    torch.testing.assert_close(bn.running_var, var)
    averaged = ema.module[0]
    torch.testing.assert_close(averaged.running_mean, ema_mean)
    torch.testing.assert_close(averaged.running_var, ema_var)
    assert not torch.allclose(ema_mean, mean, atol=1e-3)  # the average is not the model's own


def test_ema_is_updated_every_training_step():
    torch.manual_seed(0)
    model = TinyNet()
    ema = create_ema(model, decay=0.5)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    run_epoch(model, _batches(n=3), opt, nn.CrossEntropyLoss(), ema=ema)
    assert int(ema.n_averaged) == 3


def test_grad_clip_bounds_the_step():
    torch.manual_seed(0)
    model = TinyNet()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)  # no momentum, no decay: step = lr * grad
    before = torch.nn.utils.parameters_to_vector(model.parameters()).detach().clone()
    run_epoch(model, _batches(n=1), opt, nn.CrossEntropyLoss(), grad_clip=1e-3)
    after = torch.nn.utils.parameters_to_vector(model.parameters()).detach()
    assert (after - before).norm().item() == pytest.approx(1e-3, rel=1e-3)


def test_bf16_autocast_on_cpu_trains():
    torch.manual_seed(0)
    model = TinyNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = []
    model.fc.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    metrics = run_epoch(model, _batches(n=2), opt, nn.CrossEntropyLoss(), amp="bf16")
    assert seen == [torch.bfloat16, torch.bfloat16] and math.isfinite(metrics["loss"])
    assert model.fc.weight.dtype == torch.float32  # master weights stay fp32


def test_fp16_on_cpu_is_refused():
    with pytest.raises(ValueError, match="fp16' needs a CUDA device"):
        run_epoch(
            TinyNet(),
            _batches(n=1),
            torch.optim.SGD(TinyNet().parameters(), lr=0.1),
            nn.CrossEntropyLoss(),
            amp="fp16",
        )


def test_channels_last_gives_the_same_step():
    torch.manual_seed(0)
    a = TinyNet()
    b = TinyNet()
    b.load_state_dict(a.state_dict())
    b.to(memory_format=torch.channels_last)
    for model, cl in ((a, False), (b, True)):
        run_epoch(
            model,
            _batches(n=2),
            torch.optim.SGD(model.parameters(), lr=0.1),
            nn.CrossEntropyLoss(),
            channels_last=cl,
        )
    assert b.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(pa, pb, atol=1e-5, rtol=1e-4, msg=name)


def test_non_finite_loss_stops_with_the_step():
    model = TinyNet()
    batches = _batches(n=3)
    batches[1] = (torch.full_like(batches[1][0], float("nan")), batches[1][1])
    from senet.train import NonFiniteLossError

    with pytest.raises(NonFiniteLossError, match=r"at step 12 \(2 of the epoch's 3\)") as err:
        run_epoch(
            model,
            batches,
            torch.optim.SGD(model.parameters(), lr=0.1),
            nn.CrossEntropyLoss(),
            sync_every=3,  # found at the epoch's end, still named exactly
            first_step=10,
        )
    assert err.value.step == 12


def test_skip_nonfinite_skips_and_counts_the_batch():
    torch.manual_seed(0)
    batches = _batches(n=3)
    poisoned = list(batches)
    poisoned[1] = (torch.full_like(batches[1][0], float("nan")), batches[1][1])
    a, b = TinyNet(), TinyNet()
    b.load_state_dict(a.state_dict())
    opt_a = torch.optim.SGD(a.parameters(), lr=0.1)
    sched_a = torch.optim.lr_scheduler.LambdaLR(opt_a, lambda step: 1.0 / (1 + step))
    metrics = run_epoch(
        a,
        poisoned,
        opt_a,
        nn.CrossEntropyLoss(),
        scheduler=sched_a,
        skip_nonfinite=True,
    )
    assert metrics["skipped"] == 1 and metrics["images"] == 2 * len(batches[0][1])
    assert sched_a.last_epoch == 3  # the schedule still follows the data position
    # The same as training on batches 1 and 3 only, the third at the third step's LR.
    opt_b = torch.optim.SGD(b.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()
    b.train()
    for (x, y), lr in ((batches[0], 0.1), (batches[2], 0.1 / 3)):
        for group in opt_b.param_groups:
            group["lr"] = lr
        opt_b.zero_grad()
        loss_fn(b(x), y).backward()
        opt_b.step()
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(pa, pb, msg=name)
    assert all(torch.isfinite(p).all() for p in a.parameters())


def test_label_smoothing_is_what_the_loop_minimises():
    torch.manual_seed(0)
    model = TinyNet()
    x, y = _batches(n=1)[0]
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: measure the loss only
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    model.train()
    expected = F.cross_entropy(model(x), y, label_smoothing=0.1).item()
    metrics = run_epoch(model, [(x, y)], opt, loss_fn)
    assert metrics["loss"] == pytest.approx(expected, rel=1e-5)


def test_plain_progress_lines(capsys):
    from senet.train.progress import PlainProgress

    progress = PlainProgress(every=2)
    progress.start("epoch 1/1", 5)
    for step in range(1, 6):
        progress.update(step, 5, {"loss": 0.5, "top1": 80.0, "img_s": 1234.0, "lr": 0.1})
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[2] for line in lines] == ["2/5", "4/5", "5/5"]
    assert "loss 0.5000  top-1 80.00%  1,234 img/s  lr 0.1  eta 0:00:00" in lines[-1]


def test_stn_lr_mult_gives_the_spatial_transformer_its_own_rate_through_the_schedule():
    model = senet.with_stn(TinyNet())
    cfg = OptimConfig(lr=0.1, momentum=0.9, weight_decay=1e-4, no_wd_bn_bias=True, stn_lr_mult=0.1)
    opt = create_optimizer(model, cfg, lr=0.2)
    stn_ids = {id(p) for p in model.stn.parameters()}
    rates = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert opt.param_groups[0]["lr"] == 0.2  # group 0, the one the run log shows, is the CNN's
    assert [rates[i] for i in stn_ids] == pytest.approx([0.02] * len(stn_ids))
    assert {r for i, r in rates.items() if i not in stn_ids} == {0.2}
    assert len(rates) == len(list(model.parameters()))  # every parameter exactly once
    sched = create_scheduler(
        opt, ScheduleConfig(name="cosine", warmup_epochs=0), epochs=2, steps_per_epoch=2
    )
    opt.step()
    sched.step()
    lrs = [g["lr"] for g in opt.param_groups]
    assert lrs[-1] / lrs[0] == pytest.approx(0.1)  # the schedule scales both alike
    # Without it, one rate for all (and no extra groups).
    plain = create_optimizer(model, OptimConfig(lr=0.1, no_wd_bn_bias=True), lr=0.2)
    assert len(plain.param_groups) == 2


def test_stn_lr_mult_without_an_stn_is_a_config_error():
    with pytest.raises(senet.train.ConfigError, match=r"optim\.stn_lr_mult.*unless model\.stn"):
        load_config("fashion_mnist_se_resnet20", ["optim.stn_lr_mult=0.1"])
    with pytest.raises(senet.train.ConfigError, match=r"optim\.stn_lr_mult.*> 0"):
        load_config("fashion_mnist_rts_stn", ["optim.stn_lr_mult=0"])


# --- the attention modules' own weight decay -----------------------------------------------------


def test_attn_weight_decay_gives_exactly_the_attention_parameters_their_own_decay():
    model = senet.create_model("se_resnet20_cifar", num_classes=10)
    cfg = OptimConfig(weight_decay=5e-4, no_wd_bn_bias=True, attn_weight_decay=0.0)
    opt = create_optimizer(model, cfg, lr=0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decay = {names[id(p)]: g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert len(decay) == len(names)  # every parameter exactly once
    attn = {n for n in names.values() if ".attn." in n}
    assert len(attn) == 9 * 4  # 9 blocks x (fc1, fc2) x (weight, bias)
    assert {decay[n] for n in attn} == {0.0}
    assert decay["stem.conv1.weight"] == decay["layer3.2.conv2.weight"] == 5e-4
    assert decay["layer1.0.bn1.weight"] == 0.0  # no_wd_bn_bias still applies to the rest
    assert all(".attn." not in names[id(p)] for p in opt.param_groups[0]["params"])
    # A decay other than 0 for the attention, biases still free of it with no_wd_bn_bias.
    opt = create_optimizer(
        model, OptimConfig(weight_decay=5e-4, no_wd_bn_bias=True, attn_weight_decay=1e-5), lr=0.1
    )
    decay = {names[id(p)]: g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert decay["layer2.1.attn.fc1.weight"] == 1e-5 and decay["layer2.1.attn.fc1.bias"] == 0.0


def test_attn_weight_decay_zero_keeps_the_excitation_on_a_zero_gradient_step():
    model = senet.create_model("se_resnet20_cifar", num_classes=10)
    cfg = OptimConfig(weight_decay=0.1, momentum=0.0, attn_weight_decay=0.0)
    opt = create_optimizer(model, cfg, lr=1.0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    after = dict(model.named_parameters())
    assert torch.equal(after["layer1.0.attn.fc1.weight"], before["layer1.0.attn.fc1.weight"])
    assert torch.allclose(after["stem.conv1.weight"], 0.9 * before["stem.conv1.weight"])


def test_attn_weight_decay_errors_name_the_setting():
    with pytest.raises(
        ValueError, match=r"attn_weight_decay is set, but the model has no attention"
    ):
        create_optimizer(
            senet.create_model("resnet20_cifar"), OptimConfig(attn_weight_decay=0.0), lr=0.1
        )
    with pytest.raises(senet.train.ConfigError, match=r"optim\.attn_weight_decay.*>= 0 or null"):
        load_config("fashion_mnist_se_resnet20", ["optim.attn_weight_decay=-1"])
