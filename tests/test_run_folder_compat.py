"""A run folder written by senet 0.1.0 (before the package moves) still evaluates and resumes.

``fixtures/run_v010`` was written by ``train()`` of the pre-move code: ``_test_tinynet`` on
synthetic data, one epoch, EMA on. Its files must keep loading with the code as it is now.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from _tiny_models import tiny_models_registered

from senet.config import ConfigError
from senet.evaluation import EvalSource, compare_runs, evaluate_weights, resolve_source
from senet.train import load_config, train

FIXTURE = Path(__file__).parent / "fixtures" / "run_v010"


@pytest.fixture(autouse=True)
def _tiny():
    with tiny_models_registered():
        yield


def test_old_weights_evaluate_to_the_same_numbers(tmp_path):
    source = EvalSource("_test_tinynet", FIXTURE / "best.safetensors", "synthetic")
    report = evaluate_weights(source, output_dir=tmp_path)
    # Measured with the pre-move code on the same file.
    assert report.images == 512
    assert report.top1 == 25.0
    assert report.loss == pytest.approx(1.3900310397148132, rel=1e-6)


def test_old_run_folder_names_its_model_data_and_weights(tmp_path):
    source = resolve_source(str(FIXTURE), None, None)
    assert source == EvalSource("_test_tinynet", FIXTURE / "best.safetensors", "synthetic")
    # Without weights files the folder still names the model, but there is nothing to load.
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(FIXTURE / "config.yaml", bare / "config.yaml")
    with pytest.raises(ConfigError, match=r"holds no best\.safetensors or last\.safetensors"):
        resolve_source(str(bare), None, None)


def test_old_run_folder_compares():
    rows, _ = compare_runs([FIXTURE])
    assert rows[0]["final_top1"] == 25.0
    assert rows[0]["params"] == 1484
    assert rows[0]["model"] == "_test_tinynet"


def test_old_checkpoint_resumes(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    cfg = load_config(run / "config.yaml", [f"output_dir={run}"])
    (checkpoint,) = (run / "checkpoints").glob("*.pt")
    summary = train(cfg, resume=checkpoint)  # a named file: an unreadable one fails
    # The checkpoint was written after the last step: resuming ends the same run.
    assert summary["epochs"] == 1
    assert summary["final_top1"] == 25.0
    on_disk = json.loads((run / "summary.json").read_text())
    assert on_disk["final_top1"] == 25.0
    assert [int(r["epoch"]) for r in _metrics(run)] == [1]


def _metrics(folder: Path) -> list[dict[str, str]]:
    import csv

    with open(folder / "metrics.csv") as f:
        return list(csv.DictReader(f))


# --- a run folder written just before 0.2.0 (the one-builder restructuring) ------------------
# ``fixtures/run_pre020`` was written by commit f571244 (the last before 0.2.0's restructuring)
# with ``python tests/_senet_cli.py train EMPTY.yaml`` and the overrides in its config.yaml:
# ``_test_tinynet`` with SE retrofitted (reduction 4) and an affine STN in front, on synthetic
# data, 2 epochs of 2 steps, deterministic, EMA on; checkpoints after epoch 1 and 2.
PRE020 = Path(__file__).parent / "fixtures" / "run_pre020"


def _recorded_rows(folder: Path) -> list[dict[str, float]]:
    return [{k: float(v) for k, v in row.items() if v} for row in _metrics(folder)]


def test_pre020_weights_rebuild_their_model_and_evaluate_to_the_recorded_loss(tmp_path):
    import senet
    from senet.models import STNClassifier

    model = senet.create_model("_test_tinynet", pretrained=PRE020 / "last.safetensors")
    assert isinstance(model, STNClassifier)  # the STN and the retrofitted SE come back
    assert sum(1 for name, _ in model.named_modules() if name.endswith(".attn")) >= 1
    epoch1, epoch2 = _recorded_rows(PRE020)
    for weights, row in (("best.safetensors", epoch1), ("last.safetensors", epoch2)):
        source = EvalSource("_test_tinynet", PRE020 / weights, "synthetic", size=32)
        report = evaluate_weights(source, output_dir=tmp_path / weights)
        assert report.images == 32
        assert report.top1 == row["val_top1"]
        assert report.loss == pytest.approx(row["val_loss"], rel=1e-6)


def test_pre020_run_folder_analyses(tmp_path):
    from dataclasses import replace

    from senet.analysis import analyze_weights

    source = replace(resolve_source(str(PRE020), None, None), device="cpu")
    report = analyze_weights(source, output_dir=tmp_path)
    assert report.blocks and all(0 <= b["mean_gate"] <= 1 for b in report.blocks)
    assert (tmp_path / "gates.json").is_file()


def test_pre020_checkpoint_resumes_to_the_recorded_last_epoch(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(PRE020, run)
    first = sorted((run / "checkpoints").glob("*.pt"))[0]  # after epoch 1
    cfg = load_config(run / "config.yaml", [f"output_dir={run}"])
    summary = train(cfg, resume=first)
    recorded = json.loads((PRE020 / "summary.json").read_text())
    assert summary["epochs"] == 2
    assert summary["final_loss"] == pytest.approx(recorded["final_loss"], rel=1e-5)
    (epoch2,) = [row for row in _recorded_rows(run) if row["epoch"] == 2]
    assert epoch2["train_loss"] == pytest.approx(_recorded_rows(PRE020)[1]["train_loss"], rel=1e-5)
