"""`make demo` end to end on a cut-down budget: train both models, compare, analyse the gates."""

import pytest

from senet.data.fashion_mnist import SYSTEM_DIR
from senet.demo import MODELS, run_demo


@pytest.mark.slow
@pytest.mark.skipif(not SYSTEM_DIR.is_dir(), reason=f"Fashion-MNIST not installed in {SYSTEM_DIR}")
def test_demo_trains_compares_and_analyses(tmp_path):
    budget = ["data.train_size=256", "data.val_size=500", "train.epochs=1", "log.tensorboard=false"]
    rows = run_demo(tmp_path, budget)
    assert [r["model"] for r in rows] == list(MODELS)
    se, base = rows
    assert se["params"] > base["params"] and se["macs"] > base["macs"]
    assert all(0 <= r["final_top1"] <= 100 for r in rows)
    report = tmp_path / MODELS[0] / "analysis-fashion_mnist"
    for name in ("gates.json", "saturation.json", "class_gates.png", "specificity.png"):
        assert (report / name).is_file()
    assert (tmp_path / "compare.png").is_file()
