"""The related-systems recipe (shipped) and grids (experiments/fashion_mnist, results in
docs/results/related_systems.md) load and build."""

from pathlib import Path

from senet.ablation.grid import load_grid
from senet.config import load_config
from senet.train.summary import RunSummary

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "senet" / "configs"
GRIDS = REPO / "experiments" / "fashion_mnist" / "grids"


def test_rts_stn_recipe():
    config = load_config(CONFIGS / "fashion_mnist_rts_stn.yaml")
    assert (config.model.name, config.model.stn) == ("resnet20_cifar", "affine")
    assert (config.data.name, config.data.distort, config.data.distort_canvas) == (
        "fashion_mnist",
        "rts",
        42,
    )


def test_stn_grid_compares_the_same_cnn_with_and_without_stn():
    grid = load_grid(GRIDS / "fashion_mnist_stn.yaml")  # builds every model
    assert len(grid.seeds) >= 3 and len(grid.points) == 2 * len(grid.seeds)
    configs = [grid.point_config(p) for p in grid.points]
    assert {c.model.stn for c in configs} == {None, "affine"}
    assert {c.model.name for c in configs} == {"resnet20_cifar"}
    assert {c.data.distort for c in configs} == {"rts"}


def test_attention_grid_covers_the_modules_on_equal_terms():
    grid = load_grid(GRIDS / "fashion_mnist_attention.yaml")
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


def test_the_grid_table_reports_measured_time_per_image(tmp_path):
    from senet.ablation.report import build_rows, markdown_table
    from senet.ablation.runner import PointResult

    grid = load_grid(GRIDS / "fashion_mnist_stn.yaml")
    # Throughputs of 500 and 1000 img/s: 1000 / 750 = 1.333 ms per image, mean over seeds.
    results = [
        PointResult(point, tmp_path, "done", summary=RunSummary.from_dict({
            "final_top1": 80.0 + i, "final_top5": 99.0, "params": 274_954, "macs": 73_103_152,
            "train_img_s": 500.0 if i % 2 else 1000.0,
        }))
        for i, point in enumerate(grid.points)
        if point.seed in (0, 1)
    ]  # fmt: skip
    rows = build_rows(grid, results)
    assert [round(r.train_ms_per_image, 3) for r in rows] == [1.333, 1.333]
    table = markdown_table(grid, rows)
    assert "| Δ top-1 | train ms/img | seeds |" in table
    assert "| 1.333 | 2 of 3 |" in table  # seeds 0 and 1 of the grid's three
