"""Gate analysis (paper Sec. 7): excitation per class and depth, specificity, saturation."""

from senet.analysis.gates import (
    BlockGates,
    GateStatistics,
    attention_blocks,
    channel_gate_of,
    collect_gates,
)
from senet.analysis.hidden import HiddenRange, hidden_activation_of
from senet.analysis.plots import plot_class_gates, plot_specificity
from senet.analysis.run import (
    GateAnalysis,
    analysis_table,
    analyze_weights,
    saturation_summary,
)
from senet.analysis.saturation import (
    ConstantGate,
    SaturationEntry,
    freeze_gates,
    saturation_report,
    saturation_table,
)

# A run folder's evaluation source; analysis re-exports it for `senet analyze`'s users.
from senet.evaluation.source import run_folder_source

__all__ = [
    "BlockGates",
    "ConstantGate",
    "GateAnalysis",
    "GateStatistics",
    "HiddenRange",
    "SaturationEntry",
    "analysis_table",
    "analyze_weights",
    "attention_blocks",
    "channel_gate_of",
    "collect_gates",
    "freeze_gates",
    "hidden_activation_of",
    "plot_class_gates",
    "plot_specificity",
    "run_folder_source",
    "saturation_report",
    "saturation_summary",
    "saturation_table",
]
