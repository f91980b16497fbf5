"""The dataset registry: names, per-dataset options checked by argument, nothing changed after."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from _idx_files import write_fashion_mnist
from torch.utils.data import TensorDataset

import senet.data._registry as registry
from senet.data import (
    DataOptionError,
    DatasetInfo,
    DatasetOptions,
    InMemoryImages,
    RTSDistorted,
    create_dataset,
    dataset_options,
    list_datasets,
    register_dataset,
)


@pytest.fixture
def own_registry(monkeypatch):
    """Registrations made in the test are gone afterwards."""
    monkeypatch.setattr(registry, "_DATASETS", dict(registry._DATASETS))


@dataclass(frozen=True, kw_only=True)
class CountingOptions(DatasetOptions):
    """``count`` items 0, 1, ... (a dataset a user could register)."""

    count: int = 3

    def __post_init__(self) -> None:
        if self.count < 1:
            raise DataOptionError("count", self.count, "must be >= 1")

    def build(self, split):
        x = torch.arange(self.count, dtype=torch.float32)
        info = DatasetInfo("counting", 1, 1, 1, (0.0,), (1.0,), source=f"counting {split}")
        return TensorDataset(x, x.long()), info


def test_built_in_datasets_are_listed():
    assert list_datasets() == ["cifar10", "cifar100", "fashion_mnist", "imagefolder", "synthetic"]
    assert list_datasets("cifar*") == ["cifar10", "cifar100"]


def test_a_registered_dataset_is_created_by_name_with_its_options(own_registry):
    register_dataset("counting")(CountingOptions)
    assert "counting" in list_datasets()
    assert dataset_options("counting") == ("count", "distort", "distort_canvas")
    dataset, info = create_dataset("counting", "val", count=5)
    assert len(dataset) == 5 and info.source == "counting val"
    with pytest.raises(DataOptionError, match=r"^count=0: must be >= 1$"):
        create_dataset("counting", "val", count=0)


def test_a_duplicate_name_is_refused_and_the_first_stays(own_registry):
    with pytest.raises(DataOptionError, match=r"already registered by senet\.data\.synthetic"):
        register_dataset("synthetic")(CountingOptions)
    dataset, _ = create_dataset("synthetic", "val", size=4)
    assert isinstance(dataset, InMemoryImages)


def test_only_options_dataclasses_register(own_registry):
    with pytest.raises(TypeError, match="takes a DatasetOptions dataclass"):
        register_dataset("plain")(lambda split: None)


@pytest.mark.parametrize(
    ("name", "close"),
    [("fashion-mnist", "fashion_mnist"), ("cifar", "cifar10, cifar100"), ("syntetic", "synthetic")],
)
def test_an_unknown_name_suggests_close_ones(name, close):
    with pytest.raises(DataOptionError, match=rf"unknown dataset; did you mean {close}\?") as err:
        create_dataset(name, "train")
    assert err.value.option == "name" and "registered: cifar10, cifar100" in str(err.value)


def test_an_unknown_option_is_named_with_a_close_one_and_the_datasets_that_take_it(tmp_path):
    root = tmp_path / "fmnist"
    write_fashion_mnist(root)
    with pytest.raises(DataOptionError, match=r"^cutuot=8: .* did you mean cutout\?") as err:
        create_dataset("synthetic", "train", cutuot=8)
    assert "its options: size, augment, cutout," in str(err.value)
    with pytest.raises(DataOptionError, match=r"^num_classes=4: fashion_mnist takes no option"):
        create_dataset("fashion_mnist", "train", root=root, num_classes=4)
    with pytest.raises(DataOptionError, match=r"\(synthetic takes it\)"):
        create_dataset("fashion_mnist", "train", root=root, seed=1)
    with pytest.raises(
        DataOptionError, match=r"^cutout=16: imagefolder takes no option cutout"
    ) as e:
        create_dataset("imagefolder", "train", root=tmp_path, cutout=16)
    assert "(cifar10, cifar100, fashion_mnist, synthetic take it)" in str(e.value)


BAD_OPTIONS = [
    ("synthetic", {"size": 0}, "size", "must be an integer >= 1 or None"),
    ("synthetic", {"synthetic_size": "8"}, "synthetic_size", "must be an integer >= 1"),
    ("synthetic", {"num_classes": 0}, "num_classes", "must be an integer >= 1"),
    ("synthetic", {"channels": 2.0}, "channels", "must be an integer >= 1"),
    ("synthetic", {"augment": "yes"}, "augment", "must be True or False"),
    ("synthetic", {"augment": True, "cutout": -1}, "cutout", "cutout must be a square side"),
    ("synthetic", {"cutout": 8}, "cutout", r"needs augment=True \(Cutout is training"),
    ("synthetic", {"mean": [0.5, 0.5]}, "mean", "needs 1 or 3 values"),
    ("synthetic", {"std": [0.2, 0.0, 0.2]}, "std", "every standard deviation must be > 0"),
    ("synthetic", {"image_size": 0}, "image_size", "must be an integer >= 1"),
    ("synthetic", {"distort": "rotate"}, "distort", "unknown distortion; expected one of none"),
    ("synthetic", {"distort_canvas": 40}, "distort_canvas", "applies only with distort='rts'"),
    (
        "synthetic",
        {"distort": "rts", "distort_canvas": 20},
        "distort_canvas",
        "smaller than the 32",
    ),
    ("fashion_mnist", {"download": "no"}, "download", "must be True or False"),
    ("cifar10", {"size": -1}, "size", ">= 1 or None"),
    ("imagefolder", {}, "root", "imagefolder needs root=PATH"),
    ("imagefolder", {"root": "r", "interpolation": "cubic"}, "interpolation", "expected one of"),
    ("imagefolder", {"root": "r", "eval_resize": 0}, "eval_resize", ">= 1 or None"),
    ("imagefolder", {"root": "r", "distort": "rts"}, "distort", "in-memory datasets .* not on"),
]


@pytest.mark.parametrize(("name", "options", "option", "reason"), BAD_OPTIONS)
def test_each_dataset_checks_its_options_by_argument_before_reading(name, options, option, reason):
    # A root with no data: the option is refused before the dataset looks for its files.
    options = (
        {"root": "/nonexistent", **options} if name in ("fashion_mnist", "cifar10") else options
    )
    with pytest.raises(DataOptionError, match=reason) as err:
        create_dataset(name, "train", **options)
    assert isinstance(err.value, ValueError) and err.value.option == option
    assert str(err.value).startswith(f"{option}={err.value.value!r}: ")
    assert "data." not in str(err.value)  # the argument's name, never a config key


def test_a_bad_split_is_named():
    with pytest.raises(DataOptionError, match=r"^split='test': must be 'train' or 'val'"):
        create_dataset("synthetic", "test")


@pytest.mark.parametrize("distort", [None, "rts"])
def test_building_a_split_twice_gives_the_same_images_and_changes_nothing(tmp_path, distort):
    raw = tmp_path / "FashionMNIST" / "raw"  # torchvision's layout: the copy both builds read
    files = write_fashion_mnist(raw, gz=False)
    options = dict(root=tmp_path, augment=True, cutout=8, image_size=32, distort=distort)
    first, info = create_dataset("fashion_mnist", "train", **options)
    kept = first.images.clone()
    torch.manual_seed(0)
    for i in range(len(first)):  # augmentation and Cutout work on copies
        first[i]
    second, _ = create_dataset("fashion_mnist", "train", **options)
    assert torch.equal(first.images, kept) and torch.equal(second.images, kept)
    side = 48 if distort else 32
    assert kept.shape == (12, 1, side, side) and info.image_size == side and first.cutout == 8
    plain, plain_info = create_dataset("fashion_mnist", "train", root=tmp_path)
    assert torch.equal(plain.images[:, 0], files["train"][0])  # the files' own images
    assert plain_info.image_size == 28 and plain.cutout == 0 and not plain.augment


def test_the_wrappers_leave_the_dataset_they_wrap_as_it_was():
    base, _ = create_dataset("synthetic", "train", size=6, channels=1, image_size=8)
    kept = base.images.clone()
    distorted = RTSDistorted(base, canvas=12, seed=0)
    part = base.subset(3)
    assert distorted.images.shape == (6, 1, 12, 12) and len(part) == 3
    assert base.images.shape == (6, 1, 8, 8) and torch.equal(base.images, kept)
    assert torch.equal(distorted.targets, base.targets) and distorted.mean == base.mean
