"""The demo's fast path (timed, never read from CPU flags) and its reading of the study summary
it ships with."""

import json
from pathlib import Path

import pytest

import senet
import senet.train.fast_path as fast_path_module
from senet.demo import (
    EPOCHS,
    MODELS,
    STUDY_SUMMARY,
    TRAIN_SECONDS,
    demo_configs,
    image_budget,
    load_study_summary,
    study_summary_text,
)
from senet.models.precision import Mode
from senet.models.race import Timing
from senet.train.fast_path import FastPath


def _settled(step_s: dict[str, float], amp: str = "bf16") -> FastPath:
    mode = Mode(amp=amp, channels_last=True, compile="none")
    rows = {
        m: [Timing(mode.label, "timed", step_s=s, steps=3).to_dict()] for m, s in step_s.items()
    }
    return FastPath(mode, "measured", "fastest", timings=rows)


def test_the_budget_follows_the_measured_steps():
    # 0.1 s + 0.15 s a batch of 128 for both models: 300 s / (3 x 0.25 / 128) = 51,200 images.
    fast = _settled({"se": 0.1, "plain": 0.15})
    assert image_budget(fast, 128) == round(TRAIN_SECONDS / (EPOCHS * 0.25 / 128), -3) == 51_000
    assert image_budget(_settled({"se": 5.0, "plain": 5.0}), 128) == 5_000  # floor
    assert image_budget(_settled({"se": 0.001, "plain": 0.001}), 128) == 60_000  # all of it
    assert image_budget(FastPath(fast.mode, "fallback", "measuring failed"), 128) == 20_000


@pytest.mark.parametrize("amp", ["bf16", "none"])
def test_both_models_train_in_the_one_settled_mode(tmp_path, monkeypatch, amp):
    seen = []

    def settle(t, configs, **kwargs):
        seen.append([c.model.name for c in configs])
        return _settled({c.model.name: 0.2 for c in configs}, amp=amp)

    monkeypatch.setattr(fast_path_module, "settle_for_runs", settle)
    configs = demo_configs(tmp_path, [])
    assert seen == [list(MODELS)]  # timed once, for both models
    for config in configs:
        assert (config.train.amp, config.train.channels_last) == (amp, True)
        assert config.train.compile is False and config.train.epochs == EPOCHS
        assert config.data.train_size == image_budget(_settled({"a": 0.2, "b": 0.2}), 128)
        assert config.data.val_size is None  # the full test set
    # The user's budget wins over the measured one.
    mine = demo_configs(tmp_path, ["data.train_size=256", "train.epochs=1"])
    assert [(c.data.train_size, c.train.epochs) for c in mine] == [(256, 1), (256, 1)]


def test_the_shipped_summary_is_a_study_and_the_demo_reads_it():
    study = load_study_summary()
    assert study is not None, f"{STUDY_SUMMARY} is missing"
    assert study["study"] == "fashion_mnist_depth" and study["seeds"] == [0, 1, 2]
    lines = study_summary_text(study).splitlines()[1:]
    assert len(lines) == len(study["pairs"]) == 3
    # Depths 20 and 56 come from an earlier study whose run folders are gone: the demo says so.
    assert [line.endswith("(runs not kept)") for line in lines] == [True, True, False]


def test_the_summary_is_package_data_not_a_file_of_the_repository():
    # An installed wheel has no docs/ folder: the demo reads only what ships inside senet/.
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    assert STUDY_SUMMARY.parent == Path(senet.__file__).parent
    pyproject = tomllib.loads((Path(senet.__file__).parents[1] / "pyproject.toml").read_text())
    assert STUDY_SUMMARY.name in pyproject["tool"]["setuptools"]["package-data"]["senet"]


def test_demo_says_plainly_when_there_are_no_results(tmp_path):
    assert load_study_summary(tmp_path / "absent.json") is None
    for study in (None, {"status": "not yet run", "pairs": []}):
        text = study_summary_text(study)
        assert text.startswith(
            "The full-budget study (docs/results/fashion_mnist.md) has no results"
        )


def test_demo_prints_each_depth_of_a_finished_study(tmp_path):
    seeds = {"0": 93.0, "1": 93.1, "2": 93.2}  # top-1 per seed, as study.json writes it
    study = {
        "status": "partial",
        "finished_runs": 11,
        "total_runs": 12,
        "seeds": [0, 1, 2],
        "recipe": {"epochs": 15, "train_images": 60000},
        "cells": [
            {"label": "name=resnet20_cifar", "shown": "93.10 ± 0.10", "top1": seeds},
            {"label": "name=se_resnet20_cifar", "shown": "93.40 ± 0.10", "top1": seeds},
            {"label": "name=resnet56_cifar", "shown": "94.10 ± 0.10", "top1": seeds},
            {"label": "name=se_resnet56_cifar", "shown": "missing (2/3 seeds; seed 2 failed)",
             "top1": {"0": 94.0, "1": 94.2}, "failed": {"2": "exit code 1"}},
            {"label": "name=resnet110_cifar", "shown": "missing (0/3 seeds; seed 0, 1, 2 not run)",
             "top1": {}, "failed": {}},
            {"label": "name=se_resnet110_cifar",
             "shown": "missing (0/3 seeds; seed 0, 1, 2 not run)", "top1": {}, "failed": {}},
        ],
        "pairs": [
            {"arm": "name=se_resnet20_cifar", "reference": "name=resnet20_cifar",
             "name": "ResNet-20", "shown": "+0.30 [-0.13, +0.73]", "verdict": "no difference"},
            {"arm": "name=se_resnet56_cifar", "reference": "name=resnet56_cifar",
             "name": "ResNet-56", "shown": "missing (seed 2)", "verdict": "incomplete"},
            {"arm": "name=se_resnet110_cifar", "reference": "name=resnet110_cifar",
             "name": "ResNet-110", "shown": "missing (seed 0, 1, 2)", "verdict": "incomplete"},
        ],
    }  # fmt: skip
    path = tmp_path / "fashion_mnist.json"
    path.write_text(json.dumps(study))
    lines = study_summary_text(load_study_summary(path)).splitlines()
    assert lines == [
        "The full study (docs/results/fashion_mnist.md in the senet repository; partial, 11/12 "
        "runs, seeds 0, 1, 2, 60000 images x 15 epochs):",
        "  ResNet-20: baseline 93.10 ± 0.10%, SE 93.40 ± 0.10%, SE - baseline +0.30 [-0.13, +0.73]"
        " points (95% CI): no difference",
        "  ResNet-56: baseline 94.10 ± 0.10%, SE missing (2/3 seeds; seed 2 failed), SE - baseline"
        " not given until every seed is in: missing (seed 2)",
        "  ResNet-110: not run yet",
    ]
