"""senet.models.race: the fastest candidate wins, a far slower one is dropped at once, failures
are named. Timed with a fake clock: the fake steps advance it, nothing real is measured."""

from __future__ import annotations

import pytest

from senet.models.race import Candidate, NoCandidateRan, RaceResult, race, timing_table


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fake(clock: FakeClock, name: str, seconds: float, calls: list, *, first: float = 0.0):
    """A candidate whose full step takes ``seconds`` (its first one ``first`` more), its probe
    1/8 of that; every call is logged in ``calls`` as (name, probe)."""
    state = {"full": 0}

    def build():
        def step(probe: bool) -> None:
            calls.append((name, probe))
            extra = first if not probe and state["full"] == 0 else 0.0
            state["full"] += not probe
            clock.now += (seconds / 8 if probe else seconds) + extra

        return step

    return Candidate(name, build)


def test_the_fastest_wins_on_medians_of_interleaved_rounds():
    clock, calls = FakeClock(), []
    candidates = [fake(clock, "a", 0.2, calls), fake(clock, "b", 0.1, calls, first=0.3)]
    result = race(candidates, timed_steps=3, clock=clock)
    assert result.best().name == "b"
    assert result.step_s("a") == pytest.approx(0.2) and result.step_s("b") == pytest.approx(0.1)
    assert result.get("b").first_s == pytest.approx(0.4) and result.get("b").steps == 3
    # Probe and first step one candidate at a time, then rounds that take turns.
    assert calls[:4] == [("a", True), ("a", False), ("b", True), ("b", False)]
    assert calls[4:] == [("a", False), ("b", False)] * 3


def test_a_first_step_over_three_times_the_best_drops_the_candidate_at_once():
    clock, calls = FakeClock(), []
    slow_first = fake(clock, "slow", 0.1, calls, first=0.65)  # first step 0.75 s > 3 x 0.2 s
    result = race([fake(clock, "a", 0.2, calls), slow_first], timed_steps=4, clock=clock)
    dropped = result.get("slow")
    assert dropped.status == "dropped" and dropped.step_s is None
    assert "first step 750 ms > 3x the best so far (200 ms)" in dropped.note
    assert calls.count(("slow", False)) == 1  # never timed in the rounds
    assert result.best().name == "a"


def test_a_probe_over_three_times_the_best_drops_before_a_full_step():
    # An emulated dtype: 40 s a step. Its probe (1/8 of the batch) is all it costs.
    clock, calls = FakeClock(), []
    candidates = [fake(clock, "fp32", 0.2, calls), fake(clock, "emulated", 40.0, calls)]
    result = race(candidates, timed_steps=2, clock=clock)
    assert result.get("emulated").status == "dropped"
    assert "probe step" in result.get("emulated").note
    assert ("emulated", False) not in calls and calls.count(("emulated", True)) == 1


def test_a_failing_candidate_is_named_and_the_others_go_on():
    clock, calls = FakeClock(), []

    def broken():
        raise RuntimeError("no kernel for this dtype\nsecond line")

    candidates = [Candidate("bad", broken), fake(clock, "a", 0.2, calls)]
    result = race(candidates, timed_steps=2, clock=clock)
    assert result.get("bad").status == "failed"
    assert result.get("bad").note == "RuntimeError: no kernel for this dtype"
    assert result.best().name == "a"
    lines = timing_table(result.timings)
    assert any("bad" in ln and "failed: RuntimeError: no kernel" in ln for ln in lines)
    assert any(ln.strip().startswith("a ") and "1.00x" in ln for ln in lines)


def test_every_candidate_failing_raises_naming_each():
    def broken(message):
        def build():
            raise ValueError(message)

        return build

    with pytest.raises(NoCandidateRan, match=r"x: ValueError: one; y: ValueError: two"):
        race([Candidate("x", broken("one")), Candidate("y", broken("two"))], timed_steps=2)


def test_a_race_survives_a_round_trip_through_json():
    clock, calls = FakeClock(), []
    result = race([fake(clock, "a", 0.2, calls)], timed_steps=2, clock=clock)
    assert RaceResult.from_list(result.to_list()) == result
