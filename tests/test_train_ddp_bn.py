"""DDP with BatchNorm: a real SE-ResNet-20 in two Gloo processes. Per-process BN statistics
cannot equal one process's global batch, so these runs are compared with each other: every rank
ends with rank 0's weights and BN buffers and evaluates alike. (An exact resume under DDP is
test_train_ddp's; a real SIGKILL and resume, test_train_resume's.)"""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from senet.train import read_weights

HERE = Path(__file__).resolve().parent
RANKS = HERE / "_ddp_rank_state.py"
CLI = HERE / "_senet_cli.py"
# 8 steps of 2 x 16 images per epoch; EMA with BN buffers.
RECIPE = [
    "model.name=se_resnet20_cifar",
    "data.name=synthetic",
    "data.num_classes=4",
    "data.image_size=16",
    "data.synthetic_train=256",
    "data.synthetic_val=40",
    "data.batch_size=16",
    "optim.lr=0.2",
    "train.epochs=2",
    "train.device=cpu",
    "train.deterministic=true",
    "train.ema=true",
    "train.ema_decay=0.8",
    "log.progress=plain",
    "log.tensorboard=false",
    "log.plots=false",
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TIMING = {"train_img_s", "epoch_seconds"}


def _torchrun(script: Path, *args: str) -> list[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
            f"--master_port={port}", str(script), *args]  # fmt: skip


def _run_ranks(states: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = _torchrun(RANKS, str(states), *extra, *RECIPE, f"output_dir={out}")
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "metrics.csv") as f:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]


def _equal_states(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.slow
def test_ddp_with_batchnorm_ranks_agree(tmp_path):
    _run_ranks(tmp_path / "states", tmp_path / "ref")
    rank0 = torch.load(tmp_path / "states" / "rank0.pt")
    rank1 = torch.load(tmp_path / "states" / "rank1.pt")
    # Every rank holds rank 0's weights and BN statistics (each normalised its own 16 images,
    # so without the broadcast the running statistics would differ), and its EMA copy too.
    bn_keys = [k for k in rank0["model"] if k.endswith(("running_mean", "running_var"))]
    assert len(bn_keys) == 2 * 19  # 19 BatchNorms in SE-ResNet-20
    _equal_states(rank0["model"], rank1["model"])
    _equal_states(rank0["ema"], rank1["ema"])
    assert not torch.equal(rank0["ema"][bn_keys[0]], rank0["model"][bn_keys[0]])
    last, _ = read_weights(tmp_path / "ref" / "last.safetensors")
    ema, _ = read_weights(tmp_path / "ref" / "ema.safetensors")
    _equal_states({k: last[k] for k in rank0["model"]}, rank0["model"])
    _equal_states({k: ema[k] for k in rank0["ema"]}, rank0["ema"])
    # Evaluation agrees: the same logits on every rank, and the logged (sharded, summed) top-1
    # is that of the whole validation set.
    assert torch.equal(rank0["logits"], rank1["logits"])
    top1 = (rank0["logits"].argmax(1) == rank0["labels"]).double().mean().item() * 100
    assert float(_rows(tmp_path / "ref")[-1]["val_top1"]) == pytest.approx(top1, abs=1e-3)


@pytest.mark.slow
def test_sync_bn_on_cpu_is_refused_under_ddp(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("{}\n")
    out = tmp_path / "run"
    cmd = _torchrun(CLI, "train", str(recipe), *RECIPE, "train.sync_bn=true", f"output_dir={out}")
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "train.sync_bn=true needs CUDA" in done.stdout + done.stderr
    assert "set train.sync_bn=false" in done.stdout + done.stderr
    assert not (out / "checkpoints").exists()
