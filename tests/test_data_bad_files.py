"""Bad files on disk: unreadable images (in loader workers too), Fashion-MNIST files where the
user put them, damaged IDX files. Synthetic files only: these tests never skip."""

from __future__ import annotations

import logging

import pytest
import torch
from _idx_files import NAMES, write_fashion_mnist
from PIL import Image

import senet.data.fashion_mnist as fashion_mnist
from senet.data import (
    BadImageError,
    DataError,
    DataOptionError,
    create_dataset,
    create_loader,
    set_epoch,
    skipped_note,
)


@pytest.fixture
def system_dir(tmp_path, monkeypatch):
    """A stand-in for Debian's /usr/share/datasets/fashion-mnist, with its own images."""
    folder = tmp_path / "system"
    files = write_fashion_mnist(folder, seed=1)
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", folder)
    return folder, files


def image_folder(root, *, truncated: bool = True):
    """root/val/<a|b>/ with three good PNGs each, and a truncated JPEG in b/."""
    gen = torch.Generator().manual_seed(0)
    for cls in ("a", "b"):
        (root / "val" / cls).mkdir(parents=True)
        for i in range(3):
            pixels = torch.randint(0, 256, (12, 12, 3), dtype=torch.uint8, generator=gen)
            Image.fromarray(pixels.numpy()).save(root / "val" / cls / f"{i}.png")
    bad = root / "val" / "b" / "cut.jpg"
    if truncated:
        Image.fromarray(torch.zeros(64, 64, 3, dtype=torch.uint8).numpy()).save(bad)
        bad.write_bytes(bad.read_bytes()[:300])
    return bad


@pytest.mark.parametrize("workers", [0, 1])
def test_an_unreadable_image_stops_with_its_own_error_from_a_worker_too(tmp_path, workers):
    bad = image_folder(tmp_path)
    dataset, _ = create_dataset("imagefolder", "val", root=tmp_path, image_size=8)
    loader = create_loader(dataset, batch_size=4, train=False, workers=workers)
    with pytest.raises(BadImageError) as err:
        list(loader)
    message = str(err.value)
    # torch's wrapper would say "Caught DataError in DataLoader worker process 0. Original..."
    assert message.startswith(f"cannot read image {bad}: ") and "Caught" not in message
    assert "Traceback" not in message and "on_bad_image='skip'" in message
    assert err.value.path == str(bad)


def test_a_worker_raises_any_data_error_as_it_was(tmp_path):
    class Broken(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, index):
            if index == 2:
                raise DataOptionError("size", 0, "must be an integer >= 1")
            return torch.zeros(1), 0

    loader = create_loader(Broken(), batch_size=2, train=True, workers=1, seed=1)
    set_epoch(loader, 0)
    with pytest.raises(DataOptionError) as err:
        list(loader)
    assert str(err.value) == "size=0: must be an integer >= 1" and err.value.option == "size"


def test_skipping_unreadable_images_leaves_them_out_and_logs_each_once(tmp_path, caplog):
    bad = image_folder(tmp_path)
    dataset, _ = create_dataset("imagefolder", "val", root=tmp_path, image_size=8)
    loader = create_loader(dataset, batch_size=4, train=False, workers=1, on_bad_image="skip")
    with caplog.at_level(logging.WARNING, logger="senet.data"):
        for _ in range(2):  # the same file in a second epoch: skipped again, logged once
            seen = sum(len(y) for _, y in loader)
            assert seen == len(dataset) - 1 == 6
    assert list(loader.skipped_images) == [str(bad)]
    logged = [r.getMessage() for r in caplog.records if "skipped unreadable image" in r.message]
    assert len(logged) == 1 and str(bad) in logged[0] and "1 skipped so far" in logged[0]
    assert skipped_note(loader) == f"1 unreadable images skipped (on_bad_image='skip'): {bad}"


def test_a_batch_of_only_unreadable_images_is_left_out(tmp_path):
    image_folder(tmp_path)
    dataset, _ = create_dataset("imagefolder", "val", root=tmp_path, image_size=8)
    loader = create_loader(dataset, batch_size=1, train=False, workers=0, on_bad_image="skip")
    assert len(list(loader)) == len(dataset) - 1


def test_on_bad_image_takes_stop_or_skip():
    dataset = torch.utils.data.TensorDataset(torch.zeros(4, 1))
    with pytest.raises(DataOptionError, match=r"^on_bad_image='ignore': expected 'stop' or 'skip'"):
        create_loader(dataset, batch_size=2, train=False, on_bad_image="ignore")


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_files_at_the_top_of_root_are_read_where_they_are(tmp_path, system_dir, gz):
    root = tmp_path / "mine"
    mine = write_fashion_mnist(root, gz=gz, seed=2)
    for split in ("train", "val"):
        dataset, info = create_dataset("fashion_mnist", split, root=root)
        assert torch.equal(dataset.images[:, 0], mine[split][0])
        assert dataset.targets.tolist() == mine[split][1].tolist()
        images, labels = (f"{name}{'.gz' if gz else ''}" for name in NAMES[split])
        assert info.source == f"Fashion-MNIST {split}: {root / images}, {labels}"
    assert sorted(p.name for p in root.iterdir()) == sorted(
        f"{n}{'.gz' if gz else ''}" for pair in NAMES.values() for n in pair
    )  # nothing copied next to them


def test_an_empty_root_reads_the_system_copy_and_says_so(tmp_path, system_dir):
    folder, files = system_dir
    dataset, info = create_dataset("fashion_mnist", "val", root=tmp_path / "empty")
    assert torch.equal(dataset.images[:, 0], files["val"][0])
    assert info.source.startswith(f"Fashion-MNIST val: {folder / 't10k-images-idx3-ubyte.gz'}")
    assert not (tmp_path / "empty").exists()  # read in place, no copy made


def test_some_but_not_all_fashion_mnist_files_at_the_top_of_root_are_refused(tmp_path, system_dir):
    root = tmp_path / "mine"
    write_fashion_mnist(root)
    (root / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataOptionError) as err:
        create_dataset("fashion_mnist", "train", root=root)
    message = str(err.value)
    assert err.value.option == "root" and message.startswith(f"root={str(root)!r}: holds ")
    assert "but not t10k-labels-idx1-ubyte: put all four" in message


def test_a_truncated_gzip_file_is_named_too(tmp_path, system_dir):
    root = tmp_path / "mine"
    write_fashion_mnist(root)
    cut = root / "train-labels-idx1-ubyte.gz"
    cut.write_bytes(cut.read_bytes()[:20])
    with pytest.raises(DataError, match="Replace it with a whole copy") as err:
        create_dataset("fashion_mnist", "train", root=root)
    assert str(err.value).startswith(f"{cut} is damaged")
