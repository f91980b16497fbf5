"""Run every point of a grid as its own `senet train` process, resumably.

A point is finished when its run folder holds ``summary.json``; those are skipped on the next
call, after checking that the grid still gives them the config they ran with (a changed grid
run into the same folder would otherwise mix old and new results in one table). An unfinished
point continues from its newest checkpoint (``--resume auto``), so a long grid stopped mid-run
loses at most the epoch in progress. A failed point is retried ``retries`` times and then
reported, without stopping the rest.
Locally, ``jobs`` points run at once and share the CPU threads; with ``backend="ray"`` each point
is a Ray task with its own CPU/GPU request, so the same grid spreads over a cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import yaml

from senet.ablation.grid import Grid, GridError, GridPoint, format_value
from senet.config import load_config
from senet.train.checkpoint import CheckpointDir
from senet.train.fast_path import settle_for_runs
from senet.train.resume import AUTO_SETTLED, checkpoint_folder, computation_differences
from senet.train.run_lock import folder_holder
from senet.train.run_log import read_metrics
from senet.train.stop_signal import handling_sigterm
from senet.train.summary import RunSummary

BACKENDS = ("local", "ray")


@dataclass
class PointResult:
    """The outcome of one grid point."""

    point: GridPoint
    run_dir: Path
    # "done" (ran now), "cached" (finished earlier), "failed", "not selected", or "running
    # elsewhere" (another process trains into its folder now: left to it)
    status: str
    attempts: int = 0
    summary: RunSummary | None = None
    error: str | None = None


def point_command(grid: Grid, point: GridPoint, run_dir: Path) -> list[str]:
    """The `senet train` command line of one point."""
    return [
        sys.executable,
        "-m",
        "senet",
        "train",
        "--resume",
        "auto",  # an interrupted point continues from its newest checkpoint
        str(grid.base),
        *grid.common_overrides(),
        *point.overrides(),
        f"output_dir={run_dir}",
        "log.progress=plain",
    ]


def read_summary(run_dir: Path) -> RunSummary | None:
    """The finished run's summary, or None if the run did not finish (or left a torn file)."""
    try:
        return RunSummary.read(run_dir)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def point_state(grid: Grid, point: GridPoint, run_dir: Path) -> tuple[str, str]:
    """Where one point stands in its results folder (``senet ablate --dry-run``): a kind
    ("finished", "training", "unfinished", "started" or "not started") and the same in words."""
    summary = read_summary(run_dir)
    if summary is not None:
        top1 = "?" if summary.final_top1 is None else f"{summary.final_top1:.2f}%"
        return "finished", f"finished, top-1 {top1}"
    owner = folder_holder(run_dir)
    if owner is not None:
        return "training", f"training now ({owner})"
    try:
        epochs_done = len(read_metrics(run_dir))
    except FileNotFoundError:
        epochs_done = 0
    # Names only: verifying every checkpoint would load each one; a corrupt newest is reported,
    # and the one before it used, when the run resumes.
    has_checkpoint = bool(CheckpointDir(checkpoint_folder(run_dir)).paths())
    if epochs_done:
        total = grid.point_config(point).train.epochs
        then = (
            "resumes from its newest checkpoint"
            if has_checkpoint
            else "no checkpoint left, so it restarts from epoch 1"
        )
        return "unfinished", f"{epochs_done} of {total} epochs done; {then}"
    if has_checkpoint:
        return "started", "started, no epoch finished; resumes from its newest checkpoint"
    return "not started", "not started"


def _check_still_fits(grid: Grid, point: GridPoint, run_dir: Path, summary: RunSummary) -> None:
    """Raise ValueError when a finished point ran a config other than the one the grid gives it."""
    if not summary.config:  # written before summaries recorded their config: nothing to check
        return
    # A setting left ``auto`` fits what the run settled it to (computation_differences).
    changed = computation_differences(summary.config, grid.point_config(point))
    if changed:
        raise GridError(
            f"{run_dir} finished with a different config from the one this grid gives it "
            f"({'; '.join(changed)}), so its result would be mixed into this grid's table. "
            "Write the changed grid to another --out, or delete that run folder to rerun it"
        )


class _Children:
    """The `senet train` processes this grid has running, so that stopping the grid stops
    them: SIGTERM (``kill``, a scheduler's preemption) reaches only the grid's own process, and
    a run left training would go on writing its folder beside the rerun that resumes it."""

    def __init__(self) -> None:
        self._live: set[subprocess.Popen] = set()
        self._guard = threading.Lock()

    def run(self, command: list[str], log_path: Path, env: dict[str, str]) -> int:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a") as log:
            log.write(f"$ {' '.join(command)}\n")
            log.flush()
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
            with self._guard:
                self._live.add(process)
            try:
                return process.wait()
            finally:
                with self._guard:
                    self._live.discard(process)

    @contextlib.contextmanager
    def stopped_on_exit(self, grace_s: float = 60.0) -> Iterator[None]:
        """On the way out by an exception (Ctrl-C, or SIGTERM, turned into SystemExit here while
        the grid runs in the main thread): terminate the children, then kill what is left after
        ``grace_s``. A terminated `senet train` checkpoints the step it is on before it exits
        (``senet.train.stop_signal``), so the grid's rerun continues each point from there."""
        try:
            with handling_sigterm(_exit_on_sigterm):
                yield
        except BaseException:
            with self._guard:
                live = list(self._live)
            for process in live:
                process.terminate()
            for process in live:
                try:
                    process.wait(timeout=grace_s)
                except subprocess.TimeoutExpired:
                    process.kill()
            raise


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _run_process(command: list[str], log_path: Path, env: dict[str, str]) -> int:
    """One point's process, for the Ray backend (each task runs in a worker of its own)."""
    return _Children().run(command, log_path, env)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return "\n".join(path.read_text().splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def selected_points(grid: Grid, only: list[str] | None) -> list[GridPoint]:
    """The points of ``grid`` whose run id matches one of the shell patterns ``only`` (all
    points when None); a pattern matching no point is an error that lists the run ids."""
    if not only:
        return list(grid.points)
    unmatched = [pat for pat in only if not any(fnmatch(p.run_id, pat) for p in grid.points)]
    if unmatched:
        raise GridError(
            f"--only {', '.join(unmatched)} matches no point of grid {grid.name}; its run ids "
            f"are {', '.join(p.run_id for p in grid.points)}"
        )
    return [p for p in grid.points if any(fnmatch(p.run_id, pat) for pat in only)]


def run_grid(
    grid: Grid,
    out_dir: str | Path,
    *,
    jobs: int = 1,
    backend: str = "local",
    retries: int = 1,
    extra_overrides: list[str] = (),
    ray_resources: dict[str, float] | None = None,
    only: list[str] | None = None,
    threads: int | None = None,
    on_event: Callable[[str], None] = print,
) -> list[PointResult]:
    """Run the unfinished points of ``grid`` under ``out_dir/runs/``; return one result each.

    ``extra_overrides``: ``key=value`` on top of every point, for a grid loaded without them
    (``load_grid(path, extra)`` has already put its extras in ``grid.command_line``).
    ``only``: run just the unfinished points whose run id matches one of these shell patterns
    (``name=resnet56_cifar__*``), to put one part of a long study first; the others are left
    as they are ("not selected", or "cached" when finished).
    ``threads``: CPU threads per local point (default: the cores split over ``jobs``); set it
    when two grids share a machine, or to match the thread count a grid's earlier runs had
    (the order of floating-point sums, and so a run's exact numbers, depend on it).
    """
    if backend not in BACKENDS:
        raise GridError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if jobs < 1 or retries < 0 or (threads is not None and threads < 1):
        raise GridError(
            f"jobs and threads must be >= 1 and retries >= 0, got jobs={jobs}, "
            f"threads={threads}, retries={retries}"
        )
    selected = {point.run_id for point in selected_points(grid, only)}
    out_dir = Path(out_dir)
    grid = replace(grid, command_line=[*grid.command_line, *extra_overrides])
    results: dict[str, PointResult] = {}
    pending = []
    for point in grid.points:
        run_dir = out_dir / "runs" / point.run_id
        summary = read_summary(run_dir)
        if summary is not None:
            _check_still_fits(grid, point, run_dir, summary)
            results[point.run_id] = PointResult(point, run_dir, "cached", summary=summary)
        elif point.run_id not in selected:
            results[point.run_id] = PointResult(point, run_dir, "not selected")
        elif (owner := folder_holder(run_dir)) is not None:  # e.g. an --only grid beside this one
            error = f"trained into by another process now ({owner})"
            results[point.run_id] = PointResult(point, run_dir, "running elsewhere", error=error)
        else:
            pending.append(point)
    cached = [r for r in results.values() if r.status == "cached"]
    elsewhere = [r for r in results.values() if r.status == "running elsewhere"]
    not_selected = len(results) - len(cached) - len(elsewhere)
    skipped = f"{not_selected} not selected (--only), " if only else ""
    if elsewhere:
        skipped += f"{len(elsewhere)} running in another process (left to it), "
    on_event(
        f"grid {grid.name}: {len(grid.points)} runs, {len(cached)} finished earlier, {skipped}"
        f"{len(pending)} to run ({backend}, {jobs if backend == 'local' else 'ray'} at a time)"
    )
    point_threads = _point_threads(backend, jobs, threads, ray_resources)
    grid = settle_grid_fast_path(grid, out_dir, results, pending, point_threads, on_event)
    # Only now, with every finished run still fitting, is the folder's grid.yaml this grid.
    (out_dir / "runs").mkdir(parents=True, exist_ok=True)
    (out_dir / "grid.yaml").write_text(yaml.safe_dump(grid.to_dict(), sort_keys=False))
    if backend == "local":
        execute = _local_executor(jobs, point_threads)
    else:
        execute = _ray_executor(ray_resources)
    for attempt in range(1, retries + 2):
        if not pending:
            break
        commands = {p.run_id: point_command(grid, p, out_dir / "runs" / p.run_id) for p in pending}
        logs = {p.run_id: out_dir / "runs" / p.run_id / "ablation.log" for p in pending}
        points = {p.run_id: p for p in pending}
        still_failing = []
        for run_id, code in execute(commands, logs):  # in the order the runs finish
            point, run_dir = points[run_id], out_dir / "runs" / run_id
            summary = read_summary(run_dir) if code == 0 else None
            if summary is not None:
                results[run_id] = PointResult(point, run_dir, "done", attempt, summary)
                on_event(f"  done   {run_id}: top-1 {summary.final_top1:.2f}%")
            else:
                error = f"exit code {code}: {_tail(logs[run_id])}"
                results[run_id] = PointResult(point, run_dir, "failed", attempt, error=error)
                still_failing.append(point)
                on_event(f"  failed {run_id} (attempt {attempt}); log: {logs[run_id]}")
        pending = still_failing
    return [results[p.run_id] for p in grid.points]


def settle_grid_fast_path(
    grid: Grid,
    out_dir: Path,
    results: dict[str, PointResult],
    pending: list[GridPoint],
    threads: int,
    on_event: Callable[[str], None] = print,
) -> Grid:
    """The grid with the train settings it leaves ``auto`` settled once, for every point alike,
    before any point runs (so paired arms train in the same mode, and no measuring runs beside
    a training run): the choice this results folder recorded (its grid.yaml, else a finished
    point's config), or timed now over the grid's models on the threads each point will have."""
    base = load_config(grid.base, grid.common_overrides())
    autos = [k for k in AUTO_SETTLED if getattr(base.train, k) == "auto"]
    if not autos or grid.fast_path:
        return grid
    settled = _recorded_fast_path(out_dir, autos, results)
    if settled is not None:
        on_event(f"fast path: {_settings_text(settled)} (as this grid's earlier runs trained)")
    elif pending:
        configs = [grid.point_config(p) for p in grid.points]
        fast = settle_for_runs(base.train, configs, threads=threads)
        for line in fast.log_lines():
            on_event(line)
        settled = {f"train.{k}": fast.settings()[k] for k in autos}
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "fast_path.json").write_text(json.dumps(fast.to_dict(), indent=2) + "\n")
    else:
        return grid
    return replace(grid, fast_path=settled)


def _recorded_fast_path(
    out_dir: Path, autos: list[str], results: dict[str, PointResult]
) -> dict[str, Any] | None:
    """What an earlier call settled for this results folder: its grid.yaml's ``fast_path``, or
    (a folder from before grids recorded one) the values a finished point ran with."""
    try:
        saved = yaml.safe_load((out_dir / "grid.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        saved = {}
    recorded = saved.get("fast_path") if isinstance(saved, dict) else None
    if recorded and all(f"train.{k}" in recorded for k in autos):
        return {f"train.{k}": recorded[f"train.{k}"] for k in autos}
    for result in results.values():
        train = ((result.summary.config or {}) if result.summary else {}).get("train") or {}
        if all(k in train and train[k] != "auto" for k in autos):
            return {f"train.{k}": train[k] for k in autos}
    return None


def _point_threads(
    backend: str, jobs: int, threads: int | None, ray_resources: dict[str, float] | None
) -> int:
    """The CPU threads each point runs with (what ``auto`` must time on)."""
    if backend == "ray":
        return max(1, int((ray_resources or {}).get("num_cpus", 1)))
    return threads or max(1, (os.cpu_count() or 1) // jobs)


def _settings_text(settings: dict[str, Any]) -> str:
    return ", ".join(f"{key}={format_value(value)}" for key, value in settings.items())


# Runs the commands (run id -> argv, logging to logs[run id]); yields (run id, exit code) as
# each run finishes.
Executor = Callable[[dict[str, list[str]], dict[str, Path]], Iterator[tuple[str, int]]]


def _local_executor(jobs: int, threads: int) -> Executor:
    def execute(commands: dict[str, list[str]], logs: dict[str, Path]) -> Iterator[tuple[str, int]]:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        children = _Children()
        # Exits in reverse order: the children are stopped before the pool waits for its threads.
        with ThreadPoolExecutor(max_workers=jobs) as pool, children.stopped_on_exit():
            futures = {pool.submit(children.run, c, logs[k], env): k for k, c in commands.items()}
            for future in as_completed(futures):
                yield futures[future], future.result()

    return execute


def _ray_executor(resources: dict[str, float] | None) -> Executor:
    try:
        import ray
    except ImportError:
        raise GridError(
            "backend='ray' needs Ray: pip install 'senet[ray]' (or run with backend='local')"
        ) from None
    resources = {"num_cpus": 1, **(resources or {})}

    def execute(commands: dict[str, list[str]], logs: dict[str, Path]) -> Iterator[tuple[str, int]]:
        if not ray.is_initialized():
            ray.init()  # joins RAY_ADDRESS's cluster when set, else starts a local one
        # No retries inside Ray: the grid's own (``retries``) resume the point from its folder.
        remote = ray.remote(max_retries=0, **resources)(_run_process)
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, int(resources["num_cpus"])))}
        refs = {remote.remote(c, logs[k], env): k for k, c in commands.items()}
        waiting = list(refs)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            run_id = refs[ready[0]]
            yield run_id, _ray_exit_code(ray, ready[0], logs[run_id])

    return execute


_RAY_TASK_FAILED = -1  # the exit code given to a point whose Ray task raised or lost its worker


def _ray_exit_code(ray: Any, ref: Any, log_path: Path) -> int:
    """The point's exit code. A task that raised (say, Python missing on the node) or whose
    worker died has none: it counts as a failed run, and Ray's error goes to the point's log,
    so that one point's failure does not stop the grid."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as e:
        cause = getattr(e, "cause", None) or e  # a task's own exception, else Ray's
        lines = str(cause).strip().splitlines() or [""]
        reason = f"{type(cause).__name__}: {lines[0]}"
        with contextlib.suppress(OSError):
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with log_path.open("a") as log:
                log.write(f"ray: the task of this point failed with no exit code: {reason}\n")
        return _RAY_TASK_FAILED
