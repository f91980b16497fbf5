"""What a loader does with items that cannot be read: stop with the item's own DataError (also
from a worker process), or skip unreadable images, naming and counting each.

torch re-raises a worker's exception as ``DataError("Caught DataError in DataLoader worker
process 0. Original Traceback ...")``, with the traceback text as its message. Here a worker
instead returns the failure as a value (``ItemsWithErrors``), the batch carries it
(``collate_reporting``) and the main process raises the original error, message unchanged
(``ReportingLoader``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from torch.utils.data import DataLoader, Dataset, default_collate

from senet.data.base import BadImageError, DataError

ON_BAD_IMAGE = ("stop", "skip")

log = logging.getLogger("senet.data")


@dataclass(frozen=True)
class _Failed:
    error: DataError


@dataclass(frozen=True)
class _Skipped:
    path: str
    reason: str


@dataclass(frozen=True)
class _Report:
    """A batch with something to report: the error to raise, or the images skipped."""

    error: DataError | None = None
    skipped: tuple[_Skipped, ...] = ()
    batch: Any = None  # the readable items, collated; None when none was readable


class ItemsWithErrors(Dataset):
    """``dataset[key]``, or the DataError it raised as a value (a skipped image, when
    ``skip_bad_images``), so the error reaches the main process whole."""

    def __init__(self, dataset: Dataset, *, skip_bad_images: bool = False) -> None:
        self.dataset = dataset
        self.skip_bad_images = skip_bad_images

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: Any) -> Any:
        try:
            return self.dataset[key]
        except BadImageError as e:
            return _Skipped(e.path, e.reason) if self.skip_bad_images else _Failed(e)
        except DataError as e:
            return _Failed(e)


def collate_reporting(items: list[Any]) -> Any:
    """``default_collate`` of the readable items; a ``_Report`` when an item failed or was
    skipped."""
    failed = [item for item in items if isinstance(item, _Failed)]
    if failed:
        return _Report(error=failed[0].error)
    skipped = tuple(item for item in items if isinstance(item, _Skipped))
    if not skipped:
        return default_collate(items)
    readable = [item for item in items if not isinstance(item, _Skipped)]
    return _Report(skipped=skipped, batch=default_collate(readable) if readable else None)


class ReportingLoader(DataLoader):
    """A DataLoader over ``ItemsWithErrors`` with ``collate_reporting``: it raises an item's
    DataError as it was raised, and logs each image it skipped (once per file);
    ``skipped_images`` maps each skipped file to the reason.

    A batch of nothing but unreadable images is left out: under DDP that rank then takes one
    step fewer than the others, so keep batches larger than any run of broken files.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.skipped_images: dict[str, str] = {}

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        for batch in super().__iter__():
            if not isinstance(batch, _Report):
                yield batch
                continue
            if batch.error is not None:
                raise batch.error
            self._note(batch.skipped)
            if batch.batch is not None:  # a batch with no readable image is left out
                yield batch.batch

    def _note(self, skipped: tuple[_Skipped, ...]) -> None:
        for item in skipped:
            if item.path not in self.skipped_images:
                self.skipped_images[item.path] = item.reason
                log.warning(
                    "skipped unreadable image %s (%s); %d skipped so far",
                    item.path,
                    item.reason,
                    len(self.skipped_images),
                )


def skipped_note(*loaders: DataLoader) -> str | None:
    """One line on the images ``loaders`` skipped (the first few named), or None if none."""
    skipped: dict[str, str] = {}
    for loader in loaders:
        skipped |= getattr(loader, "skipped_images", {})
    if not skipped:
        return None
    named = ", ".join(list(skipped)[:3]) + (", ..." if len(skipped) > 3 else "")
    return f"{len(skipped)} unreadable images skipped (on_bad_image='skip'): {named}"
