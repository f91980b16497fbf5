"""benchmarks/time_to_accuracy.py: the first epoch at each target and the time until it ends."""

import csv
import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "time_to_accuracy", REPO / "benchmarks" / "time_to_accuracy.py"
)
tta = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tta)


def _fake_run(folder: Path, flip: bool = False) -> Path:
    folder.mkdir()
    rows = [  # epoch, val top-1, epoch seconds (with eval), training img/s, flip-TTA top-1
        (1, 91.5, 80.0, 1000.0, 92.1),
        (2, 93.2, 70.0, 1200.0, 93.4),
        (3, 93.9, 70.0, 1200.0, 94.0),
        (4, 94.1, 72.0, 1000.0, 94.3),
    ]
    with (folder / "metrics.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "val_top1", "epoch_seconds", "train_img_s", "val_flip_top1"])
        writer.writerows(row if flip else (*row[:4], "") for row in rows)
    summary = {"model": "resnet20_cifar", "data": "fashion_mnist", "train_images": 60000,
               "epochs": 4, "final_top1": 94.1, "threads": 2, "config": {"train": {"amp": "bf16"}},
               "final_flip_top1": 94.3 if flip else None}  # fmt: skip
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def test_time_to_each_target_is_the_sum_up_to_the_first_epoch_that_reaches_it(tmp_path):
    run = _fake_run(tmp_path / "run")
    hits = tta.time_to_targets(tta.read_metrics(run), 60000, (92.0, 93.0, 94.0, 95.0))
    assert [h["epoch"] for h in hits] == [2, 2, 4, None]
    assert hits[0]["wall_s"] == 150.0 and hits[0]["train_s"] == 60.0 + 50.0
    assert hits[2]["wall_s"] == 292.0 and hits[2]["train_s"] == 60.0 + 50.0 + 50.0 + 60.0
    assert hits[3]["wall_s"] is None


def test_cli_reports_a_finished_run_and_rejects_an_unfinished_one(tmp_path, capsys):
    run = _fake_run(tmp_path / "run")
    assert tta.main(["--run", str(run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("resnet20_cifar on fashion_mnist: 60,000 images, 4 epochs")
    assert lines[2:] == ["   92.0%      2         2.5          1.8",
                         "   93.0%      2         2.5          1.8",
                         "   94.0%      4         4.9          3.7"]  # fmt: skip
    assert len(lines) == 5  # no flip-TTA table for a run without it
    assert tta.main(["--run", str(tmp_path)]) == 2
    assert "not a finished senet run" in capsys.readouterr().err


def test_a_run_with_flip_tta_gets_a_second_table_from_its_flip_column(tmp_path, capsys):
    run = _fake_run(tmp_path / "run", flip=True)
    hits = tta.time_to_targets(tta.read_metrics(run), 60000, (92.0, 94.0), "val_flip_top1")
    assert [h["epoch"] for h in hits] == [1, 3]
    assert tta.main(["--run", str(run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[5] == "with flip test-time augmentation (final top-1 94.30%):"
    assert lines[7:] == ["   92.0%      1         1.3          1.0",
                         "   93.0%      2         2.5          1.8",
                         "   94.0%      3         3.7          2.7"]  # fmt: skip


def test_training_uses_the_shipped_recipe_with_the_studys_settings(tmp_path):
    config = tta.study_config(tmp_path / "run", ["train.epochs=3"])
    assert config.model.name == "resnet20_cifar"
    assert config.data.train_size is None and config.train.amp == "bf16"
    assert config.train.epochs == 3 and str(config.output_dir) == str(tmp_path / "run")
