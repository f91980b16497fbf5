"""Dataset registry: names -> options dataclasses, with fnmatch listing and helpful errors."""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from senet.data.base import DataOptionError, DatasetOptions

_DATASETS: dict[str, type[DatasetOptions]] = {}

Options = TypeVar("Options", bound=type[DatasetOptions])


def register_dataset(name: str) -> Callable[[Options], Options]:
    """Register a ``DatasetOptions`` dataclass as dataset ``name``; a duplicate name is an error.

    Use as ``@register_dataset("my_data")`` on a frozen dataclass whose fields are the
    dataset's options and whose ``build(split)`` returns ``(dataset, DatasetInfo)``.
    """

    def wrap(cls: Options) -> Options:
        if not (isinstance(cls, type) and issubclass(cls, DatasetOptions)):
            raise TypeError(f"register_dataset takes a DatasetOptions dataclass, got {cls!r}")
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__} must be a dataclass: its fields are the options")
        if name in _DATASETS:
            raise DataOptionError(
                "name", name, f"a dataset is already registered by {_DATASETS[name].__module__}"
            )
        _DATASETS[name] = cls
        return cls

    return wrap


def list_datasets(pattern: str | Iterable[str] = "*") -> list[str]:
    """Sorted registered dataset names matching any fnmatch ``pattern``."""
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    return sorted(key for key in _DATASETS if any(fnmatch.fnmatchcase(key, p) for p in patterns))


def dataset_class(name: str) -> type[DatasetOptions]:
    """The options class registered as ``name``; an unknown name suggests close ones."""
    try:
        return _DATASETS[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), _DATASETS, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise DataOptionError(
            "name", name, f"unknown dataset; {hint}registered: {', '.join(list_datasets())}"
        ) from None


def option_names(cls: type[DatasetOptions]) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if f.init)


def check_option_names(
    name: str, options: Mapping[str, Any], *, also: tuple[str, ...] = ()
) -> None:
    """Refuse an option dataset ``name`` does not take (nor ``also``), naming it, a close one
    and the datasets that do take it."""
    known = (*option_names(dataset_class(name)), *also)
    for option, value in options.items():
        if option in known:
            continue
        close = difflib.get_close_matches(option, known, n=1, cutoff=0.6)
        others = [n for n in list_datasets() if option in option_names(_DATASETS[n])]
        hint = f"; did you mean {close[0]}?" if close else ""
        if others:
            hint += f" ({', '.join(others)} {'takes' if len(others) == 1 else 'take'} it)"
        raise DataOptionError(
            option, value, f"{name} takes no option {option}{hint}; its options: {', '.join(known)}"
        )
