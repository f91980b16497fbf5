"""Figures that several stages draw: training curves, run overlays, confusion matrices and the
spatial transformer's rectified images. Depends on models only (never train, evaluation or
analysis), so every stage may use it."""
