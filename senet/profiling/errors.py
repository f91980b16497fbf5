"""The profiling layer's error."""

from __future__ import annotations


class ProfileError(ValueError):
    """An argument ``senet.profile`` cannot use (the message names it), or a model that could
    not run on the input it was profiled with."""
