"""train.amp=auto / train.channels_last=auto: resolved for the device, logged, saved, resumable."""

from __future__ import annotations

import pytest
from _tiny_models import QUICK, tiny_models_registered

from senet.models import precision
from senet.train import load_config, train


@pytest.fixture(autouse=True)
def _registered_tiny_models():
    with tiny_models_registered():
        yield


@pytest.mark.parametrize(
    ("hardware", "amp", "layout", "log_line"),
    [
        (True, "bf16", True, "precision: bf16 autocast, channels_last (auto: bf16 autocast (CPU"),
        (False, "none", False, "precision: fp32, NCHW (auto: fp32 (cpu without bf16 hardware))"),
    ],
)
def test_auto_resolves_logs_and_saves_the_choice(
    tmp_path, monkeypatch, capsys, hardware, amp, layout, log_line
):
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: hardware)
    out = tmp_path / "run"
    overrides = [*QUICK, "log.progress=plain", "train.epochs=1", "train.amp=auto"]
    overrides.append("train.channels_last=auto")
    train(load_config(None, [*overrides, f"output_dir={out}"]))
    saved = load_config(out / "config.yaml").train
    assert (saved.amp, saved.channels_last) == (amp, layout)
    assert log_line in capsys.readouterr().out
    # The same command resumes: auto resolves the same way before the configs are compared.
    train(load_config(None, [*overrides, f"output_dir={out}"]), resume="auto")


def test_explicit_bf16_on_a_cpu_without_bf16_hardware_says_it_is_emulated(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: False)
    overrides = [*QUICK, "log.progress=plain", "train.epochs=1", "train.amp=bf16"]
    train(load_config(None, [*overrides, f"output_dir={tmp_path / 'run'}"]))
    assert "no bf16 hardware: emulated, slower than fp32" in capsys.readouterr().out
