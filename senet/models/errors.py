"""The models layer's errors: each names the ``create_model`` argument it is about."""

from __future__ import annotations


class ModelError(ValueError):
    """A model name, argument or weights file that ``create_model`` cannot use.

    ``argument`` is the ``create_model`` argument at fault (``"name"``, ``"pretrained"``,
    ``"pretrained_head"``, ``"in_chans"``, ``"retrofit"``, ``"stn"``); the config layer turns it
    into its own key (``model.weights``, ...).
    """

    argument = "name"

    def __init__(self, message: str, *, argument: str | None = None) -> None:
        super().__init__(message)
        if argument is not None:
            self.argument = argument


class CheckpointError(ModelError, RuntimeError):
    """A checkpoint or weights file that cannot be read or written, or whose keys or shapes do
    not fit the model. (Also a RuntimeError: callers of torch's loaders catch that.)"""

    argument = "pretrained"
