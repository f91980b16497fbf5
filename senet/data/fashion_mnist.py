"""Fashion-MNIST from its IDX files: where the user put them, Debian's copy, or a download."""

from __future__ import annotations

import gzip
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torchvision.datasets import FashionMNIST

from senet.data._registry import register_dataset
from senet.data.base import (
    DataError,
    DataOptionError,
    DatasetInfo,
    check_flag,
    default_data_root,
)
from senet.data.idx import read_idx
from senet.data.memory import InMemoryImages, InMemoryOptions

SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian package dataset-fashion-mnist
FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
# Statistics of the 60,000 training images (0..1 scale).
MEAN, STD = (0.2860,), (0.3530,)
CLASSES = list(FashionMNIST.classes)


def fashion_mnist_info() -> DatasetInfo:
    return DatasetInfo("fashion_mnist", 10, 1, 28, MEAN, STD, CLASSES)


def prepare_fashion_mnist(
    root: str | Path | None = None, *, download: bool = False, system_dir: Path | None = None
) -> Path:
    """Make ``<root>/FashionMNIST/raw`` hold the four IDX files torchvision reads; return root.

    Order: files already there; else decompress Debian's ``.gz`` files from ``system_dir`` (the
    only copy made: torchvision reads uncompressed IDX); else torchvision's download when
    ``download``; else a DataError that names both ways to get the data.
    """
    root = Path(root) if root is not None else default_data_root()
    system_dir = SYSTEM_DIR if system_dir is None else Path(system_dir)
    raw = root / "FashionMNIST" / "raw"
    if all((raw / name).is_file() for name in FILES):
        return root
    if all((system_dir / f"{name}.gz").is_file() for name in FILES):
        _make_dir(raw)
        for name in FILES:
            if not (raw / name).is_file():
                _decompress(system_dir / f"{name}.gz", raw / name)
        return root
    if download:
        try:
            FashionMNIST(str(root), train=True, download=True)
            FashionMNIST(str(root), train=False, download=True)
        except Exception as e:  # network errors come in many types
            raise DataError(f"downloading Fashion-MNIST into {raw} failed: {e}. {_HOW}") from e
        return root
    raise DataError(f"Fashion-MNIST not found in {raw} nor in {system_dir}. {_HOW}")


def _decompress(source: Path, target: Path) -> None:
    # A temporary name of this process's own, then an atomic rename: a reader never sees a half
    # file, and runs started side by side on a fresh machine do not rename each other's copy away.
    with tempfile.NamedTemporaryFile(
        dir=target.parent, prefix=f".{target.name}.", delete=False
    ) as dst:
        tmp = Path(dst.name)
        try:
            with gzip.open(source, "rb") as src:
                shutil.copyfileobj(src, dst)
        except BaseException:
            dst.close()
            tmp.unlink(missing_ok=True)
            raise
    tmp.replace(target)


_HOW = (
    "Install it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu, as root; files go to "
    f"{SYSTEM_DIR}), or let torchvision download it: data.download=true (needs internet)."
)


def find_fashion_mnist(
    root: str | Path | None = None, *, download: bool = False, system_dir: Path | None = None
) -> dict[str, Path]:
    """The four IDX files to read, by name (see FILES), each plain or ``.gz``.

    Order: the top of ``root`` (where the original download and Debian's package put them),
    then ``<root>/FashionMNIST/raw`` (torchvision's layout), then Debian's ``system_dir``, then
    torchvision's download when ``download``; else a DataError naming both ways to get them.
    Some but not all four files at the top of ``root`` is a DataOptionError: senet does not
    quietly read other files than the ones the user put there.
    """
    root = Path(root) if root is not None else default_data_root()
    system_dir = SYSTEM_DIR if system_dir is None else Path(system_dir)
    raw = root / "FashionMNIST" / "raw"
    top = _files_in(root)
    if top and len(top) < len(FILES):
        missing = ", ".join(name for name in FILES if name not in top)
        raise DataOptionError(
            "root",
            str(root),
            f"holds {', '.join(p.name for p in top.values())} but not {missing}: put all four "
            f"Fashion-MNIST IDX files there (.gz or unpacked), or move them away to read "
            f"{raw} or {system_dir}",
        )
    for folder in (root, raw, system_dir):
        if len(found := _files_in(folder)) == len(FILES):
            return found
    if download:
        try:
            FashionMNIST(str(root), train=True, download=True)
            FashionMNIST(str(root), train=False, download=True)
        except Exception as e:  # network errors come in many types
            raise DataError(f"downloading Fashion-MNIST into {raw} failed: {e}. {_HOW}") from e
        return _files_in(raw)
    raise DataError(f"Fashion-MNIST not found in {root}, {raw} nor {system_dir}. {_HOW}")


def _files_in(folder: Path) -> dict[str, Path]:
    found = {}
    for name in FILES:
        for path in (folder / name, folder / f"{name}.gz"):
            if path.is_file():
                found[name] = path
                break
    return found


def _fix(path: Path, system_dir: Path) -> str:
    """What to do about a damaged file, by where it lies."""
    if path.parent == system_dir:
        return "Reinstall it: apt-get install --reinstall dataset-fashion-mnist (as root)"
    if path.parent.parts[-2:] == ("FashionMNIST", "raw"):  # a copy senet or torchvision made
        return (
            f"Delete it and run again: senet then reads {system_dir} (or, with "
            "data.download=true, downloads it)"
        )
    return "Replace it with a whole copy of the file"


def load_fashion_mnist(
    split: str,
    *,
    root: str | Path | None = None,
    download: bool = False,
    system_dir: Path | None = None,
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """uint8 images (N, 1, 28, 28) and labels of the ``train`` or ``val`` (test) split, and
    the files they came from."""
    system_dir = SYSTEM_DIR if system_dir is None else Path(system_dir)
    files = find_fashion_mnist(root, download=download, system_dir=system_dir)
    prefix = "train" if split == "train" else "t10k"
    images_path = files[f"{prefix}-images-idx3-ubyte"]
    labels_path = files[f"{prefix}-labels-idx1-ubyte"]
    images = read_idx(images_path, fix=_fix(images_path, system_dir))
    labels = read_idx(labels_path, fix=_fix(labels_path, system_dir))
    if images.dim() != 3 or labels.dim() != 1 or len(images) != len(labels):
        raise DataError(
            f"{images_path} and {labels_path} do not pair up: images {tuple(images.shape)}, "
            f"labels {tuple(labels.shape)} (expected (N, 28, 28) and (N,))"
        )
    source = f"{images_path}, {labels_path.name}"
    return images.unsqueeze(1), labels.long(), source


def fashion_mnist_dataset(
    split: str,
    *,
    root: str | Path | None = None,
    download: bool = False,
    augment: bool = False,
    mean: tuple[float, ...] = MEAN,
    std: tuple[float, ...] = STD,
    pad: int = 2,
) -> InMemoryImages:
    """The split as an in-memory dataset; training augmentation: flip, ``pad``-px shift crop."""
    images, targets, _ = load_fashion_mnist(split, root=root, download=download)
    return InMemoryImages(
        images, targets, mean=mean, std=std, augment=augment, pad=pad, classes=CLASSES
    )


@register_dataset("fashion_mnist")
@dataclass(frozen=True, kw_only=True)
class FashionMNISTOptions(InMemoryOptions):
    """Fashion-MNIST (Xiao et al. 2017): 28x28 grey images of 10 garment classes, 60,000 to
    train and 10,000 to validate. ``root``: a folder holding the four IDX files (or
    torchvision's ``FashionMNIST/raw``); else Debian's copy; else, with ``download``,
    torchvision's download."""

    root: str | Path | None = None
    download: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check_flag("download", self.download)

    def build(self, split: str) -> tuple[InMemoryImages, DatasetInfo]:
        images, targets, source = load_fashion_mnist(split, root=self.root, download=self.download)
        info = replace(fashion_mnist_info(), source=f"Fashion-MNIST {split}: {source}")
        return self.make(images, targets, info, pad=2)


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(
            f"cannot create {path} to arrange Fashion-MNIST ({e.strerror}); set data.root to a "
            "writable folder or SENET_DATA in the environment"
        ) from e
