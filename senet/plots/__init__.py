"""Figures that several stages draw: training curves, run overlays, confusion matrices, the
spatial transformer's rectified images and a profiled model's roofline. Depends on models
only (never train, evaluation or analysis), so every stage may use it."""

from senet.plots.backend import pyplot
from senet.plots.confusion import plot_confusion
from senet.plots.curves import plot_curves, plot_overlay
from senet.plots.roofline import check_plot_path, plot_roofline
from senet.plots.stn import find_stn, rectified_pairs, save_rectified

__all__ = [
    "check_plot_path",
    "find_stn",
    "plot_confusion",
    "plot_curves",
    "plot_overlay",
    "plot_roofline",
    "pyplot",
    "rectified_pairs",
    "save_rectified",
]
