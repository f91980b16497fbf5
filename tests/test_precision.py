"""The fast path's precision choice: bf16 only where the hardware runs it, said in the log."""

import pytest
import torch

from senet.models import precision


@pytest.mark.parametrize(("hardware", "expected"), [(True, "bf16"), (False, "none")])
def test_auto_follows_the_cpu(monkeypatch, hardware, expected):
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: hardware)
    amp, why = precision.choose_amp("auto", "cpu")
    assert amp == expected
    assert why.startswith("auto: ") and ("AMX" in why) == hardware
    assert precision.fast_dtype("cpu") == (torch.bfloat16 if hardware else torch.float32)


def test_explicit_bf16_without_hardware_runs_and_says_it_is_slow(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: False)
    assert precision.choose_amp("bf16", "cpu") == (
        "bf16",
        "this CPU has no bf16 hardware: emulated, slower than fp32",
    )
    assert precision.choose_amp("none", "cpu") == ("none", "as set")


def test_this_machine_is_described():
    text = precision.describe_cpu()
    assert "threads" in text and ("bf16" in text)
