"""The demo's fast-path choice and its reading of the study summary it ships with."""

import json
from pathlib import Path

import pytest

import senet
import senet.models.precision as precision
from senet.demo import (
    FAST_BUDGET,
    FP32_BUDGET,
    RECIPE,
    STUDY_SUMMARY,
    fast_path,
    load_study_summary,
    study_summary_text,
)
from senet.train import load_config


@pytest.mark.parametrize("has_bf16", [True, False])
def test_fast_path_follows_the_cpu(monkeypatch, has_bf16):
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: has_bf16)
    overrides, line = fast_path()
    config = load_config(RECIPE, overrides)
    if has_bf16:
        assert config.train.amp == "bf16" and config.train.channels_last is True
        assert overrides[-2:] == list(FAST_BUDGET) and line.startswith("bf16 autocast")
    else:
        assert config.train.amp == "none" and config.train.channels_last is False
        assert overrides[-2:] == list(FP32_BUDGET) and line.startswith("fp32")
    assert config.train.epochs == 3 and config.data.val_size is None  # the full test set


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
