"""senet.train.fast_path: how ``auto`` settles amp, channels_last and compile.

The candidates' training steps are fakes that advance a fake clock by a set time per mode
(``step_race.build_step`` is swapped for them), so each test knows which mode is fastest and
asserts what ``auto`` does with it: no real timing is asserted anywhere.
"""

from __future__ import annotations

import threading

import pytest
import torch
from torch import nn

from senet.config import Config, TrainConfig
from senet.models import precision
from senet.models.precision import Mode
from senet.models.speed_cache import ENV_VAR, SpeedCache, cache_dir, key_hash
from senet.train import compile_choice, fast_path, step_race
from senet.train.distributed import World
from senet.train.fast_path import FastPath, FastPathError, recorded_fast_path, settle_fast_path
from senet.train.step_race import Workload, eager_timed_steps, workload_key


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeSteps:
    """Stands in for ``step_race.build_step``: the step of mode M takes ``seconds[M.label]``
    (a probe 1/8 of it); a compiled mode's first step takes ``warmup`` more (compiling)."""

    def __init__(self, clock: FakeClock, seconds: dict[str, float], warmup: float = 30.0):
        self.clock, self.seconds, self.warmup = clock, seconds, warmup
        self.built: list[str] = []
        self.steps: list[tuple[str, bool]] = []
        self.fail: dict[str, str] = {}

    def __call__(self, w: Workload, mode: Mode):
        self.built.append(mode.label)
        if mode.label in self.fail:
            raise RuntimeError(self.fail[mode.label])
        seconds, compiling = self.seconds[mode.label], [mode.compile != "none"]

        def step(probe: bool) -> None:
            self.steps.append((mode.label, probe))
            self.clock.now += seconds / 8 if probe else seconds
            if compiling[0] and not probe:
                self.clock.now += self.warmup
                compiling[0] = False

        return step


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        return x + self.conv(x)


class Staged(nn.Module):
    """A stem and two residual stages: ``compile: stages`` has something to compile."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.layer1 = nn.Sequential(Block(), Block())
        self.layer2 = nn.Sequential(Block())
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(self.layer2(self.layer1(self.stem(x))).mean((2, 3)))


def workload(steps: int, *, model: nn.Module | None = None, name: str = "staged", **key):
    return Workload(
        model=model or Staged(),
        config=Config(),
        input_size=(3, 8, 8),
        num_classes=4,
        device=torch.device("cpu"),
        steps=steps,
        key={"model": name, **key},
    )


EAGER = {"fp32 NCHW": 0.2, "fp32 channels_last": 0.15, "bf16 channels_last": 0.1}
XEON = {"fp32 NCHW": 0.184, "fp32 channels_last": 0.159, "bf16 channels_last": 0.192}


@pytest.fixture
def fakes(monkeypatch, tmp_path):
    """Fake steps on a fake clock, a CPU that reports bf16, a cache in tmp_path."""
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: True)
    clock = FakeClock()

    def make(seconds: dict[str, float], **kwargs) -> FakeSteps:
        steps = FakeSteps(clock, seconds, **kwargs)
        monkeypatch.setattr(step_race, "build_step", steps)
        return steps

    make.clock, make.cache = clock, SpeedCache(tmp_path / "cache")
    return make


def settle(fakes, t: TrainConfig, *workloads: Workload) -> FastPath:
    return settle_fast_path(t, list(workloads), clock=fakes.clock, cache=fakes.cache)


def auto(**kwargs) -> TrainConfig:
    return TrainConfig(**{"amp": "auto", "channels_last": "auto", **kwargs})


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(EAGER, Mode("bf16", True)), (XEON, Mode("none", True))],  # XEON: issue 39's figures
    ids=["bf16-fastest", "bf16-flag-but-slowest"],
)
def test_auto_trains_in_the_fastest_timed_mode_whatever_the_cpu_flags_say(fakes, seconds, expected):
    fakes(seconds)
    t = auto()
    fast = settle(fakes, t, workload(3000))
    assert fast.mode == expected and fast.source == "measured"
    assert [r["name"] for r in fast.timings["staged"]] == list(seconds)
    step_ms = 1e3 * seconds[expected.label]
    assert fast.log_lines()[0] == (
        f"fast path: {expected.label} (measured: fastest of 3 timed candidates, {step_ms:.0f} ms "
        "a step)"
    )
    assert any(line.strip().startswith("bf16 channels_last") for line in fast.log_lines())
    fast.apply(t)
    assert (t.amp, t.channels_last, t.compile) == (expected.amp, True, False)


def test_an_explicit_setting_is_never_overridden(fakes):
    steps = fakes(EAGER)
    t = auto(amp="none")
    fast = settle(fakes, t, workload(3000))
    assert fast.mode == Mode("none", True)  # bf16 was fastest, but amp=none was set
    assert "bf16 channels_last" not in steps.built
    fast.apply(t)
    assert t.amp == "none"
    steps.built.clear()
    fixed = TrainConfig(amp="bf16", channels_last=False, compile=True)
    fast = settle(fakes, fixed, workload(3000))
    assert steps.built == [] and fast.source == "as set"
    assert fast.settings() == {"amp": "bf16", "channels_last": False, "compile": True}


def test_the_measuring_costs_at_most_two_percent_of_the_run(fakes):
    assert eager_timed_steps(600, 3) == 2 and eager_timed_steps(3000, 3) == 6
    assert eager_timed_steps(599, 3) == 0  # under 2 timed steps a candidate: too short
    steps = fakes(EAGER)
    settle(fakes, auto(), workload(1200))
    full = sum(1 for _, probe in steps.steps if not probe)
    probes = sum(1 for _, probe in steps.steps if probe)
    assert full + probes / 8 <= 0.02 * 1200
    assert full == 3 * (1 + eager_timed_steps(1200, 3))


def test_measuring_leaves_the_runs_random_state_where_it_was(fakes, monkeypatch):
    import random

    import numpy as np

    steps = fakes(EAGER)

    def drawing(w, mode):  # a step with dropout draws from the global generators
        step = steps(w, mode)
        return lambda probe: (torch.rand(3), random.random(), np.random.rand(), step(probe))

    monkeypatch.setattr(step_race, "build_step", drawing)
    w = workload(3000)
    torch.manual_seed(5), random.seed(5), np.random.seed(5)
    settle(fakes, auto(), w)
    after = (torch.rand(1).item(), random.random(), np.random.rand())
    torch.manual_seed(5), random.seed(5), np.random.seed(5)
    assert after == (torch.rand(1).item(), random.random(), np.random.rand())


def test_a_run_too_short_to_measure_trains_in_fp32_and_says_why(fakes):
    steps = fakes(EAGER)
    fast = settle(fakes, auto(compile="auto"), workload(300))
    assert steps.built == [] and fast.mode == Mode() and fast.source == "too short"
    assert "a run of 300 steps is too short to time 3 candidates within 2% of it" in fast.reason
    assert fast.compile_reason.startswith("not compiled (too short")


class Unpicklable(Staged):
    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()  # deepcopy cannot copy it: the measuring itself fails


def test_when_the_measuring_fails_the_run_falls_back_to_fp32_and_says_so(fakes):
    fakes(EAGER)
    fast = settle(fakes, auto(), workload(3000, model=Unpicklable()))
    assert fast.mode == Mode() and fast.source == "fallback"
    assert fast.log_lines()[0].startswith(
        "fast path: fp32 NCHW (fallback: measuring failed (TypeError: cannot pickle"
    )


def test_every_candidate_failing_stops_the_run_naming_each_failure(fakes):
    steps = fakes(EAGER)
    steps.fail = {label: f"{label} broke" for label in EAGER}
    with pytest.raises(FastPathError) as info:
        settle(fakes, auto(), workload(3000))
    for label in EAGER:
        assert f"{label}: RuntimeError: {label} broke" in str(info.value)


def test_one_failing_candidate_is_shown_and_the_rest_decide(fakes):
    steps = fakes(EAGER)
    steps.fail = {"bf16 channels_last": "no bf16 kernel"}
    fast = settle(fakes, auto(), workload(3000))
    assert fast.mode == Mode("none", True)
    assert any("failed: RuntimeError: no bf16 kernel" in line for line in fast.log_lines())


def test_the_measurement_is_cached_under_its_key(fakes):
    steps = fakes(EAGER)
    first = settle(fakes, auto(), workload(3000))
    steps.built.clear()
    again = settle(fakes, auto(), workload(3000))
    assert steps.built == [] and again.source == "cached" and again.mode == first.mode
    settle(fakes, auto(), workload(3000, batch=64))  # another key: measured again
    assert len(steps.built) == 3
    steps.built.clear()
    # A run that affords more timed steps than the cached measurement had measures again.
    short = SpeedCache(fakes.cache.folder / "other")
    settle_fast_path(auto(), [workload(600)], clock=fakes.clock, cache=short)
    settle_fast_path(auto(), [workload(3000)], clock=fakes.clock, cache=short)
    assert len(steps.built) == 6


def test_the_cache_folder_is_the_users_unless_the_environment_says(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine" and SpeedCache().folder == tmp_path / "mine"
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "senet"


@pytest.mark.parametrize(
    "change",
    ["device", "torch", "threads", "world_size", "model", "model_kwargs", "batch", "input_size"],
)
def test_the_cache_key_holds_what_a_step_s_speed_depends_on(monkeypatch, change):
    config, kwargs, size, world = Config(), {"attn": "se"}, (1, 28, 28), 1
    before = key_hash(workload_key(config, kwargs, size, torch.device("cpu"), world))
    if change == "device":
        monkeypatch.setattr(step_race, "device_name", lambda device: "another CPU")
    elif change == "torch":
        monkeypatch.setattr(torch, "__version__", "9.9.9")
    elif change == "threads":
        monkeypatch.setattr(torch, "get_num_threads", lambda: 97)
    elif change == "world_size":
        world = 2
    elif change == "model":
        config.model.name = "resnet20_cifar"
    elif change == "model_kwargs":
        kwargs = {"attn": "se", "attn_kwargs": {"reduction": 8}}
    elif change == "batch":
        config.data.batch_size = 64
    else:
        size = (3, 32, 32)
    assert key_hash(workload_key(config, kwargs, size, torch.device("cpu"), world)) != before


COMPILED = {
    **EAGER,
    "bf16 channels_last, compiled": 0.09,
    "bf16 channels_last, compiled per stage": 0.08,
}


def test_compiling_is_considered_only_when_the_run_can_repay_its_warm_up(fakes, monkeypatch):
    monkeypatch.setattr(compile_choice, "warmup_estimate", lambda w, cache: 30.0)
    steps = fakes(COMPILED)
    # A 3-epoch demo: 1,170 steps x 0.1 s; even 1.5x faster steps cannot repay ~105 s.
    demo = settle(fakes, auto(compile="auto"), workload(1170))
    assert demo.mode == Mode("bf16", True) and demo.settings()["compile"] is False
    assert not any("compiled" in label for label in steps.built)
    assert demo.compile_reason.startswith(
        "not compiled: the run's 1,170 steps take ~117 s eager; even 1.5x faster steps would "
        "save ~39 s, less than compiling costs (~60 s to time it, ~45 s for the run; estimated)"
    )
    # A 15-epoch study: 7,035 steps; both variants are timed and the faster one pays.
    study = settle(fakes, auto(compile="auto"), workload(7035))
    assert study.mode == Mode("bf16", True, "stages") and study.settings()["compile"] == "stages"
    assert study.compile_reason.startswith("compiled per residual stage, a step 1.25x as fast")
    assert "saves ~141 s over 7,035 steps against ~15 s of warm-up" in study.compile_reason
    assert [r["name"] for r in study.compiled["staged"]] == list(COMPILED)[3:]


def test_a_speed_up_too_small_for_its_warm_up_is_not_compiled(fakes, monkeypatch):
    monkeypatch.setattr(compile_choice, "warmup_estimate", lambda w, cache: 30.0)
    barely = {"bf16 channels_last, compiled": 0.0999, "bf16 channels_last, compiled per stage": 0.1}
    fakes({**COMPILED, **barely})
    fast = settle(fakes, auto(compile="auto"), workload(100_000))
    assert fast.settings()["compile"] is False
    assert fast.compile_reason.startswith("not compiled: compiled whole")
    assert "saves ~10 s over 100,000 steps against ~15 s of warm-up" in fast.compile_reason


def test_the_warm_up_estimate_learns_this_device_s_compile_rate(fakes):
    fakes(COMPILED, warmup=60.0)
    w = workload(100_000)
    leaves = sum(1 for m in w.model.modules() if next(m.children(), None) is None)
    before = compile_choice.warmup_estimate(w, fakes.cache)
    assert before == pytest.approx(compile_choice.COMPILE_S_PER_MODULE * leaves)
    settle(fakes, auto(compile="auto"), w)  # times both compiled variants: 60 s warm-up each
    assert compile_choice.warmup_estimate(w, fakes.cache) == pytest.approx(60.0, rel=1e-3)
    bigger = workload(100_000, model=nn.Sequential(Staged(), Staged()), name="bigger")
    assert compile_choice.warmup_estimate(bigger, fakes.cache) == pytest.approx(120.0, rel=1e-3)


def test_a_grid_weighs_its_models_by_their_planned_steps(fakes, monkeypatch):
    # bf16 wins on one model and loses on the other; the longer-running one decides.
    steps = fakes(EAGER)
    seconds = {"se": EAGER, "plain": XEON}

    def per_model(w, mode):
        steps.seconds = seconds[w.key["model"]]
        return steps(w, mode)

    monkeypatch.setattr(step_race, "build_step", per_model)
    fast = settle(fakes, auto(), workload(3000, name="se"), workload(30000, name="plain"))
    assert fast.mode == Mode("none", True)
    assert set(fast.timings) == {"se", "plain"}
    assert "weighted by their planned steps" in fast.reason


def test_a_grid_over_a_models_arguments_shows_each_models_timings(fakes):
    fakes(EAGER)
    r4 = workload(3000, model_kwargs={"reduction": 4})
    r16 = workload(3000, model_kwargs={"reduction": 16})
    fast = settle(fakes, auto(), r4, r16)
    assert set(fast.timings) == {'staged {"reduction": 4}', 'staged {"reduction": 16}'}


def test_a_resumed_run_keeps_the_checkpoint_s_choice():
    state = {
        "config": {"train": {"amp": "bf16", "channels_last": True, "compile": "stages"}},
        "fast_path": {"source": "measured", "timings": {"m": []}},
    }
    fast = recorded_fast_path(auto(compile="auto"), state)
    assert fast.mode == Mode("bf16", True, "stages") and fast.source == "checkpoint"
    assert "first settled: measured" in fast.reason and fast.timings == {"m": []}
    explicit = recorded_fast_path(auto(compile=False), state)
    assert explicit.mode == Mode("bf16", True, "none")
    assert recorded_fast_path(TrainConfig(), state) is None  # nothing auto: nothing to keep


class OtherRank(World):
    """Rank 1 of two: ``main_result`` hands over what rank 0 settled, without running ``fn``."""

    def main_result(self, fn):
        return FastPath(Mode("bf16", True), "measured", "rank 0's timing")


def test_under_ddp_rank_0_settles_and_every_rank_uses_its_choice(monkeypatch):
    from senet.train import job

    monkeypatch.setattr(job, "settle_fast_path", lambda *a, **k: pytest.fail("rank 1 timed"))
    config = Config()
    config.train.amp, config.train.channels_last = "auto", "auto"
    fast = job._settle_fast_path(config, OtherRank(rank=1, world_size=2), None, workload(3000))
    assert fast.reason == "rank 0's timing"
    assert (config.train.amp, config.train.channels_last) == ("bf16", True)


def test_fast_path_records_round_trip():
    fast = FastPath(Mode("bf16", True, "stages"), "measured", "why", "compiled", {"m": []})
    data = fast.to_dict()
    assert data["amp"] == "bf16" and data["compile"] == "stages"
    assert data["label"] == "bf16 channels_last, compiled per stage"
    assert FastPath.from_dict(data) == fast
    assert fast_path.compile_how(True) == "model"
