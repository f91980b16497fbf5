"""The models layer's errors: each names the ``create_model`` argument it is about."""

from __future__ import annotations

from typing import Any

_UNSET: Any = object()


class ModelError(ValueError):
    """A model name, argument or weights file that ``create_model`` cannot use.

    ``argument`` is the ``create_model`` argument at fault (``"name"``, ``"pretrained"``,
    ``"pretrained_head"``, ``"in_chans"``, ``"retrofit"``, ``"stn"``) and ``reason`` what is
    wrong with it; the message reads ``argument=value: reason``. The config layer says the same
    with its own key (``model.weights=...: reason``).
    """

    argument = "name"

    def __init__(self, reason: str, *, argument: str | None = None, value: Any = _UNSET) -> None:
        if argument is not None:
            self.argument = argument
        self.reason = reason
        shown = reason if value is _UNSET else f"{self.argument}={value}: {reason}"
        super().__init__(shown)


class CheckpointError(ModelError, RuntimeError):
    """A checkpoint or weights file that cannot be read or written, or whose keys or shapes do
    not fit the model. (Also a RuntimeError: callers of torch's loaders catch that.)"""

    argument = "pretrained"
