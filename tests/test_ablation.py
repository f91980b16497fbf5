"""Ablation grids: validation before any run, real runs, resume after a kill, and the table."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml
from _folder_holder import hold_run_folder

from senet.ablation import (
    GridError,
    build_rows,
    grid_from_dict,
    load_grid,
    markdown_table,
    run_grid,
    runner,
    write_report,
)
from senet.ablation.records import record_runs
from senet.train import RunFolderLock, read_weights

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "senet" / "configs" / "fashion_mnist_se_resnet20.yaml"
# A few seconds per run: 64 synthetic 16x16 images, one epoch.
TINY = {
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


def write_grid(tmp_path: Path, **fields) -> Path:
    grid = {"base": str(RECIPE), "overrides": TINY, **fields}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    return path


TWO_AXES = {
    "axes": {"model.name": ["resnet20_cifar", "se_resnet20_cifar"], "optim.lr": [0.05, 0.2]},
    "seeds": [0],
}


def test_points_expand_axes_times_seeds():
    grid = grid_from_dict(
        {
            "base": "r.yaml",
            "axes": {"model.attn_kwargs.reduction": [4, 8], "model.attn_stages": [[2], [3, 4]]},
            "baseline": {"model.attn": None},
            "seeds": [0, 1],
        }
    )
    assert len(grid.points) == 2 * 2 * 2 + 2
    assert len({p.run_id for p in grid.points}) == len(grid.points)
    first = grid.points[0]
    assert first.label == "reduction=4,attn_stages=2"
    assert first.overrides() == [
        "model.attn_kwargs.reduction=4",
        "model.attn_stages=[2]",
        "train.seed=0",
    ]
    baseline = grid.points[-1]
    assert baseline.is_baseline and baseline.overrides() == ["model.attn=null", "train.seed=1"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"axes": {"optim.lr": [0.1]}, "colour": "red"}, r"unknown key\(s\) \['colour'\]"),
        ({"axes": {"optim.lr": []}}, "axis 'optim.lr' is empty"),
        ({"axes": {"optim.lr": [0.1, 0.2, 0.1]}}, "repeats 0.1: duplicate points"),
        (
            {"axes": {"model.attn": ["se", None]}, "baseline": {"model.attn": None}},
            "baseline .* is also an axis point: duplicate",
        ),
        ({"axes": {"optim.lr": [0.1]}, "seeds": [0, 0]}, "distinct integers"),
        ({"axes": {"optim.learning_rate": [0.1]}}, "unknown config key 'optim.learning_rate'"),
        ({"axes": {"optim.momentum": ["high"]}}, "optim.momentum.* expects float"),
        ({"axes": {"train.seed": [1, 2]}}, "'seeds' list, not train.seed"),
        ({"axes": {"data.train_size": [1]}}, "set in both 'overrides' and 'axes'"),
        # Valid config, but ResNet-20's basic blocks have no 3x3-then-1x1 to put SE between.
        ({"axes": {"model.strategy": ["conv3x3"]}}, "point strategy=conv3x3__seed=0: cannot build"),
        # Valid config, but the baseline has no attention for the optimiser to treat apart.
        (
            {
                "overrides": {**TINY, "optim.attn_weight_decay": 0.0},
                "axes": {"model.attn_kwargs.reduction": [4]},
                "baseline": {"model.attn": "none"},
            },
            "point baseline__seed=0: optim.attn_weight_decay is set, but the model has no attention",
        ),
    ],
)
def test_bad_grids_fail_before_any_run(tmp_path, fields, message):
    with pytest.raises(GridError, match=message):
        load_grid(write_grid(tmp_path, **fields))
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("path", sorted((REPO / "senet" / "configs" / "ablations").glob("*.yaml")))
def test_shipped_grids_are_valid(path):
    grid = load_grid(path)
    assert grid.points and grid.title


def test_baseline_can_clear_attention_options(tmp_path):
    # Table 10's "no SE" row: the shared overrides configure SE, the baseline has none.
    grid = load_grid(
        write_grid(
            tmp_path,
            overrides={**TINY, "model.attn_kwargs.bias": False},
            axes={"model.attn_kwargs.reduction": [4]},
            baseline={"model.name": "resnet20_cifar", "model.attn_kwargs": None},
        )
    )
    se, base = (grid.point_config(p) for p in grid.points)
    assert se.model.attn_kwargs == {"bias": False, "reduction": 4}
    assert (base.model.name, base.model.attn_kwargs) == ("resnet20_cifar", {})


def test_missing_grid_and_base(tmp_path):
    with pytest.raises(GridError, match="does not exist"):
        load_grid(tmp_path / "nope.yaml")
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump({"base": "missing.yaml", "axes": {"optim.lr": [0.1]}}))
    with pytest.raises(
        GridError, match=r"base 'missing.yaml' is neither .*missing.yaml does not exist"
    ):
        load_grid(path)


def ablate(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "senet", "ablate", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # so a kill reaches the training processes too
        **kwargs,
    )


@pytest.mark.slow
def test_grid_runs_resumes_after_a_kill_and_tables_the_summaries(tmp_path):
    grid_path = write_grid(tmp_path, **TWO_AXES)
    out = tmp_path / "out"
    # Interrupt the grid for real once the first point has finished.
    proc = ablate(str(grid_path), "--out", str(out))
    deadline = time.monotonic() + 120
    while not list(out.glob("runs/*/summary.json")):
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "no point finished in 120 s"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("runs/*/summary.json")}
    assert 1 <= len(finished) < 4

    grid = load_grid(grid_path)
    events = []
    results = run_grid(grid, out, on_event=events.append)
    statuses = {r.point.run_id: r.status for r in results}
    assert {k for k, s in statuses.items() if s == "cached"} == set(finished)
    assert {s for k, s in statuses.items() if k not in finished} == {"done"}
    for run_id, mtime in finished.items():  # finished points were not rerun
        assert (out / "runs" / run_id / "summary.json").stat().st_mtime_ns == mtime

    paths = write_report(grid, results, out)
    summaries = {
        r.point.label: json.loads((r.run_dir / "summary.json").read_text()) for r in results
    }
    with paths["csv"].open() as f:
        rows = {row["setting"]: row for row in csv.DictReader(f)}
    assert set(rows) == set(summaries)
    for label, summary in summaries.items():
        assert float(rows[label]["top1_mean"]) == pytest.approx(summary["final_top1"])
        assert int(rows[label]["params"]) == summary["params"]
        assert int(rows[label]["macs"]) == summary["macs"]
    reference = rows["name=resnet20_cifar,lr=0.05"]
    assert reference["reference"] == "True"
    se = rows["name=se_resnet20_cifar,lr=0.2"]
    assert float(se["delta_top1"]) == pytest.approx(
        float(se["top1_mean"]) - float(reference["top1_mean"])
    )
    assert "| name=se_resnet20_cifar,lr=0.2 |" in paths["md"].read_text()
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"


def test_sigterm_to_the_grid_stops_its_training_processes(tmp_path):
    # `kill PID` (or a scheduler's preemption) reaches only the grid's own process; a point
    # left training would write its folder beside the rerun that resumes it.
    grid_path = write_grid(
        tmp_path, overrides={**TINY, "train.epochs": 500}, axes={"optim.lr": [0.1]}
    )
    out = tmp_path / "out"
    proc = ablate(str(grid_path), "--out", str(out))
    lock = out / "runs" / "lr=0.1__seed=0" / ".senet-lock"
    deadline = time.monotonic() + 60
    while not (lock.exists() and lock.read_text().startswith("pid ")):
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "the point did not start in 60 s"
        time.sleep(0.1)
    child = int(lock.read_text().split()[1])
    proc.send_signal(signal.SIGTERM)  # to the grid alone, not its process group
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    with pytest.raises(ProcessLookupError):  # stopped, and reaped by the grid
        os.kill(child, 0)
    RunFolderLock().claim(lock.parent)  # and nothing holds the folder now


def test_a_point_another_process_trains_into_is_shown_and_left_to_it(tmp_path):
    # Two grids on one folder (an --only part run first, beside the whole grid) must not both
    # train the same point.
    grid_path = write_grid(tmp_path, axes={"optim.lr": [0.1, 0.2]})
    out = tmp_path / "out"
    busy = out / "runs" / "lr=0.1__seed=0"
    busy.mkdir(parents=True)
    holder = hold_run_folder(busy)
    try:
        listed = ablate(str(grid_path), "--dry-run", "--out", str(out)).communicate(timeout=60)[0]
        assert f"[training now (pid {holder.pid} on " in listed
        assert "(1 training, 1 not started)" in listed
        events = []
        results = run_grid(load_grid(grid_path), out, on_event=events.append)
    finally:
        holder.kill()
        holder.wait()
    statuses = {r.point.run_id: r.status for r in results}
    assert statuses == {"lr=0.1__seed=0": "running elsewhere", "lr=0.2__seed=0": "done"}
    assert "1 running in another process (left to it)" in events[0]
    assert not (busy / "metrics.csv").exists()


def test_a_grid_continues_on_another_machine_from_its_record(tmp_path):
    # The run folders stay behind; the record (no weights) travels, and the grid reuses it.
    grid = load_grid(write_grid(tmp_path, axes={"optim.lr": [0.1, 0.2]}))
    first = tmp_path / "machine_a"
    done = run_grid(grid, first, only=["lr=0.1__*"], on_event=lambda _: None)
    record = tmp_path / "record"
    assert record_runs(first, record) == ["lr=0.1__seed=0"]
    recorded = {p.relative_to(record).as_posix() for p in record.rglob("*") if p.is_file()}
    assert recorded == {"grid.yaml"} | {
        f"runs/lr=0.1__seed=0/{name}" for name in ("summary.json", "metrics.csv", "config.yaml")
    }
    second = tmp_path / "machine_b"
    shutil.copytree(record, second)
    events = []
    results = run_grid(grid, second, on_event=events.append)
    assert [r.status for r in results] == ["cached", "done"]
    assert results[0].summary.final_top1 == done[0].summary.final_top1
    assert "1 finished earlier" in events[0]
    with pytest.raises(GridError, match="not a `senet ablate` results folder"):
        record_runs(tmp_path / "nothing", record)


def test_an_interrupted_point_continues_from_its_newest_checkpoint(tmp_path):
    # A study spread over days is stopped mid-run: the point must not start again from epoch 1.
    grid = load_grid(
        write_grid(tmp_path, overrides={**TINY, "train.epochs": 2}, axes={"optim.lr": [0.1]})
    )
    out = tmp_path / "out"
    [first] = run_grid(grid, out, on_event=lambda _: None)
    assert first.status == "done"
    # As if killed after epoch 1's checkpoint: the summary and the later checkpoints are gone.
    checkpoints = sorted((first.run_dir / "checkpoints").glob("step-*.pt"))
    assert len(checkpoints) == 2
    (first.run_dir / "summary.json").unlink()
    checkpoints[-1].unlink()
    [again] = run_grid(grid, out, on_event=lambda _: None)
    assert again.status == "done"
    assert again.summary.final_top1 == pytest.approx(first.summary.final_top1)
    log = (again.run_dir / "ablation.log").read_text()
    assert "resuming from" in log and f"{checkpoints[0].name}: epoch 2" in log


def test_a_finished_point_is_reused_only_while_the_grid_gives_it_the_same_config(tmp_path):
    out = tmp_path / "out"
    [first] = run_grid(load_grid(write_grid(tmp_path, axes={"optim.lr": [0.1]})), out)
    summary = (first.run_dir / "summary.json").read_bytes()
    # How it logs may change: the finished run still counts.
    logs_more = write_grid(
        tmp_path, overrides={**TINY, "log.log_every": 1}, axes={"optim.lr": [0.1]}
    )
    [again] = run_grid(load_grid(logs_more), out, on_event=lambda _: None)
    assert again.status == "cached"
    # What it computes may not: its old result would sit in the new grid's table.
    changed = write_grid(
        tmp_path, overrides={**TINY, "optim.momentum": 0.5}, axes={"optim.lr": [0.1]}
    )
    with pytest.raises(ValueError, match=r"optim\.momentum: 0\.9 -> 0\.5.*another --out"):
        run_grid(load_grid(changed), out, on_event=lambda _: None)
    assert (first.run_dir / "summary.json").read_bytes() == summary  # nothing lost


def test_the_saved_grid_keeps_the_command_line_overrides_so_it_reruns_what_ran(tmp_path):
    out = tmp_path / "out"
    grid = load_grid(write_grid(tmp_path, axes={"optim.lr": [0.1]}), ["optim.momentum=0.5"])
    [first] = run_grid(grid, out, on_event=lambda _: None)
    assert first.summary["config"]["optim"]["momentum"] == 0.5
    saved = yaml.safe_load((out / "grid.yaml").read_text())
    assert saved["command_line"] == ["optim.momentum=0.5"]
    # The saved file alone, without the override, is the grid that ran: its point is reused.
    [again] = run_grid(load_grid(out / "grid.yaml"), out, on_event=lambda _: None)
    assert again.status == "cached"
    # The file as shipped, without the override, computes something else and is refused.
    with pytest.raises(ValueError, match=r"optim\.momentum: 0\.5 -> 0\.9"):
        run_grid(load_grid(tmp_path / "grid.yaml"), out, on_event=lambda _: None)
    # ...and the refusal leaves the folder's record of what ran as it was.
    assert yaml.safe_load((out / "grid.yaml").read_text())["command_line"] == ["optim.momentum=0.5"]
    with pytest.raises(GridError, match="'command_line' must be a list of key=value strings"):
        grid_from_dict({"base": "r.yaml", "axes": {"optim.lr": [0.1]}, "command_line": "x"})


def test_only_runs_the_selected_points_and_reports_the_rest_as_not_run(tmp_path):
    grid = load_grid(write_grid(tmp_path, **TWO_AXES))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"--only name=nope\* matches no point.*lr=0\.05__seed=0"):
        run_grid(grid, out, only=["name=nope*"])
    assert not out.exists()  # a typo costs nothing
    events = []
    results = run_grid(grid, out, only=["name=se_*"], on_event=events.append)
    assert "4 runs, 0 finished earlier, 2 not selected (--only), 2 to run" in events[0]
    status = {r.point.run_id: r.status for r in results}
    assert status == {
        "name=resnet20_cifar__lr=0.05__seed=0": "not selected",
        "name=resnet20_cifar__lr=0.2__seed=0": "not selected",
        "name=se_resnet20_cifar__lr=0.05__seed=0": "done",
        "name=se_resnet20_cifar__lr=0.2__seed=0": "done",
    }
    assert sorted(p.parent.name for p in out.glob("runs/*/summary.json")) == sorted(
        k for k, v in status.items() if v == "done"
    )
    rows = {r.label: r for r in build_rows(grid, results)}
    assert rows["name=resnet20_cifar,lr=0.05"].seeds == []
    assert rows["name=resnet20_cifar,lr=0.05"].failed_seeds == []  # not run is not failed
    table = markdown_table(grid, list(rows.values()))
    assert "| name=resnet20_cifar,lr=0.05 (reference) | — | — | — | — | — | — | 0 of 1 |" in table
    assert table.count("| 1 |") == 2  # the finished settings: all their seeds, no mark
    # Later, the rest: the selected points are finished and not rerun.
    again = run_grid(grid, out, on_event=lambda _: None)
    assert sorted(r.status for r in again) == ["cached", "cached", "done", "done"]


def test_threads_sets_each_points_cpu_threads(tmp_path):
    grid = load_grid(write_grid(tmp_path, axes={"optim.lr": [0.1]}))
    with pytest.raises(ValueError, match="threads must be >= 1"):
        run_grid(grid, tmp_path / "out", threads=0)
    [result] = run_grid(grid, tmp_path / "out", threads=1, on_event=lambda _: None)
    assert result.summary["threads"] == 1


@pytest.mark.slow
def test_failed_points_are_retried_and_reported(tmp_path):
    # The imagefolder point passes validation but finds no images at run time.
    grid = load_grid(
        write_grid(
            tmp_path,
            axes={"data.name": ["synthetic", "imagefolder"]},
            overrides={
                **{k: v for k, v in TINY.items() if k != "data.name"},
                "data.root": str(tmp_path / "no-data"),
            },
        )
    )
    results = run_grid(grid, tmp_path / "out", retries=1, on_event=lambda _: None)
    by_name = {dict(r.point.settings)["data.name"]: r for r in results}
    assert by_name["synthetic"].status == "done"
    failed = by_name["imagefolder"]
    assert failed.status == "failed" and failed.attempts == 2
    assert "exit code 2" in failed.error
    rows = build_rows(grid, results)
    assert [(len(r.seeds), r.failed_seeds) for r in rows] == [(1, []), (0, [0])]


@pytest.fixture(scope="module")
def local_ray():
    """A Ray of this test process's own (address="local": never someone's running cluster)."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'senet[ray]')")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_backend_runs_the_same_grid(tmp_path, local_ray):
    grid = load_grid(write_grid(tmp_path, axes={"optim.lr": [0.05, 0.2]}))
    results = run_grid(grid, tmp_path / "out", backend="ray", on_event=lambda _: None)
    assert [r.status for r in results] == ["done", "done"]
    # The same points on the local backend train the same weights (seeded runs). Two jobs at
    # once give each point one thread, as each Ray task has: the float sums then round alike.
    local = run_grid(grid, tmp_path / "local", jobs=2, on_event=lambda _: None)
    for remote, here in zip(results, local, strict=True):
        assert remote.point.run_id == here.point.run_id
        assert remote.summary["final_top1"] == here.summary["final_top1"]
        want, _ = read_weights(here.run_dir / "last.safetensors")
        got, _ = read_weights(remote.run_dir / "last.safetensors")
        assert got.keys() == want.keys()
        for key in want:
            torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-5)
    lrs = [r.summary["config"]["optim"]["lr"] for r in results]
    assert lrs == [0.05, 0.2]  # each point ran its own setting


# The point's process kills its parent: the Ray worker that runs the point's task.
KILL_THE_WORKER = "import os, signal; os.kill(os.getppid(), signal.SIGKILL)"


@pytest.mark.slow
def test_ray_failures_are_retried_and_recorded_while_the_grid_goes_on(
    tmp_path, monkeypatch, local_ray
):
    grid = load_grid(write_grid(tmp_path, axes={"optim.lr": [0.05, 0.1, 0.2]}))
    real_command = runner.point_command
    attempts = Counter()

    def command(grid, point, run_dir):
        attempts[point.run_id] += 1
        lr = dict(point.settings)["optim.lr"]
        if lr == 0.05 and attempts[point.run_id] == 1:
            return [sys.executable, "-c", "raise SystemExit(3)"]  # fails once, then trains
        if lr == 0.1:
            return [str(tmp_path / "no-python"), "-V"]  # the task raises: Popen finds no file
        if lr == 0.2:
            return [sys.executable, "-c", KILL_THE_WORKER]  # the task loses its worker
        return real_command(grid, point, run_dir)

    monkeypatch.setattr(runner, "point_command", command)
    events = []
    results = run_grid(grid, tmp_path / "out", backend="ray", retries=1, on_event=events.append)
    by_lr = {dict(r.point.settings)["optim.lr"]: r for r in results}
    retried = by_lr[0.05]
    assert (retried.status, retried.attempts) == ("done", 2)
    assert (retried.run_dir / "summary.json").is_file()
    raised, died = by_lr[0.1], by_lr[0.2]
    assert (raised.status, raised.attempts) == ("failed", 2)
    assert (died.status, died.attempts) == ("failed", 2)
    assert "FileNotFoundError" in raised.error and "no-python" in raised.error
    assert "WorkerCrashedError" in died.error
    assert sum(e.startswith("  failed") for e in events) == 1 + 2 + 2
    assert dict(attempts) == {r.point.run_id: 2 for r in results}
    log = (died.run_dir / "ablation.log").read_text().splitlines()
    assert sum(line.startswith("$ ") for line in log) == 2  # no retries inside Ray besides


@pytest.mark.slow
def test_cli_ablate_on_ray(tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'senet[ray]')")
    grid = write_grid(tmp_path, axes={"optim.lr": [0.1]})
    out = tmp_path / "out"
    env = {**os.environ, "RAY_ADDRESS": "local"}  # a local Ray of its own
    proc = ablate(str(grid), "--backend", "ray", "--cpus", "1", "--out", str(out), env=env)
    output, _ = proc.communicate(timeout=400)
    assert proc.returncode == 0, output
    assert "1 runs, 0 finished earlier, 1 to run (ray, ray at a time)" in output
    summary = json.loads((out / "runs" / "lr=0.1__seed=0" / "summary.json").read_text())
    assert summary["config"]["optim"]["lr"] == 0.1
    with (out / "results.csv").open() as f:
        (row,) = csv.DictReader(f)
    assert float(row["top1_mean"]) == pytest.approx(summary["final_top1"])


@pytest.mark.slow
def test_cli_jobs_2_reports_and_exits_1_when_a_point_fails(tmp_path):
    # Two points at once; the imagefolder one passes validation but finds no images.
    grid = write_grid(
        tmp_path,
        axes={"data.name": ["synthetic", "imagefolder"]},
        overrides={
            **{k: v for k, v in TINY.items() if k != "data.name"},
            "data.root": str(tmp_path / "no-data"),
        },
    )
    out = tmp_path / "out"
    proc = ablate(str(grid), "--jobs", "2", "--retries", "0", "--out", str(out))
    output, _ = proc.communicate(timeout=400)
    assert proc.returncode == 1, output
    runs = {p.name: p for p in (out / "runs").iterdir()}
    done = [name for name, p in runs.items() if (p / "summary.json").is_file()]
    failed = [name for name in runs if name not in done]
    assert len(done) == len(failed) == 1
    assert f"1 run(s) failed: {failed[0]}; rerun to retry" in output
    summary = json.loads((runs[done[0]] / "summary.json").read_text())
    with (out / "results.csv").open() as f:
        rows = {row["setting"]: row for row in csv.DictReader(f)}
    assert float(rows["name=synthetic"]["top1_mean"]) == pytest.approx(summary["final_top1"])
    assert rows["name=imagefolder"]["top1_mean"] == "" and rows["name=imagefolder"]["failed_seeds"]
    table = (out / "results.md").read_text()
    assert "name=synthetic" in table and "| 0 of 1 (1 failed) |" in table
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_dry_run_lists_points(tmp_path):
    proc = ablate(str(write_grid(tmp_path, **TWO_AXES)), "--dry-run", "--out", str(tmp_path / "o"))
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "4 runs" in output and "model.name=se_resnet20_cifar optim.lr=0.2 train.seed=0" in output
    assert not (tmp_path / "o").exists()
    # --only: the dry run lists just the points a real run would train; a typo is an error.
    grid = str(write_grid(tmp_path, **TWO_AXES))
    proc = ablate(grid, "--dry-run", "--only", "name=se_*", "--out", str(tmp_path / "o"))
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    listed = [line.split(":")[0] for line in output.splitlines() if line.startswith("name=")]
    assert listed == ["name=se_resnet20_cifar__lr=0.05__seed=0",
                      "name=se_resnet20_cifar__lr=0.2__seed=0"]  # fmt: skip
    assert "2 of 4 runs selected (--only)" in output
    proc = ablate(grid, "--dry-run", "--only", "name=se_resnet_*")
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "--only name=se_resnet_* matches no point" in output


def test_cli_reports_bad_grid(tmp_path):
    proc = ablate(str(write_grid(tmp_path, axes={"optim.lr": []})))
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "axis 'optim.lr' is empty" in output


def test_cli_dry_run_says_where_each_point_stands(tmp_path):
    grid = str(write_grid(tmp_path, **TWO_AXES))
    out = tmp_path / "o"
    listed = ablate(grid, "--dry-run", "--out", str(out)).communicate(timeout=60)[0]
    run_ids = [line.split(":")[0] for line in listed.splitlines() if line.startswith("name=")]
    finished, unfinished, started = (out / "runs" / run_id for run_id in run_ids[:3])
    for folder in (finished, unfinished / "checkpoints", started / "checkpoints"):
        folder.mkdir(parents=True)
    (finished / "summary.json").write_text(json.dumps({"final_top1": 91.234}))
    (unfinished / "metrics.csv").write_text("epoch,val_top1\n1,50.0\n2,60.0\n")
    (unfinished / "checkpoints" / "step-00000020-0123456789abcdef.pt").write_bytes(b"")
    (started / "checkpoints" / "step-00000010-0123456789abcdef.pt").write_bytes(b"")
    proc = ablate(grid, "--dry-run", "--out", str(out))
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    lines = {line.split(":")[0]: line for line in output.splitlines() if line.startswith("name=")}
    assert lines[run_ids[0]].endswith("[finished, top-1 91.23%]")
    epochs = TINY["train.epochs"]
    assert lines[run_ids[1]].endswith(
        f"[2 of {epochs} epochs done; resumes from its newest checkpoint]"
    )
    assert lines[run_ids[2]].endswith(
        "[started, no epoch finished; resumes from its newest checkpoint]"
    )
    assert lines[run_ids[3]].endswith("train.seed=0")  # not started: nothing added
    assert f"results go to {out} (1 finished, 1 unfinished, 1 started, 1 not started)" in output
    assert not (out / "grid.yaml").exists()  # a dry run writes nothing
    # Epochs logged but the checkpoints deleted: the run would start over, and says so.
    for path in (unfinished / "checkpoints").iterdir():
        path.unlink()
    output = ablate(grid, "--dry-run", "--out", str(out)).communicate(timeout=60)[0]
    assert f"2 of {epochs} epochs done; no checkpoint left, so it restarts from epoch 1" in output
