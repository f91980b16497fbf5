"""Evaluate a model's weights (top-1/top-5, per class, confusion) and compare finished runs."""

from senet.evaluation.report import (
    EvaluationSetup,
    compare_runs,
    comparison_table,
    evaluate_weights,
    per_class_table,
    prepare_evaluation,
)

__all__ = [
    "EvaluationSetup",
    "compare_runs",
    "comparison_table",
    "evaluate_weights",
    "per_class_table",
    "prepare_evaluation",
]
