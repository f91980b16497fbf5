"""Evaluate a model's weights (top-1/top-5, per class, confusion) and compare finished runs."""

from __future__ import annotations

import warnings
from typing import Any

# The device choice is train's; evaluation re-exports it for its users.
from senet.evaluation.compare import compare_runs, comparison_table
from senet.evaluation.report import EvaluationReport, evaluate_weights, per_class_table
from senet.evaluation.source import (
    EvalSource,
    EvaluationSetup,
    PreparedEvaluation,
    prepare_evaluation,
    resolve_source,
    run_folder_source,
)
from senet.train.distributed import resolve_device

__all__ = [
    "EvalSource",
    "EvaluationReport",
    "EvaluationSetup",
    "PreparedEvaluation",
    "compare_runs",
    "comparison_table",
    "evaluate_weights",
    "per_class_table",
    "prepare_evaluation",
    "resolve_device",
    "resolve_source",
    "run_folder_source",
]


def __getattr__(name: str) -> Any:
    # Renamed in 0.2.0 (CHANGELOG.md): the loop over a loader is senet.train.evaluate_loader.
    if name == "evaluate":
        from senet.train import evaluate_loader

        warnings.warn(
            "senet.evaluation.evaluate is renamed senet.train.evaluate_loader (`senet evaluate` "
            "is senet.evaluation.evaluate_weights); the old name goes in 0.3.0",
            DeprecationWarning,
            stacklevel=2,
        )
        return evaluate_loader
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
