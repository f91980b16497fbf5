"""Evaluate a model's weights (top-1/top-5, per class, confusion) and compare finished runs."""

# The eval loop and device choice are train's; evaluation re-exports them for its users.
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
from senet.train.epoch import evaluate

__all__ = [
    "EvalSource",
    "EvaluationReport",
    "EvaluationSetup",
    "PreparedEvaluation",
    "compare_runs",
    "comparison_table",
    "evaluate",
    "evaluate_weights",
    "per_class_table",
    "prepare_evaluation",
    "resolve_device",
    "resolve_source",
    "run_folder_source",
]
