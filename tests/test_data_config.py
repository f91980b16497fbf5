"""Data settings seen from the config and the run: the key named in front of the data layer's
reason, missing data keeping its instructions, where the images came from, bad images."""

from __future__ import annotations

import pytest
from _idx_files import write_fashion_mnist
from _tiny_models import tiny_models_registered
from test_data_bad_files import image_folder
from typer.testing import CliRunner

from senet.cli import app
from senet.config import ConfigError, load_config
from senet.data import BadImageError, DataError
from senet.train import train

TINY = [
    "model.name=_test_tinynet",
    "data.batch_size=4",
    "train.epochs=1",
    "optim.lr=0.1",
    "log.progress=none",
    "log.plots=false",
    "log.tensorboard=false",
]
SYNTHETIC = ["data.name=synthetic", "data.synthetic_train=8", "data.synthetic_val=4"]


@pytest.fixture(autouse=True, scope="module")
def _registered_tiny_models():
    with tiny_models_registered():
        yield


def _train(tmp_path, *overrides):
    return train(load_config(None, [*TINY, f"output_dir={tmp_path / 'run'}", *overrides]))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.augment=false", "data.cutout=8"], "data.cutout=8: needs augment=True"),
        (["data.synthetic_train=0"], "data.synthetic_train=0: must be an integer >= 1"),
        (["data.synthetic_val=0"], "data.synthetic_val=0: must be an integer >= 1"),
        (
            ["data.channels=2", "data.mean=[0.5, 0.5, 0.5]"],
            r"data.mean=\[0.5, 0.5, 0.5\]: needs 1 or 2 values \(synthetic has 2-channel",
        ),
        (
            ["data.image_size=28", "data.distort=rts", "data.distort_canvas=20"],
            "data.distort_canvas=20: smaller than the 28x28 images",
        ),
    ],
)
def test_a_refused_data_option_names_its_config_key(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=f"^{message}"):
        _train(tmp_path, *SYNTHETIC, *overrides)
    assert not (tmp_path / "run").exists()


def test_a_data_key_the_dataset_does_not_take_is_refused_by_its_key(tmp_path):
    image_folder(tmp_path, truncated=False)
    (tmp_path / "train").symlink_to(tmp_path / "val")
    folder = ["data.name=imagefolder", f"data.root={tmp_path}", "data.image_size=8"]
    with pytest.raises(ConfigError, match=r"^data.cutout=16: imagefolder takes no option cutout"):
        _train(tmp_path, *folder, "data.cutout=16")
    with pytest.raises(ConfigError, match=r"^data.eval_resize=36: synthetic takes no option"):
        _train(tmp_path, *SYNTHETIC, "data.eval_resize=36")
    # Where data lives, or the synthetic data's own keys, are ignored by the datasets that take
    # none of them: a recipe or grid shares them across datasets.
    assert _train(tmp_path, *SYNTHETIC, f"data.root={tmp_path}").train_images == 8
    assert _train(tmp_path, *folder, "data.num_classes=4", "data.channels=1").train_images == 6


def test_an_unknown_dataset_name_fails_when_the_config_loads():
    with pytest.raises(ConfigError, match=r"^data.name='fmnist': unknown dataset; did you mean"):
        load_config(None, ["data.name=fmnist"])


def test_missing_data_keeps_its_own_instructions(tmp_path):
    with pytest.raises(DataError, match=r"cifar10 not found.*data.download=true") as err:
        _train(tmp_path, "data.name=cifar10", f"data.root={tmp_path / 'none'}")
    assert not isinstance(err.value, ConfigError)


def test_the_run_log_says_which_files_the_data_came_from(tmp_path, capsys):
    root = tmp_path / "fmnist"
    write_fashion_mnist(root)
    summary = _train(tmp_path, "data.name=fashion_mnist", f"data.root={root}")
    assert summary.train_images == 12 and summary.input_size == [1, 28, 28]
    out = capsys.readouterr().out
    assert (
        f"data from Fashion-MNIST train: {root / 'train-images-idx3-ubyte.gz'}, "
        f"train-labels-idx1-ubyte.gz; Fashion-MNIST val: {root / 't10k-images-idx3-ubyte.gz'}"
    ) in out


def test_a_run_skips_unreadable_images_when_asked_and_says_how_many(tmp_path, capsys):
    bad = image_folder(tmp_path)
    (tmp_path / "train").symlink_to(tmp_path / "val")
    folder = ["data.name=imagefolder", f"data.root={tmp_path}", "data.image_size=8"]
    # One batch of all seven images per epoch: the broken one is in it.
    skip = ["data.workers=1", "data.batch_size=8", "data.on_bad_image=skip"]
    summary = _train(tmp_path, *folder, *skip)
    assert summary.val_images == 7  # the dataset's files; the loaders left one out
    out = capsys.readouterr().out
    assert "2 unreadable images skipped (on_bad_image='skip'): " in out
    assert str(bad) in out and str(tmp_path / "train" / "b" / "cut.jpg") in out


def test_a_run_stops_on_an_unreadable_image_with_its_own_message(tmp_path):
    bad = image_folder(tmp_path)
    (tmp_path / "train").symlink_to(tmp_path / "val")
    folder = ["data.name=imagefolder", f"data.root={tmp_path}", "data.image_size=8"]
    with pytest.raises(BadImageError, match=f"^cannot read image {bad}: "):
        _train(tmp_path, *folder, "data.workers=1", "data.eval_batch_size=8")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("data:\n  name: imagefolder\n")
    cli = [*TINY, *folder, "data.workers=1", f"output_dir={tmp_path / 'cli'}"]
    result = CliRunner().invoke(app, ["train", str(recipe), *cli])
    assert result.exit_code == 2
    assert "error: cannot read image" in result.output and "Caught" not in result.output
