"""train.amp/channels_last/compile auto in a real run: timed, logged, recorded in config.yaml and
summary.json, kept on resume; explicit modes the run cannot take are refused by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from _tiny_models import QUICK, tiny_models_registered

from senet.config import ConfigError
from senet.models import precision
from senet.models.precision import candidate_modes
from senet.train import load_config, read_weights, train

CLI = Path(__file__).resolve().parent / "_senet_cli.py"
# 600 steps of a tiny model (2 epochs x 300): just long enough that timing 3 candidates fits
# in 2% of the run (2 timed steps each, after a probe and a first step).
LONG_ENOUGH = [
    *QUICK,
    "data.image_size=8",
    "data.synthetic_train=2400",
    "data.batch_size=8",
    "train.epochs=2",
    "train.amp=auto",
    "train.channels_last=auto",
    "train.compile=auto",
    "log.progress=plain",
    "log.log_every=1000",
    "log.plots=false",
    "log.tensorboard=false",
]


@pytest.fixture(autouse=True)
def _registered_tiny_models():
    with tiny_models_registered():
        yield


def _senet_train(recipe: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(CLI), "train", str(recipe), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
def test_auto_is_timed_recorded_and_kept_on_resume(tmp_path):
    run, recipe = tmp_path / "run", tmp_path / "recipe.yaml"
    recipe.write_text("{}\n")  # the defaults; the overrides say the rest
    out = _senet_train(recipe, *LONG_ENOUGH, f"output_dir={run}")
    saved = load_config(run / "config.yaml").train
    summary = json.loads((run / "summary.json").read_text())
    fast = summary["fast_path"]
    assert fast["source"] == "measured"
    # config.yaml holds the resolved values, the same the summary records with the timings.
    assert (saved.amp, saved.channels_last, saved.compile) == (
        fast["amp"],
        fast["channels_last"],
        fast["compile"],
    )
    assert saved.amp in ("none", "bf16") and saved.compile is False  # 600 steps: never compiled
    names = [row["name"] for row in fast["timings"]["_test_tinynet"]]
    assert names == [m.label for m in candidate_modes("cpu")]
    assert all(row["status"] in ("timed", "dropped") for row in fast["timings"]["_test_tinynet"])
    assert f"fast path: {fast['label']} (measured: fastest of" in out
    assert "candidate" in out and "median step" in out and "compile: not compiled" in out
    cache = Path(os.environ["SENET_CACHE_DIR"]) / "speed"
    assert len(list(cache.glob("*.json"))) == 1
    for entry in cache.glob("*.json"):
        entry.unlink()
    # The same command resumed: the checkpoint's choice is kept, nothing is timed again.
    out = _senet_train(recipe, "--resume", "auto", *LONG_ENOUGH, f"output_dir={run}")
    assert "(checkpoint: kept from the checkpoint (first settled: measured))" in out
    assert not list(cache.glob("*.json"))
    assert load_config(run / "config.yaml").train == saved
    again = json.loads((run / "summary.json").read_text())["fast_path"]
    assert again["source"] == "checkpoint" and again["timings"] == fast["timings"]
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["amp"] == saved.amp


@pytest.mark.slow
def test_a_run_that_measured_trains_exactly_as_one_given_that_mode(tmp_path):
    # Timing the candidates (on copies, random state restored) changes nothing the run computes.
    timed = train(load_config(None, [*LONG_ENOUGH, f"output_dir={tmp_path / 'timed'}"]))
    assert timed.fast_path["source"] == "measured"
    mode = [f"train.{k}={str(timed.fast_path[k]).lower()}" for k in ("amp", "channels_last")]
    given = train(load_config(None, [*LONG_ENOUGH, *mode, f"output_dir={tmp_path / 'given'}"]))
    assert given.fast_path["source"] == "as set"
    expected, _ = read_weights(tmp_path / "given" / "last.safetensors")
    got, _ = read_weights(tmp_path / "timed" / "last.safetensors")
    for key in expected:
        assert torch.equal(expected[key], got[key]), key


def test_explicit_bf16_on_a_cpu_without_bf16_hardware_says_it_is_likely_emulated(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: False)
    overrides = [*QUICK, "log.progress=plain", "train.epochs=1", "train.amp=bf16"]
    summary = train(load_config(None, [*overrides, f"output_dir={tmp_path / 'run'}"]))
    out = capsys.readouterr().out
    assert "fast path: bf16 NCHW (as set: set in the config)" in out
    assert "no bf16 hardware (AMX/AVX512-BF16): bf16 is likely emulated" in out
    assert summary.fast_path["source"] == "as set"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.compile=stages"], "train.compile=stages: this model has no residual stages"),
        (["train.amp=fp16", "train.device=cpu"], "train.amp=fp16 needs a CUDA device"),
    ],
)
def test_an_explicit_mode_the_run_cannot_take_is_refused_by_name(tmp_path, overrides, message):
    config = [*QUICK, *overrides, f"output_dir={tmp_path / 'run'}"]
    with pytest.raises(ConfigError, match=message):
        train(load_config(None, config))
    assert not (tmp_path / "run").exists()  # refused before the run folder was made
