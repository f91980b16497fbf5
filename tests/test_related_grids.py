"""The related-systems recipe and grids (docs/results/related_systems.md) load and build."""

from pathlib import Path

from senet.ablation.grid import load_grid
from senet.train.config import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_rts_stn_recipe():
    config = load_config(CONFIGS / "fashion_mnist_rts_stn.yaml")
    assert (config.model.name, config.model.stn) == ("resnet20_cifar", "affine")
    assert (config.data.name, config.data.distort, config.data.distort_canvas) == (
        "fashion_mnist",
        "rts",
        42,
    )


def test_stn_grid_compares_the_same_cnn_with_and_without_stn():
    grid = load_grid(CONFIGS / "ablations" / "fashion_mnist_stn.yaml")  # builds every model
    assert len(grid.seeds) >= 3 and len(grid.points) == 2 * len(grid.seeds)
    configs = [grid.point_config(p) for p in grid.points]
    assert {c.model.stn for c in configs} == {None, "affine"}
    assert {c.model.name for c in configs} == {"resnet20_cifar"}
    assert {c.data.distort for c in configs} == {"rts"}


def test_attention_grid_covers_the_modules_on_equal_terms():
    grid = load_grid(CONFIGS / "ablations" / "fashion_mnist_attention.yaml")
    configs = [grid.point_config(p) for p in grid.points]
    assert sorted({c.model.attn for c in configs}) == sorted(
        ["none", "se", "cbam", "eca", "ge", "scse"]
    )
    assert len(grid.seeds) >= 3 and len(configs) == 6 * len(grid.seeds)
    # Only the attention differs between points of one seed.
    recipes = {
        (c.model.name, c.data.train_size, c.train.epochs, c.optim.lr, c.data.name) for c in configs
    }
    assert recipes == {("resnet20_cifar", 20000, 5, 0.1, "fashion_mnist")}
