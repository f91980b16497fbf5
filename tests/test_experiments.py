"""Studies live in experiments/ (outside the wheel): each has a README, grids that run from the
repository root, and records that agree with themselves and with the grids that ran them."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from senet.ablation import GridError, load_grid
from senet.ablation.records import check_record
from senet.config import load_config

REPO = Path(__file__).resolve().parents[1]
STUDIES = sorted(p for p in (REPO / "experiments").iterdir() if p.is_dir())
GRIDS = sorted((REPO / "experiments").glob("*/grids/*.yaml"))
RECORDS = sorted(p.parent for p in (REPO / "experiments").glob("*/records/*/grid.yaml"))


def test_each_study_has_a_readme_that_names_its_grids():
    assert STUDIES, "no study in experiments/"
    for study in STUDIES:
        readme = (study / "README.md").read_text()
        for grid in (study / "grids").glob("*.yaml"):
            assert grid.name in readme, f"{study.name}/README.md does not mention {grid.name}"


@pytest.mark.parametrize("path", GRIDS, ids=lambda p: p.stem)
def test_every_study_grid_loads_and_names_its_recipe(path):
    grid = load_grid(path)  # every point validated, its model and optimiser built on meta
    assert grid.name == path.stem
    # Grids name a shipped recipe, so they resolve from any folder they are copied to.
    assert yaml.safe_load(path.read_text())["base"] in (
        "fashion_mnist_se_resnet20",
        "fashion_mnist_rts_stn",
    )


@pytest.mark.slow
def test_senet_ablate_runs_a_study_grid_from_the_repository_root(tmp_path):
    grid = "experiments/fashion_mnist/grids/fashion_mnist_depth_scale.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "senet", "ablate", grid, "--dry-run", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    assert "value=0.5__seed=2: model.attn_kwargs.value=0.5 train.seed=2" in proc.stdout
    assert "3 runs" in proc.stdout


def _grid_file(folder: Path, base: str) -> Path:
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump({"base": base, "axes": {"train.epochs": [1]}, "seeds": [0]}))
    return path


def test_a_grid_base_names_a_shipped_recipe_as_senet_train_does(tmp_path):
    by_name = load_grid(_grid_file(tmp_path, "fashion_mnist_se_resnet20"))
    expected = load_config("fashion_mnist_se_resnet20", ["train.epochs=1", "train.seed=0"])
    assert by_name.point_config(by_name.points[0]) == expected
    # A file beside the grid still wins, as `senet train PATH` reads a path before a name.
    (tmp_path / "fashion_mnist_se_resnet20").write_text(
        (REPO / "senet/configs/cifar10_se_resnet110.yaml").read_text()
    )
    beside = load_grid(_grid_file(tmp_path, "fashion_mnist_se_resnet20"))
    assert beside.base == tmp_path / "fashion_mnist_se_resnet20"
    assert beside.point_config(beside.points[0]).data.name == "cifar10"


def test_a_grid_base_that_is_neither_a_file_nor_a_recipe_says_both(tmp_path):
    path = _grid_file(tmp_path, "fashion_mnist_se_resnet")
    with pytest.raises(GridError) as e:
        load_grid(path)
    message = str(e.value)
    assert "is neither a file beside the grid" in message
    assert str(tmp_path / "fashion_mnist_se_resnet") in message
    assert "recipes: cifar10_se_resnet110, " in message
    with pytest.raises(GridError, match="'base' must be a recipe name or a path, got 3"):
        load_grid(_grid_file(tmp_path, 3))


@pytest.mark.parametrize("record", RECORDS, ids=lambda p: p.name)
def test_each_record_agrees_with_itself_and_with_the_grid_that_ran_it(record):
    study = record.parents[1]
    grid = load_grid(study / "grids" / f"{record.name}.yaml")
    assert check_record(record, grid) == []


def test_a_record_edited_by_hand_is_found(tmp_path):
    import json
    import shutil

    record = tmp_path / "record"
    shutil.copytree(REPO / "experiments/fashion_mnist/records/fashion_mnist_depth_scale", record)
    summary_path = record / "runs" / "value=0.5__seed=1" / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary_path.write_text(json.dumps(summary | {"final_top1": summary["final_top1"] + 0.5}))
    config_path = record / "runs" / "value=0.5__seed=2" / "config.yaml"
    config_path.write_text(config_path.read_text().replace("epochs: 15", "epochs: 16"))
    problems = check_record(record)
    assert problems == [
        "value=0.5__seed=1: summary.json's final_top1 94.7 is not metrics.csv's 94.2",
        "value=0.5__seed=2: summary.json's config is not config.yaml",
    ]
