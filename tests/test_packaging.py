"""What ships: recipes and grids inside the package (found by name), torch.hub entry points, and
a wheel that works from an empty folder in a fresh virtual environment."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import types
import zipfile
from pathlib import Path
from unittest import mock

import pytest
import torch
from _idx_files import write_fashion_mnist
from torch import nn

import senet
from senet.ablation import GridError, load_grid
from senet.config import ConfigError, load_config
from senet.configs import names

REPO = Path(__file__).resolve().parents[1]


def test_recipes_and_grids_are_found_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ folder here
    assert names() == [
        "cifar10_se_resnet110",
        "cifar10_se_shake_shake26",
        "fashion_mnist_rts_stn",
        "fashion_mnist_se_resnet20",
        "imagenet_se_resnet50",
    ]
    by_name = load_config("fashion_mnist_se_resnet20", ["train.epochs=2"])
    by_path = load_config(REPO / "senet/configs/fashion_mnist_se_resnet20.yaml", ["train.epochs=2"])
    assert by_name == by_path and by_name.model.name == "se_resnet20_cifar"
    # The path a clone used before the recipes moved into the package still works.
    assert load_config("configs/imagenet_se_resnet50.yaml").model.name == "se_resnet50"
    grid = load_grid("table10_reduction")
    assert grid.name == "table10_reduction" and len(grid.points) == 6  # r = 2..32 and ResNet-50
    assert load_grid("configs/ablations/table13_stages.yaml").name == "table13_stages"


def test_the_package_ships_the_papers_grids_and_one_demo_grid_only():
    # A study's own grids (Fashion-MNIST depth, decay, ...) live in experiments/, not the wheel.
    assert names("ablations") == [
        "demo_reduction",
        "table10_reduction",
        "table11_squeeze",
        "table12_excitation",
        "table13_stages",
        "table14_integration",
        "table15_conv3x3",
        "table16_nosqueeze",
    ]
    studies = sorted(p.stem for p in (REPO / "experiments").glob("*/grids/*.yaml"))
    assert "fashion_mnist_depth" in studies and not set(studies) & set(names("ablations"))


def test_the_renamed_demo_grid_still_loads_by_its_old_name_with_a_warning():
    for old in ("reduction_fashion_mnist", "configs/ablations/reduction_fashion_mnist.yaml"):
        with pytest.warns(FutureWarning, match="'reduction_fashion_mnist' was renamed"):
            grid = load_grid(old)
        assert grid.name == "demo_reduction" and len(grid.points) == 10


def test_unknown_recipe_lists_the_shipped_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"no recipe by that name \(recipes: cifar10_se_"):
        load_config("fashion_mnist_se_resnet")
    with pytest.raises(
        GridError, match=r"no grid by that name \(grids: demo_reduction, table10_reduction, "
    ):
        load_grid("table10")


def test_torch_hub_loads_senet_models_from_a_local_clone():
    model = torch.hub.load(str(REPO), "se_resnet20_cifar", source="local", num_classes=4)
    reference = senet.create_model("se_resnet20_cifar", num_classes=4)
    assert type(model) is type(reference)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert shapes == {k: v.shape for k, v in reference.state_dict().items()}
    assert model.fc.out_features == 4
    with pytest.raises(RuntimeError, match="Cannot find callable no_such_model in hubconf"):
        torch.hub.load(str(REPO), "no_such_model", source="local")


@pytest.mark.slow
def test_built_wheel_works_from_an_empty_folder(tmp_path):
    """Build the wheel, install it (no downloads) into a fresh venv that borrows this
    environment's dependencies, and run the commands a new user runs first."""
    dist, venv, empty = tmp_path / "dist", tmp_path / "venv", tmp_path / "empty"
    empty.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # No PYTHONPATH: a checkout on it would pass for the installed senet (pip then skips the
    # wheel as "already installed").
    env = {**os.environ, "PYTHONPATH": "", "MPLBACKEND": "Agg"}
    run = dict(check=True, capture_output=True, text=True, timeout=600, env=env)
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", dist, REPO], **run)
    (wheel,) = dist.glob("senet-*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], **run)
    py = venv / "bin" / "python"
    # Dependencies (torch, ...) come from this environment: a plain path entry, which does not
    # run its .pth files, so an editable senet there stays out of sight.
    (site_dir,) = venv.glob("lib/python*/site-packages")
    (site_dir / "parent.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([*pip, "--python", py, "install", "--no-deps", "--no-index", wheel], **run)
    senet_cli = [str(venv / "bin" / "senet")]

    def cli(*args: str) -> str:
        out = subprocess.run([*senet_cli, *args], cwd=empty, **run)
        return out.stdout

    where = subprocess.run([py, "-c", "import senet; print(senet.__file__)"], cwd=empty, **run)
    assert str(site_dir) in where.stdout  # the wheel's senet, not this checkout's
    # Synthetic files where senet keeps the dataset: no download, no system copy needed. Their
    # 48 test images (the real set has 10,000) show that the run read them.
    write_fashion_mnist(tmp_path / "data" / "FashionMNIST" / "raw", sizes=(96, 48), gz=False)
    budget = ["data.train_size=64", "data.val_size=64", "train.epochs=1", "log.progress=none"]
    budget += [f"data.root={tmp_path / 'data'}", "log.tensorboard=false", "log.plots=false"]
    cli("train", "fashion_mnist_se_resnet20", *budget, "output_dir=run")
    summary = json.loads((empty / "run" / "summary.json").read_text())
    assert (summary["train_images"], summary["val_images"]) == (64, 48)
    listed = cli("ablate", "table10_reduction", "--dry-run")
    assert "reduction=32__seed=0" in listed and "6 runs" in listed
    # The whole demo trains two models (minutes); its tour shows the packaged layers work, and
    # ends with the full study's summary, shipped as package data (not read from a clone).
    tour = cli("demo", "--tour")
    assert "│ se " in tour
    assert "The full study (docs/results/fashion_mnist.md in the senet repository" in tour
    assert "ResNet-110: baseline 93.51 ± 0.78%, SE 94.35 ± 0.14%" in tour
    shipped = zipfile.ZipFile(wheel).namelist()
    assert "senet/demo_summary.json" in shipped
    grids = sorted(Path(n).stem for n in shipped if n.startswith("senet/configs/ablations/"))
    assert grids == names("ablations")  # the paper's Tables 10-16 and the demo grid
    assert not [n for n in shipped if "experiments/" in n or "/runs/" in n]  # no study, no record


def test_top_level_functions_are_plain_functions_beside_their_packages():
    import senet.profiling
    import senet.retrofitting

    # No package shares its name with a function: senet.profile is the function, always.
    assert isinstance(senet.profile, types.FunctionType)
    assert isinstance(senet.retrofit, types.FunctionType)
    assert senet.profile is senet.profiling.counter.profile
    assert senet.retrofit is senet.retrofitting.api.retrofit
    public = set(senet.__all__)
    packages = {
        p.name for p in Path(senet.__file__).parent.iterdir() if (p / "__init__.py").is_file()
    }
    assert not public & packages, f"a public name is also a package: {public & packages}"
    model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False))
    assert senet.profile(model, (3, 8, 8)).params == 3 * 8 * 9
    failing = mock.patch("senet.retrofitting.api._probe", side_effect=RuntimeError("patched probe"))
    with failing, pytest.raises(RuntimeError, match="patched probe"):
        senet.retrofit(model, input_size=8)


def test_renamed_names_still_work_with_a_warning():
    with pytest.warns(DeprecationWarning, match="compare_costs"):
        assert senet.compare is senet.compare_costs
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        _ = senet.nonexistent
