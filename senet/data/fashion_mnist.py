"""Fashion-MNIST: Debian's dataset-fashion-mnist files when present, else torchvision's download."""

from __future__ import annotations

import gzip
import shutil
import tempfile
from math import prod
from pathlib import Path

import torch
from torchvision.datasets import FashionMNIST

from senet.data.base import DataError, DatasetInfo, default_data_root
from senet.data.memory import InMemoryImages

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
    root: str | Path | None = None, *, download: bool = False, system_dir: Path = SYSTEM_DIR
) -> Path:
    """Make ``<root>/FashionMNIST/raw`` hold the four IDX files torchvision reads; return root.

    Order: files already there; else decompress Debian's ``.gz`` files from ``system_dir`` (the
    only copy made: torchvision reads uncompressed IDX); else torchvision's download when
    ``download``; else a DataError that names both ways to get the data.
    """
    root = Path(root) if root is not None else default_data_root()
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


def check_idx_file(path: Path) -> None:
    """Raise a DataError naming ``path`` when its size differs from what its IDX header promises
    (a truncated or damaged copy, which torchvision's reader fails on with a reshape error)."""
    with open(path, "rb") as f:
        header = f.read(4)
        ndim = header[3] if len(header) == 4 else 0
        dims = f.read(4 * ndim)
    expected = None
    if len(header) == 4 and header[:2] == b"\0\0" and len(dims) == 4 * ndim:
        expected = (
            4
            + 4 * ndim
            + prod(int.from_bytes(dims[i : i + 4], "big") for i in range(0, 4 * ndim, 4))
        )
    size = path.stat().st_size
    if expected != size:
        promised = f"its header promises {expected:,}" if expected else "it has no IDX header"
        raise DataError(
            f"{path} is damaged: {size:,} bytes, but {promised} (a truncated or partial copy). "
            f"Delete it and run again: senet restores it from {SYSTEM_DIR} (or, with "
            "data.download=true, downloads it)"
        )


def load_fashion_mnist(
    split: str, *, root: str | Path | None = None, download: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, 1, 28, 28) and labels of the ``train`` or ``val`` (test) split."""
    root = prepare_fashion_mnist(root, download=download)
    prefix = "train" if split == "train" else "t10k"
    for kind in ("images-idx3", "labels-idx1"):
        check_idx_file(root / "FashionMNIST" / "raw" / f"{prefix}-{kind}-ubyte")
    ds = FashionMNIST(str(root), train=split == "train", download=False)
    return ds.data.unsqueeze(1), ds.targets


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
    images, targets = load_fashion_mnist(split, root=root, download=download)
    return InMemoryImages(
        images, targets, mean=mean, std=std, augment=augment, pad=pad, classes=CLASSES
    )


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(
            f"cannot create {path} to arrange Fashion-MNIST ({e.strerror}); set data.root to a "
            "writable folder or SENET_DATA in the environment"
        ) from e
