"""DDP for real: two CPU processes (Gloo) started by torchrun train what one process trains
with the same global batch, and only rank 0 writes."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _tiny_models import tiny_models_registered

from senet.train import CheckpointDir, load_config, read_weights, train

CLI = Path(__file__).resolve().parent / "_senet_cli.py"

# BN-free TinyNet: with BatchNorm each process would normalise with its own 16 images instead
# of all 32, so the two runs would differ by design (train.sync_bn=true removes that on CUDA;
# torch's SyncBatchNorm does not run on CPU). Augmentation stays on: every image has its own
# seed, so the two processes draw the crops and flips one process draws.
RECIPE = [
    "model.name=_test_tinynet",
    "model.kwargs={norm: false}",
    "data.name=synthetic",
    "data.num_classes=4",
    "data.image_size=16",
    "data.synthetic_train=512",
    "data.synthetic_val=63",  # odd: an unpadded split must still count 63 images
    "optim.lr=0.8",
    "schedule.name=cosine",
    "train.epochs=2",
    "train.ema=true",
    "train.ema_decay=0.8",
    "train.checkpoint_every_steps=4",
    "log.progress=plain",
    "log.log_every=1000",
    "log.tensorboard=false",
    "log.plots=false",
]
TIMING = {"train_img_s", "epoch_seconds"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "metrics.csv") as f:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_global_batch(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("{}\n")  # the defaults; the overrides say the rest
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]

    def torchrun_train(out: Path, *extra: str) -> str:
        cmd = [
            *torchrun,
            f"--master_port={_free_port()}",
            str(CLI),
            "train",
            str(recipe),
            *RECIPE,
            "data.batch_size=16",
            "train.device=cpu",
            f"output_dir={out}",
            *extra,
        ]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    stdout = torchrun_train(tmp_path / "ddp")
    # Rank 0 alone speaks and writes.
    assert stdout.count("training _test_tinynet") == 1, stdout
    assert "batch 32 (16 x 2 processes), lr 0.1" in stdout
    _, state = CheckpointDir(tmp_path / "ddp" / "checkpoints").newest_valid()
    assert state["world_size"] == 2 and state["global_batch"] == 32
    assert len(state["rng"]) == 2  # each rank's random state, for an exact resume

    with tiny_models_registered():
        torch.set_num_threads(1)
        try:
            single = train(
                load_config(None, [*RECIPE, "data.batch_size=32", f"output_dir={tmp_path / 'one'}"])
            )
        finally:
            torch.set_num_threads(2)
    assert single["val_images"] == 63
    ddp_w, _ = read_weights(tmp_path / "ddp" / "last.safetensors")
    one_w, _ = read_weights(tmp_path / "one" / "last.safetensors")
    for name in one_w:
        torch.testing.assert_close(ddp_w[name], one_w[name], rtol=1e-4, atol=1e-5, msg=name)
    assert not torch.equal(one_w["fc.weight"], torch.zeros_like(one_w["fc.weight"]))
    ema_ddp, _ = read_weights(tmp_path / "ddp" / "ema.safetensors")
    ema_one, _ = read_weights(tmp_path / "one" / "ema.safetensors")
    torch.testing.assert_close(ema_ddp["fc.weight"], ema_one["fc.weight"])
    # Metrics summed over ranks: the same losses and counts (val: all 63 images, once each).
    ddp_rows, one_rows = _rows(tmp_path / "ddp"), _rows(tmp_path / "one")
    assert len(ddp_rows) == len(one_rows) == 2
    for a, b in zip(ddp_rows, one_rows, strict=True):
        for key in a:
            if a[key] and b[key]:
                assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-4, abs=1e-6), key
    # Top-1 on 63 images moves in steps of 1.59%: equal counts, not just close numbers.
    assert [r["val_top1"] for r in ddp_rows] == [r["val_top1"] for r in one_rows]

    # Resumed under DDP from the mid-epoch checkpoint of step 28 (epoch 2, step 12 of 16), each
    # rank restoring its own random state: the weights and metrics of the whole run, exactly.
    mid = [
        p for p in CheckpointDir(tmp_path / "ddp" / "checkpoints").paths() if "-00000028-" in p.name
    ]
    stdout = torchrun_train(tmp_path / "resumed", "--resume", str(mid[0]))
    assert "epoch 2, step 12/16 (global step 28)" in stdout
    resumed_w, _ = read_weights(tmp_path / "resumed" / "last.safetensors")
    for name in ddp_w:
        assert torch.equal(resumed_w[name], ddp_w[name]), name
    assert _rows(tmp_path / "resumed") == ddp_rows

    # The same checkpoint resumed by one process with the same global batch (1 x 32): allowed,
    # and it ends where the two processes ended (the same images per step, one process's sums).
    with tiny_models_registered():
        torch.set_num_threads(1)
        try:
            config = load_config(
                None, [*RECIPE, "data.batch_size=32", f"output_dir={tmp_path / 'one_of_two'}"]
            )
            train(config, resume=mid[0])
        finally:
            torch.set_num_threads(2)
    single_w, _ = read_weights(tmp_path / "one_of_two" / "last.safetensors")
    for name in ddp_w:
        torch.testing.assert_close(single_w[name], ddp_w[name], rtol=1e-4, atol=1e-5, msg=name)
    assert [r["val_top1"] for r in _rows(tmp_path / "one_of_two")] == [
        r["val_top1"] for r in ddp_rows
    ]
