"""Datasets and loaders: normalisation, the paper's augmentation, seeding, clear errors."""

from __future__ import annotations

import gzip
import shutil
import struct
import threading

import pytest
import torch

from senet.data import (
    DataError,
    InMemoryImages,
    create_dataset,
    create_loader,
    prepare_fashion_mnist,
    set_epoch,
)
from senet.data.fashion_mnist import SYSTEM_DIR


def test_normalisation_is_exact():
    images = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 3, 2, 2)
    ds = InMemoryImages(images.clone(), torch.tensor([0, 1]), mean=(0.5,), std=(0.25,))
    assert torch.equal(ds[0][0], torch.full((3, 2, 2), -2.0))
    assert torch.equal(ds[1][0], torch.full((3, 2, 2), 2.0))
    assert ds[1][1] == 1


def test_augmentation_is_a_flip_and_a_padded_crop():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (1, 1, 6, 6), dtype=torch.uint8)
    ds = InMemoryImages(images, torch.tensor([0]), mean=(0.0,), std=(1 / 255,), augment=True, pad=2)
    plain = images[0].float()  # with this mean/std the normalised image is the raw value
    padded = torch.nn.functional.pad(plain, (2,) * 4)
    candidates = [
        view[:, i : i + 6, j : j + 6]
        for view in (padded, padded.flip(-1))
        for i in range(5)
        for j in range(5)
    ]
    outputs = [ds[0][0] for _ in range(200)]
    for out in outputs:
        assert any(torch.equal(out, c) for c in candidates)
    distinct = {tuple(o.flatten().tolist()) for o in outputs}
    assert len(distinct) > 20  # it really varies (50 possible views)


def test_synthetic_is_seeded_and_splits_share_classes():
    a, info = create_dataset("synthetic", "train", size=40, num_classes=4, image_size=8, seed=1)
    b, _ = create_dataset("synthetic", "train", size=40, num_classes=4, image_size=8, seed=1)
    c, _ = create_dataset("synthetic", "train", size=40, num_classes=4, image_size=8, seed=2)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert (info.num_classes, info.in_chans, info.image_size) == (4, 3, 8)
    assert torch.bincount(a.targets).tolist() == [10, 10, 10, 10]


def test_train_loader_order_depends_on_seed_and_epoch_only():
    ds = torch.utils.data.TensorDataset(torch.arange(20).float(), torch.arange(20))
    loader = create_loader(ds, batch_size=4, train=True, seed=5)

    def order(epoch):
        set_epoch(loader, epoch)
        return torch.cat([y for _, y in loader]).tolist()

    assert order(1) == order(1) and order(1) != order(2)
    assert sorted(order(3)) == list(range(20))
    val = create_loader(ds, batch_size=6, train=False)
    assert torch.cat([y for _, y in val]).tolist() == list(range(20))  # ordered, no drop


def _augmented(size: int = 40) -> InMemoryImages:
    ds, _ = create_dataset("synthetic", "train", size=size, image_size=8, augment=True, seed=3)
    return ds


def test_two_ranks_see_the_single_process_batches_with_the_same_augmentation():
    ds = _augmented()
    one = create_loader(ds, batch_size=8, train=True, seed=7)
    ranks = [
        create_loader(ds, batch_size=4, train=True, seed=7, num_replicas=2, rank=r) for r in (0, 1)
    ]
    for loader in (one, *ranks):
        set_epoch(loader, 2)
    assert len(one) == len(ranks[0]) == len(ranks[1]) == 5
    torch.manual_seed(123)  # the training process's own stream plays no part
    for (x, y), (x0, y0), (x1, y1) in zip(one, *ranks, strict=True):
        # Sample j of the step sits on rank j % 2: the same image, flipped and cropped alike.
        assert torch.equal(x[0::2], x0) and torch.equal(x[1::2], x1)
        assert torch.equal(y[0::2], y0) and torch.equal(y[1::2], y1)


def test_augmentation_ignores_workers_and_leaves_the_global_stream_alone():
    ds = _augmented(16)
    batches = []
    for workers in (0, 1):
        loader = create_loader(ds, batch_size=4, train=True, seed=1, workers=workers)
        set_epoch(loader, 0)
        torch.manual_seed(5)
        expected = torch.rand(3)
        torch.manual_seed(5)
        batches.append(torch.cat([x for x, _ in loader]))
        assert torch.equal(torch.rand(3), expected)  # the loader drew nothing from it
    assert torch.equal(batches[0], batches[1])
    set_epoch(loader, 1)
    assert not torch.equal(torch.cat([x for x, _ in loader]), batches[0])  # a new epoch varies


def test_a_loader_can_start_part_way_into_an_epoch():
    ds = _augmented()
    loader = create_loader(ds, batch_size=8, train=True, seed=2)
    set_epoch(loader, 4)
    full = [x for x, _ in loader]
    set_epoch(loader, 4, skip_batches=3)
    assert len(loader) == 2
    tail = [x for x, _ in loader]
    assert all(torch.equal(a, b) for a, b in zip(full[3:], tail, strict=True))
    set_epoch(loader, 5)
    assert len(loader) == 5  # the next epoch starts at its beginning again


def test_evaluation_shards_count_every_image_once():
    ds = torch.utils.data.TensorDataset(torch.zeros(11, 1), torch.arange(11))
    seen = [
        torch.cat(
            [y for _, y in create_loader(ds, batch_size=3, train=False, num_replicas=3, rank=r)]
        )
        for r in range(3)
    ]
    assert [len(s) for s in seen] == [4, 4, 3]
    assert sorted(torch.cat(seen).tolist()) == list(range(11))  # no padding, no repeats


def test_train_loader_drops_the_partial_last_batch():
    ds = torch.utils.data.TensorDataset(torch.zeros(10, 1), torch.zeros(10))
    assert len(create_loader(ds, batch_size=4, train=True)) == 2
    assert len(create_loader(ds, batch_size=16, train=True)) == 1  # keep one batch rather than 0


def _write_idx(path, array: torch.Tensor) -> None:
    magic = 0x0800 + array.dim()
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", s) for s in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.to(torch.uint8).numpy().tobytes())


def test_fashion_mnist_is_arranged_from_debian_files(tmp_path):
    system = tmp_path / "system"
    system.mkdir()
    images = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    labels = torch.tensor([3, 1, 4, 1, 5], dtype=torch.uint8)
    for prefix in ("train", "t10k"):
        _write_idx(system / f"{prefix}-images-idx3-ubyte.gz", images)
        _write_idx(system / f"{prefix}-labels-idx1-ubyte.gz", labels)
    root = prepare_fashion_mnist(tmp_path / "cache", system_dir=system)
    from torchvision.datasets import FashionMNIST

    ds = FashionMNIST(str(root), train=True)
    assert torch.equal(ds.data, images) and ds.targets.tolist() == [3, 1, 4, 1, 5]
    assert not list((root / "FashionMNIST" / "raw").glob(".*"))  # no temporary files left


def test_fashion_mnist_prepared_by_two_runs_at_once(tmp_path, monkeypatch):
    # Two runs started side by side on a fresh machine both decompress the first file; holding
    # both inside the copy makes the overlap certain (a shared temporary name lost one run).
    system = tmp_path / "system"
    system.mkdir()
    images = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    for prefix in ("train", "t10k"):
        _write_idx(system / f"{prefix}-images-idx3-ubyte.gz", images)
        _write_idx(system / f"{prefix}-labels-idx1-ubyte.gz", torch.arange(5))
    barrier, seen = threading.Barrier(2), threading.local()
    copy = shutil.copyfileobj

    def copy_together(src, dst):
        if not getattr(seen, "waited", False):
            seen.waited = True
            barrier.wait(timeout=30)
        copy(src, dst)

    monkeypatch.setattr(shutil, "copyfileobj", copy_together)
    errors = []

    def prepare():
        try:
            prepare_fashion_mnist(tmp_path / "cache", system_dir=system)
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=prepare) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    from torchvision.datasets import FashionMNIST

    assert torch.equal(FashionMNIST(str(tmp_path / "cache"), train=False).data, images)
    assert not list((tmp_path / "cache" / "FashionMNIST" / "raw").glob(".*"))


def test_missing_fashion_mnist_names_both_ways(tmp_path):
    with pytest.raises(DataError) as err:
        prepare_fashion_mnist(tmp_path / "empty", system_dir=tmp_path / "nowhere")
    message = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in message and "data.download=true" in message


def test_missing_cifar_says_where_and_how(tmp_path):
    with pytest.raises(DataError, match=r"cifar10 not found.*data.download=true"):
        create_dataset("cifar10", "train", root=tmp_path)


def write_cifar(root, name: str, per_file: int, monkeypatch) -> dict[str, torch.Tensor]:
    """A tiny CIFAR in torchvision's on-disk format (pickled batches under its base folder),
    with torchvision's checksum lists pointed at these files. Returns the images and labels."""
    import hashlib
    import pickle

    from torchvision.datasets import CIFAR10, CIFAR100

    cls, classes = (CIFAR10, 10) if name == "cifar10" else (CIFAR100, 100)
    label_key, names_key = ("labels", "label_names") if classes == 10 else ("fine_labels", "fine_label_names")  # fmt: skip
    folder = root / cls.base_folder
    folder.mkdir(parents=True)
    gen = torch.Generator().manual_seed(0)

    def dump(filename: str, obj: object) -> list[str]:
        data = pickle.dumps(obj)
        (folder / filename).write_bytes(data)
        return [filename, hashlib.md5(data).hexdigest()]

    split = {}
    for part, files in (("train", cls.train_list), ("test", cls.test_list)):
        listed, images, labels = [], [], []
        for filename, _ in files:
            x = torch.randint(0, 256, (per_file, 3, 32, 32), dtype=torch.uint8, generator=gen)
            y = torch.randint(0, classes, (per_file,), generator=gen)
            # One image per row: 1024 red, then green, then blue values, row-major.
            listed.append(dump(filename, {"data": x.reshape(per_file, -1).numpy(), label_key: y.tolist()}))  # fmt: skip
            images.append(x)
            labels.append(y)
        monkeypatch.setattr(cls, f"{part}_list", listed)
        split[part] = (torch.cat(images), torch.cat(labels))
    filename, md5 = dump(cls.meta["filename"], {names_key: [f"c{k}" for k in range(classes)]})
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5})
    return split


@pytest.mark.parametrize(("name", "classes", "files"), [("cifar10", 10, 5), ("cifar100", 100, 1)])
def test_cifar_from_the_torchvision_layout(tmp_path, monkeypatch, name, classes, files):
    split = write_cifar(tmp_path, name, 3, monkeypatch)
    mean = {"cifar10": (0.4914, 0.4822, 0.4465), "cifar100": (0.5071, 0.4865, 0.4409)}[name]
    std = {"cifar10": (0.2470, 0.2435, 0.2616), "cifar100": (0.2673, 0.2564, 0.2762)}[name]
    for part, role in (("train", "train"), ("test", "val")):
        ds, info = create_dataset(name, role, root=tmp_path)
        images, labels = split[part]
        assert len(ds) == len(images) == (3 * files if part == "train" else 3)
        assert (info.num_classes, info.in_chans, info.image_size) == (classes, 3, 32)
        for i in (0, len(ds) - 1):
            x, y = ds[i]
            want = (images[i].float() / 255 - torch.tensor(mean)[:, None, None]) / torch.tensor(
                std
            )[:, None, None]
            torch.testing.assert_close(x, want)
            assert y == labels[i]
    assert ds.classes[:2] == ["c0", "c1"] and len(ds.classes) == classes


def test_imagefolder_missing_and_corrupt_image(tmp_path):
    from PIL import Image

    with pytest.raises(DataError, match=r"root=None: imagefolder needs root=PATH"):
        create_dataset("imagefolder", "val")
    with pytest.raises(DataError, match="does not exist"):
        create_dataset("imagefolder", "val", root=tmp_path)
    for cls in ("cat", "dog"):
        (tmp_path / "val" / cls).mkdir(parents=True)
        Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "val" / cls / "ok.png")
    bad = tmp_path / "val" / "dog" / "broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    ds, info = create_dataset("imagefolder", "val", root=tmp_path, image_size=16)
    assert info.classes == ["cat", "dog"] and info.num_classes == 2
    assert ds[0][0].shape == (3, 16, 16)
    with pytest.raises(DataError, match=r"cannot read image .*broken\.jpg"):
        for i in range(len(ds)):
            ds[i]


@pytest.mark.skipif(not SYSTEM_DIR.is_dir(), reason=f"Fashion-MNIST not installed in {SYSTEM_DIR}")
def test_real_fashion_mnist_subset(tmp_path):
    ds, info = create_dataset("fashion_mnist", "val", root=tmp_path, size=100)
    x, y = ds[0]
    assert len(ds) == 100 and x.shape == (1, 28, 28) and info.classes[0] == "T-shirt/top"
    assert y == 9  # the first test image is an ankle boot
