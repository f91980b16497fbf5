"""Make a package callable as its main function: ``senet.profile(model)`` and
``import senet.profile as p`` / ``mock.patch("senet.profile.counter.x")`` both work."""

from __future__ import annotations

import functools
import sys
import types
from collections.abc import Callable
from typing import Any


def make_callable(module_name: str, function: Callable[..., Any]) -> None:
    """Calling module ``module_name`` calls ``function`` (same signature and docstring)."""

    class CallableModule(types.ModuleType):
        @functools.wraps(function)
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return function(*args, **kwargs)

    sys.modules[module_name].__class__ = CallableModule
