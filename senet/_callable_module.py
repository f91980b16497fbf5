"""Make a package callable as its main function: ``senet.profile(model)`` and
``import senet.profile as p`` / ``mock.patch("senet.profile.profile")`` both work."""

from __future__ import annotations

import functools
import sys
import types
from collections.abc import Callable
from typing import Any


def make_callable(module_name: str, function: Callable[..., Any]) -> None:
    """Calling module ``module_name`` calls its attribute ``function.__name__`` (looked up at
    each call, so a patched attribute is what runs), with ``function``'s docstring."""
    name = function.__name__

    class CallableModule(types.ModuleType):
        @functools.wraps(function)
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return getattr(self, name)(*args, **kwargs)

    sys.modules[module_name].__class__ = CallableModule
