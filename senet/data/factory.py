"""One entry point from a dataset name and its options to a split and its DatasetInfo."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from torch.utils.data import Dataset

# The built-in datasets register themselves when their modules load.
from senet.data import cifar, fashion_mnist, imagefolder, synthetic  # noqa: F401
from senet.data._registry import check_option_names, dataset_class, list_datasets, option_names
from senet.data.base import DataOptionError, DatasetInfo, check_count
from senet.data.distort import DISTORTIONS, RTSDistorted
from senet.data.memory import InMemoryImages, InMemoryOptions

SPLITS = ("train", "val")
# Options create_dataset takes for any dataset: the RTS distortion wrapped around it.
WRAPPER_OPTIONS = ("distort", "distort_canvas")
DATASETS = tuple(list_datasets())  # the built-in names; list_datasets() also lists added ones


def create_dataset(name: str, split: str, **options: Any) -> tuple[Dataset, DatasetInfo]:
    """The ``split`` ("train" or "val") of the registered dataset ``name``, and its info.

    ``options`` go to the dataset's options class (``dataset_options(name)`` lists them; an
    unknown one or a bad value raises a DataOptionError naming it). Every in-memory dataset
    takes ``size`` (first N images), ``augment`` (the paper's flip + pad + crop), ``cutout``,
    ``image_size``, ``mean`` and ``std``. Any dataset takes ``distort="rts"``, which rotates,
    scales and translates every in-memory image once onto a ``distort_canvas``-sided canvas
    (senet.data.distort), the same draw for every run.
    """
    if split not in SPLITS:
        raise DataOptionError("split", split, "must be 'train' or 'val'")
    options_class = dataset_class(name)
    distort = options.pop("distort", None)
    canvas = options.pop("distort_canvas", None)
    _check_distortion(name, distort, canvas)
    check_option_names(name, options, also=WRAPPER_OPTIONS)
    dataset, info = options_class(**options).build(split)
    if distort != "rts":
        return dataset, info
    assert isinstance(dataset, InMemoryImages)  # _check_distortion refused the others
    try:  # one fixed draw per split, the same for every training seed (fair comparisons)
        distorted = RTSDistorted(dataset, canvas=canvas, seed=int(split == "val"))
    except DataOptionError as e:
        raise DataOptionError("distort_canvas", canvas, e.reason) from None
    side = distorted.images.shape[-1]
    source = f"{info.source}, RTS-distorted onto a {side}x{side} canvas"
    return distorted, replace(info, image_size=side, source=source)


def dataset_options(name: str) -> tuple[str, ...]:
    """The options ``create_dataset(name, ...)`` takes."""
    return (*option_names(dataset_class(name)), *WRAPPER_OPTIONS)


def _check_distortion(name: str, distort: object, canvas: object) -> None:
    if distort not in (None, *DISTORTIONS):
        raise DataOptionError(
            "distort", distort, f"unknown distortion; expected one of {', '.join(DISTORTIONS)}"
        )
    if canvas is not None and distort != "rts":
        raise DataOptionError("distort_canvas", canvas, "applies only with distort='rts'")
    check_count("distort_canvas", canvas)
    if distort == "rts" and not issubclass(dataset_class(name), InMemoryOptions):
        in_memory = [n for n in list_datasets() if issubclass(dataset_class(n), InMemoryOptions)]
        raise DataOptionError(
            "distort",
            distort,
            f"the RTS distortion works on the in-memory datasets ({', '.join(in_memory)}), "
            f"not on {name}",
        )
