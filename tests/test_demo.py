"""`make demo` end to end on a cut-down budget: train both models, compare, analyse the gates."""

from pathlib import Path

import pytest
import torch

import senet
from senet.data import create_dataset, dataset_options
from senet.data.fashion_mnist import SYSTEM_DIR
from senet.demo import MODELS, run_demo
from senet.train import read_weights


def top1_of(run_dir: Path) -> float:
    weights = run_dir / "last.safetensors"
    model = senet.create_model(read_weights(weights)[1]["model"], pretrained=weights)
    meta = read_weights(weights)[1]
    # The weights record every data key; Fashion-MNIST takes only its own options.
    taken = {k: v for k, v in meta["data_args"].items() if k in dataset_options("fashion_mnist")}
    stats = {"mean": meta["mean"], "std": meta["std"]}
    data, _ = create_dataset("fashion_mnist", "val", size=500, **stats, **taken)
    x = torch.stack([data[i][0] for i in range(len(data))])
    y = torch.tensor([int(data[i][1]) for i in range(len(data))])
    with torch.no_grad():
        return (model.eval()(x).argmax(1) == y).double().mean().item() * 100


@pytest.mark.slow
@pytest.mark.skipif(not SYSTEM_DIR.is_dir(), reason=f"Fashion-MNIST not installed in {SYSTEM_DIR}")
def test_demo_trains_compares_and_analyses(tmp_path):
    budget = ["data.train_size=256", "data.val_size=500", "train.epochs=1", "log.tensorboard=false"]
    rows = run_demo(tmp_path, budget)
    assert [r["model"] for r in rows] == list(MODELS)
    se, base = rows
    # SE-ResNet-20 adds per block (C = 16, 32, 64 at 28, 14, 7 pixels; hidden C/16) the FCs
    # 2*C*C/16 + biases C/16 + C, and does pool and scale (C*H*W each), ReLU and sigmoid.
    stages = ((16, 28), (32, 14), (64, 7))
    assert se["params"] - base["params"] == 3 * sum(
        2 * c * (c // 16) + c // 16 + c for c, _ in stages
    )
    work = sum(2 * c * s * s + 2 * c * (c // 16) + c // 16 + c for c, s in stages)
    assert se["macs"] - base["macs"] == 3 * work
    for r in rows:  # the reported top-1 is the final weights' on the first 500 test images
        assert r["final_top1"] == pytest.approx(top1_of(tmp_path / r["model"]), abs=1e-9)
    report = tmp_path / MODELS[0] / "analysis-fashion_mnist"
    for name in ("gates.json", "saturation.json", "class_gates.png", "specificity.png"):
        assert (report / name).is_file()
    assert (tmp_path / "compare.png").is_file()
