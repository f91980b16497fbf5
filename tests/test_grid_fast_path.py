"""A grid settles its ``auto`` train settings once, before any point runs, gives every point the
same explicit values and records them in its grid.yaml; a rerun keeps them."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from senet.ablation import load_grid, run_grid
from senet.ablation import runner as runner_module
from senet.ablation.grid import GridPoint
from senet.ablation.runner import PointResult, _recorded_fast_path
from senet.config import load_config
from senet.models.precision import Mode
from senet.train.fast_path import FastPath
from senet.train.workloads import config_workloads

RECIPE = (
    Path(__file__).resolve().parents[1] / "senet" / "configs" / "fashion_mnist_se_resnet20.yaml"
)
TINY = {  # a few seconds per run: 64 synthetic 16x16 images, one epoch
    "data.name": "synthetic",
    "data.synthetic_train": 64,
    "data.train_size": 64,
    "data.synthetic_val": 32,
    "data.image_size": 16,
    "data.batch_size": 32,
    "train.epochs": 1,
    "log.plots": False,
    "log.tensorboard": False,
}


def _grid_file(tmp_path: Path) -> Path:
    path = tmp_path / "grid.yaml"
    grid = {
        "base": str(RECIPE),
        "overrides": TINY,
        "axes": {"model.name": ["resnet20_cifar", "se_resnet20_cifar"]},
        "seeds": [0],
    }
    path.write_text(yaml.safe_dump(grid))
    return path


@pytest.mark.slow
def test_a_grid_settles_auto_once_for_every_point_and_records_it(tmp_path, monkeypatch):
    out = tmp_path / "out"
    calls = []

    def settle_once(t, configs, *, threads):
        started = list((out / "runs").glob("*/config.yaml")) if (out / "runs").exists() else []
        calls.append({"threads": threads, "points": len(configs), "started": started})
        assert (t.amp, t.channels_last, t.compile) == ("auto", "auto", "auto")
        return FastPath(Mode("none", True), "measured", "fake timing")

    monkeypatch.setattr(runner_module, "settle_for_runs", settle_once)
    events = []
    results = run_grid(load_grid(_grid_file(tmp_path)), out, jobs=2, on_event=events.append)
    assert [r.status for r in results] == ["done", "done"]
    assert calls == [{"threads": 1, "points": 2, "started": []}]  # once, before any point
    assert "fast path: fp32 channels_last (measured: fake timing)" in events
    saved = yaml.safe_load((out / "grid.yaml").read_text())["fast_path"]
    assert saved == {"train.amp": "none", "train.channels_last": True, "train.compile": False}
    assert json.loads((out / "fast_path.json").read_text())["reason"] == "fake timing"
    for result in results:  # every point ran the same explicit mode, as set
        train = load_config(result.run_dir / "config.yaml").train
        assert (train.amp, train.channels_last, train.compile) == ("none", True, False)
        assert result.summary.fast_path["source"] == "as set"
    # Rerun with the original file: nothing is timed again, the recorded choice stays.
    again = run_grid(load_grid(_grid_file(tmp_path)), out, on_event=events.append)
    assert [r.status for r in again] == ["cached", "cached"] and len(calls) == 1
    assert yaml.safe_load((out / "grid.yaml").read_text())["fast_path"] == saved


def test_a_folder_from_before_grids_recorded_a_choice_keeps_its_points_choice(tmp_path):
    point = GridPoint((("model.name", "resnet20_cifar"),), 0)
    config = {"train": {"amp": "bf16", "channels_last": True, "compile": False}}
    done = PointResult(point, tmp_path, "cached", summary=SimpleNamespace(config=config))
    autos = ["amp", "channels_last", "compile"]
    assert _recorded_fast_path(tmp_path, autos, {"p": done}) == {
        "train.amp": "bf16",
        "train.channels_last": True,
        "train.compile": False,
    }
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump({"fast_path": {"train.amp": "none"}}))
    assert _recorded_fast_path(tmp_path, ["amp"], {}) == {"train.amp": "none"}
    assert _recorded_fast_path(tmp_path / "new", autos, {}) is None


def test_a_grid_times_each_distinct_model_once_with_its_steps_summed(tmp_path):
    grid = load_grid(_grid_file(tmp_path))
    configs = [grid.point_config(p) for p in grid.points]
    configs += [grid.point_config(p) for p in grid.points]  # as if a second seed
    configs[-1].train.seed = 1
    workloads = config_workloads(configs)
    assert sorted(w.label for w in workloads) == ["resnet20_cifar", "se_resnet20_cifar"]
    assert all(w.steps == 2 * 1 * 2 for w in workloads)  # 2 runs x 1 epoch x 2 steps


def test_a_grid_file_s_fast_path_is_checked(tmp_path):
    path = _grid_file(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["fast_path"] = {"train.lr": 0.1}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=r"'fast_path' maps train\.amp, train\.channels_last"):
        load_grid(path)


def test_a_point_that_cannot_be_built_leaves_the_others_in_fp32_not_failing(monkeypatch):
    # A point whose data is missing fails when it runs; settling must not abort the grid.
    import senet.train.fast_path as fast_path
    from senet.data import DataError

    def missing(configs):
        raise DataError("image folder /no-data/train does not exist")

    monkeypatch.setattr(fast_path, "config_workloads", missing)
    config = load_config(None, ["train.amp=auto", "train.channels_last=auto"])
    fast = fast_path.settle_for_runs(config.train, [config])
    assert (fast.source, fast.mode) == ("fallback", Mode())
    assert "/no-data/train does not exist" in fast.reason and "fp32 NCHW" in fast.reason
