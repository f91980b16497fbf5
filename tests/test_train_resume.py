"""Crash safety: a real SIGKILL mid-epoch and an exact resume; corrupt checkpoints; refusals;
failed writes; non-finite losses."""

from __future__ import annotations

import csv
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from _folder_holder import hold_run_folder
from _tiny_models import QUICK as TINY_RUN
from _tiny_models import TinyNet, tiny_models_registered

from senet.train import (
    CheckpointDir,
    CheckpointError,
    ConfigError,
    NonFiniteLossError,
    RunFolderBusy,
    find_resume_state,
    load_checkpoint,
    load_config,
    read_weights,
    train,
)

CLI = Path(__file__).resolve().parent / "_senet_cli.py"
TIMING = {"train_img_s", "epoch_seconds"}

# The tiny run of the other training tests, with EMA (resumed too) and no extra files.
QUICK = [
    *TINY_RUN,
    "train.ema=true",
    "train.ema_decay=0.9",
    "log.tensorboard=false",
    "log.plots=false",
]


@pytest.fixture(autouse=True, scope="module")
def _registered_tiny_models():
    with tiny_models_registered():
        yield


def _config(folder: Path, *extra: str):
    return load_config(None, [*QUICK, f"output_dir={folder}", *extra])


def _rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "metrics.csv") as f:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]


def _step(path: Path) -> int:
    return int(path.name.split("-")[1])


def _same_weights(a: Path, b: Path) -> None:
    wa, _ = read_weights(a)
    wb, _ = read_weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


# --- a real kill ---------------------------------------------------------------------------


def _kill_args(recipe: Path) -> list[str]:
    return [
        sys.executable,
        str(CLI),
        "train",
        str(recipe),
        *QUICK,
        # 64 steps per epoch of a wider net on 32x32 images: a few ms each, so the kill lands
        # well inside epoch 2 (it has 57 steps to go after the checkpoint that triggers it).
        "data.image_size=32",
        "data.synthetic_train=1024",
        "data.batch_size=16",
        "model.kwargs={width: 16}",
        "data.augment=true",
        "schedule.name=cosine",
        "train.epochs=2",
        "train.deterministic=true",
        "train.checkpoint_every_steps=7",
        "log.progress=plain",
    ]


KILL_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[list[str], Path]:
    """The kill tests' command line and the folder of the same run left uninterrupted."""
    root = tmp_path_factory.mktemp("uninterrupted")
    (root / "recipe.yaml").write_text("{}\n")
    args = _kill_args(root / "recipe.yaml")
    done = subprocess.run(
        [*args, f"output_dir={root / 'ref'}"], env=KILL_ENV, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return args, root / "ref"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_kill_mid_epoch_then_resume_auto_ends_like_the_uninterrupted_run(
    tmp_path, uninterrupted, sig
):
    # SIGKILL: resumed from the newest periodic checkpoint. SIGTERM (a scheduler's preemption):
    # the run finishes its step, checkpoints that step and exits 143, losing nothing.
    args, reference = uninterrupted
    run = tmp_path / "run"
    victim = subprocess.Popen(
        [*args, f"output_dir={run}"],
        env=KILL_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    folder = run / "checkpoints"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and victim.poll() is None:
        # The first checkpoint inside epoch 2 (global step 70 = epoch 2, step 6 of 64).
        if folder.is_dir() and any(p.name.startswith("step-00000070-") for p in folder.iterdir()):
            os.kill(victim.pid, sig)
            break
        time.sleep(0.002)
    code = victim.wait(timeout=60)
    stderr = victim.stderr.read().decode()
    newest = CheckpointDir(folder).paths()[-1]
    assert 64 < _step(newest) < 128, f"killed too late: newest checkpoint {newest.name}"
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL, stderr
    else:
        assert code == 128 + signal.SIGTERM, stderr
        assert f"stopped by a signal after global step {_step(newest)}: checkpoint {newest}" in (
            stderr
        )
    assert not (run / "summary.json").exists()

    resumed = subprocess.run(
        [*args, f"output_dir={run}", "--resume", "auto"],
        env=KILL_ENV,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from {newest}: epoch 2, step {_step(newest) - 64}/64" in resumed.stdout
    for name in ("last.safetensors", "best.safetensors", "ema.safetensors"):
        _same_weights(reference / name, run / name)
    assert _rows(run) == _rows(reference)  # train loss/top-1 of epoch 2 included


# --- corrupt checkpoints, refusals ---------------------------------------------------------


def test_corrupt_newest_checkpoints_are_reported_and_an_older_one_used(tmp_path, capsys):
    extra = ("train.epochs=2", "train.checkpoint_every_steps=4")
    train(_config(tmp_path / "a", *extra))
    run = tmp_path / "b"
    train(_config(run, *extra))
    ckpts = CheckpointDir(run / "checkpoints")
    assert [_step(p) for p in ckpts.paths()] == [8, 12, 16]
    step8, step12, step16 = ckpts.paths()
    data = step16.read_bytes()
    step16.write_bytes(data[: len(data) // 2])  # truncated: not a zip any more
    data = bytearray(step12.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: torch.load would not notice, the digest does
    step12.write_bytes(bytes(data))
    capsys.readouterr()

    train(_config(run, *extra), resume="auto")
    out = capsys.readouterr().out
    for bad in (step16, step12):
        assert f"checkpoint {bad} is corrupt (truncated or damaged): its SHA-256 does not" in out
    assert f"resuming from {step8}: epoch 2, step 0/8" in out
    assert (run / "checkpoints" / f"{step16.name}.corrupt").is_file()  # kept for inspection
    _same_weights(tmp_path / "a" / "last.safetensors", run / "last.safetensors")
    assert _rows(run) == _rows(tmp_path / "a")


def test_resume_auto_starts_fresh_without_checkpoints_and_needs_output_dir(tmp_path, capsys):
    summary = train(_config(tmp_path / "new", "train.epochs=1"), resume="auto")
    assert summary["epochs"] == 1
    assert "no checkpoint in" in capsys.readouterr().out
    with pytest.raises(ConfigError, match=r"--resume auto .* add output_dir=PATH"):
        train(load_config(None, [*QUICK, "train.epochs=1"]), resume="auto")
    with pytest.raises(ConfigError, match=r"cannot resume: checkpoint .* does not exist"):
        train(_config(tmp_path / "x", "train.epochs=1"), resume=tmp_path / "missing.pt")


def test_a_second_run_into_a_folder_a_live_process_trains_into_fails_and_writes_nothing(
    tmp_path,
):
    run = tmp_path / "run"
    train(_config(run, "train.epochs=1"))
    files = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    holder = hold_run_folder(run)
    try:
        with pytest.raises(RunFolderBusy, match=rf"another process \(pid {holder.pid} on "):
            train(_config(run, "train.epochs=1"), resume="auto")
        after = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
        assert {p: t for p, t in after.items() if p.name != ".senet-lock"} == {
            p: t for p, t in files.items() if p.name != ".senet-lock"
        }
    finally:
        holder.kill()  # a killed holder leaves no stale lock behind
        holder.wait()
    assert train(_config(run, "train.epochs=1"))["epochs"] == 1


def test_resume_with_another_model_or_global_batch_is_refused(tmp_path):
    run = tmp_path / "run"
    train(_config(run, "train.epochs=1"))
    with pytest.raises(ConfigError) as err:
        train(_config(run, "train.epochs=1", "model.kwargs={width: 4}"), resume="auto")
    assert "model.kwargs: {} -> {'width': 4}" in str(err.value)
    assert "start a new run" in str(err.value)
    with pytest.raises(ConfigError, match=r"global batch: 32 \(32 x 1 processes\) -> 16"):
        train(_config(run, "train.epochs=1", "data.batch_size=16"), resume="auto")
    # What only changes how the run is kept may differ.
    path, state = find_resume_state(run, _config(run, "train.epochs=1", "train.keep_checkpoints=5"))
    assert state["epoch"] == 1 and path.parent == run / "checkpoints"


# --- failed writes, rotation ----------------------------------------------------------------


def test_a_failed_checkpoint_write_leaves_the_previous_one_intact(tmp_path, monkeypatch):
    real_save = torch.save
    calls = []

    def disk_full_on_second_checkpoint(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and "optimizer" in obj:
            calls.append(f)
            if len(calls) == 2:
                real_save(obj, f, *args, **kwargs)  # a half-written file on a full disk
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", disk_full_on_second_checkpoint)
    run = tmp_path / "run"
    with pytest.raises(CheckpointError) as err:
        train(_config(run, "train.epochs=2"))
    message = str(err.value)
    assert "cannot write the checkpoint of step 16" in message and "No space left" in message
    assert "step-00000008-" in message and "is intact" in message and "--resume auto" in message
    files = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert len(files) == 1 and files[0].startswith("step-00000008-")  # no temporary file left
    assert load_checkpoint(run / "checkpoints" / files[0])["epoch"] == 1
    monkeypatch.setattr(torch, "save", real_save)
    summary = train(_config(run, "train.epochs=2"), resume="auto")
    assert [r["epoch"] for r in _rows(run)] == ["1", "2"] and summary["epochs"] == 2


def test_checkpoint_folder_keeps_the_newest_k_and_drops_a_left_timeline(tmp_path):
    ckpts = CheckpointDir(tmp_path, keep=2)
    for step in (3, 6, 9):
        ckpts.save({"step": step}, step=step)
    assert [_step(p) for p in ckpts.paths()] == [6, 9]
    (tmp_path / ".step-00000010.999.0badc0de.tmp").write_bytes(b"half a checkpoint")
    ckpts.save({"step": 7}, step=7)  # resumed from 6: the old step 9 belongs to another past
    assert [_step(p) for p in ckpts.paths()] == [6, 7]
    assert load_checkpoint(ckpts.paths()[-1])["step"] == 7
    assert sorted(p.name[:13] for p in tmp_path.iterdir()) == ["step-00000006", "step-00000007"]
    with pytest.raises(ValueError, match="keep must be >= 1"):
        CheckpointDir(tmp_path, keep=0)


# --- non-finite loss -----------------------------------------------------------------------


def _poison_training_forward(monkeypatch, at_call: int) -> None:
    """TinyNet returns NaN logits on its ``at_call``-th training forward pass."""
    real = TinyNet.forward
    calls = [0]

    def forward(self, x):
        out = real(self, x)
        if self.training:
            calls[0] += 1
            if calls[0] == at_call:
                out = out * float("nan")
        return out

    monkeypatch.setattr(TinyNet, "forward", forward)


def test_non_finite_loss_stops_with_the_last_good_checkpoint_then_resume_skips(
    tmp_path, monkeypatch
):
    run = tmp_path / "run"
    extra = ("train.epochs=2", "train.checkpoint_every_steps=4")
    _poison_training_forward(monkeypatch, at_call=10)  # global step 10: epoch 2, step 2
    with pytest.raises(NonFiniteLossError) as err:
        train(_config(run, *extra))
    message = str(err.value)
    assert "training loss is nan at step 10 (2 of the epoch's 8)" in message
    assert "the last good checkpoint" in message and "step-00000008-" in message
    assert err.value.step == 10
    newest = CheckpointDir(run / "checkpoints").paths()[-1]
    assert _step(newest) == 8 and load_checkpoint(newest)["epoch"] == 1  # digest checked too

    # Resumed (step 8) with skipping on: the same batch, the new process's 2nd forward pass.
    _poison_training_forward(monkeypatch, at_call=2)
    summary = train(_config(run, *extra, "train.skip_nonfinite=true"), resume="auto")
    assert summary["skipped_batches"] == 1
    assert [r["train_skipped"] for r in _rows(run)] == ["0", "1"]
    weights, _ = read_weights(run / "last.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_a_resumed_epoch_counts_the_time_before_the_stop(tmp_path, monkeypatch):
    # A run stopped mid-epoch and resumed in a later session reports its whole time: the
    # stopped epoch's seconds ride in the checkpoint (here made 1000 s to be unmistakable).
    run = tmp_path / "run"
    extra = ("train.epochs=2", "train.checkpoint_every_steps=3")
    _poison_training_forward(monkeypatch, at_call=11)  # epoch 2, step 3: after checkpoint 9
    with pytest.raises(NonFiniteLossError):
        train(_config(run, *extra))
    folder = CheckpointDir(run / "checkpoints")
    newest = folder.paths()[-1]
    state = load_checkpoint(newest)
    assert _step(newest) == 9 and state["totals"]["step"] == 1
    assert 0 < state["totals"]["seconds"] < 1000
    state["totals"]["seconds"] = 1000.0
    newest.unlink()
    folder.save(state, step=9)

    monkeypatch.undo()
    summary = train(_config(run, *extra), resume="auto")
    with open(run / "metrics.csv") as f:
        seconds = [float(row["epoch_seconds"]) for row in csv.DictReader(f)]
    assert seconds[0] < 1000 <= seconds[1]
    assert summary["train_seconds"] == pytest.approx(sum(seconds))
