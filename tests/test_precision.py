"""What a device offers `auto` to time: the candidate modes, and the hardware's bf16 report."""

import pytest
import torch

from senet.models import precision
from senet.models.precision import Mode, candidate_modes


def test_the_real_bf16_probe_agrees_with_the_cpu_flags():
    # Unmocked, once: torch's private probes exist (a rename must fail here, not turn bf16 off
    # silently) and say what /proc/cpuinfo says.
    assert callable(torch.cpu._is_avx512_bf16_supported)
    assert callable(torch.cpu._is_amx_tile_supported)
    flags = precision._cpuinfo_flags()
    if not flags:
        pytest.skip("no /proc/cpuinfo flags to compare with on this system")
    assert precision.cpu_has_fast_bf16() == bool({"avx512_bf16", "amx_tile"} & flags)


def test_a_missing_torch_probe_falls_back_to_the_cpu_flags(monkeypatch):
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    monkeypatch.setattr(precision, "_cpuinfo_flags", lambda: {"avx512f", "avx512_bf16"})
    assert precision.cpu_has_fast_bf16()
    monkeypatch.setattr(precision, "_cpuinfo_flags", lambda: {"avx512f"})
    assert not precision.cpu_has_fast_bf16()


@pytest.mark.parametrize(
    ("bf16", "amp", "channels_last", "expected"),
    [
        (True, "auto", "auto", ["fp32 NCHW", "fp32 channels_last", "bf16 channels_last"]),
        (False, "auto", "auto", ["fp32 NCHW", "fp32 channels_last"]),
        (True, "bf16", "auto", ["bf16 NCHW", "bf16 channels_last"]),
        (True, "auto", False, ["fp32 NCHW", "bf16 NCHW"]),
        (True, "none", True, ["fp32 channels_last"]),
    ],
)
def test_cpu_candidates_keep_what_is_set(monkeypatch, bf16, amp, channels_last, expected):
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: bf16)
    assert [m.label for m in candidate_modes("cpu", amp, channels_last)] == expected


def test_fp16_is_never_a_cpu_candidate(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: True)
    assert precision.reduced_precisions("cpu") == ["bf16"]


def test_mode_labels_name_the_compilation():
    assert Mode("bf16", True, "stages").label == "bf16 channels_last, compiled per stage"
    assert Mode("none", False, "model").label == "fp32 NCHW, compiled"
    assert Mode().dtype == torch.float32


def test_this_machine_is_described():
    text = precision.describe_cpu()
    assert "threads" in text and ("bf16" in text)
