"""The study report: seed-paired 95% CIs (hand-computed), missing cells marked, `senet study`."""

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from senet.ablation import grid_from_dict, load_grid
from senet.ablation.paired_stats import (
    Cell,
    format_cell,
    format_difference,
    paired_difference,
    t_quantile_975,
)
from senet.ablation.study import (
    build_study,
    external_twin_pairs,
    pretty_model,
    reference_pairs,
    study_markdown,
    twin_pairs,
)
from senet.analysis.saturation import saturation_digest
from senet.cli import app
from senet.train.resume import config_differences

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "senet" / "configs" / "fashion_mnist_se_resnet20.yaml"
GRIDS = REPO / "experiments" / "fashion_mnist" / "grids"


def study_cli(*args: str | Path) -> Result:
    """`senet study ARGS`, as a user runs it."""
    return CliRunner().invoke(app, ["study", *map(str, args)])


def test_t_quantiles_are_the_tabled_values():
    assert t_quantile_975(1) == 12.706
    assert t_quantile_975(2) == 4.303
    assert t_quantile_975(30) == 2.042
    assert t_quantile_975(45) == 2.021
    assert t_quantile_975(5000) == 1.960
    with pytest.raises(ValueError, match="two or more seeds"):
        t_quantile_975(0)


def test_paired_difference_ci_matches_a_hand_computation():
    se = Cell("se", [0, 1, 2], {0: 94.4, 1: 94.5, 2: 94.6})
    base = Cell("base", [0, 1, 2], {0: 94.0, 1: 94.0, 2: 94.0})
    pair = paired_difference(se, base)
    # differences 0.4, 0.5, 0.6: mean 0.5, s = 0.1, half width = 4.303 * 0.1 / sqrt(3)
    half = 4.303 * 0.1 / math.sqrt(3)
    assert pair.mean == pytest.approx(0.5, abs=1e-12)
    assert pair.half_width == pytest.approx(half, abs=1e-9)
    assert pair.interval == pytest.approx((0.5 - half, 0.5 + half), abs=1e-9)
    assert pair.verdict == "better"
    assert format_difference(pair) == "+0.50 [+0.25, +0.75]"
    assert format_cell(se) == "94.50 ± 0.10"


def test_pairing_by_seed_is_tighter_than_the_unpaired_spread():
    # Seed noise shared by both arms cancels in the paired difference: 1, 2, 3 -> s = 1.
    se = Cell("se", [0, 1, 2], {0: 91.0, 1: 95.0, 2: 93.0})
    base = Cell("base", [0, 1, 2], {0: 90.0, 1: 93.0, 2: 90.0})
    pair = paired_difference(se, base)
    assert pair.differences == pytest.approx({0: 1.0, 1: 2.0, 2: 3.0})
    assert pair.half_width == pytest.approx(4.303 / math.sqrt(3), abs=1e-9)
    assert pair.verdict == "no difference"  # [-0.48, +4.48] spans 0
    worse = paired_difference(base, se)
    assert worse.interval == pytest.approx((-2 - 4.303 / 3**0.5, -2 + 4.303 / 3**0.5))
    lower = paired_difference(
        Cell("a", [0, 1], {0: 1.0, 1: 1.5}), Cell("b", [0, 1], {0: 2.0, 1: 2.4})
    )
    assert lower.verdict == "worse"  # -1.0, -0.9: [-1.59, -0.31]


def test_a_missing_seed_marks_the_cell_and_the_pair_instead_of_averaging_fewer():
    se = Cell("se", [0, 1, 2], {0: 94.0, 1: 94.2}, failed={2: "exit code 1: NaN loss"})
    base = Cell("base", [0, 1, 2], {0: 94.0, 1: 94.0, 2: 93.0})
    assert not se.complete and se.mean is None and se.std is None
    assert format_cell(se) == "missing (2/3 seeds; seed 2 failed)"
    assert format_cell(Cell("x", [0, 1, 2], {1: 90.0})) == "missing (1/3 seeds; seed 0, 2 not run)"
    pair = paired_difference(se, base)
    assert pair.missing_seeds == [2] and pair.mean is None and pair.interval is None
    assert pair.verdict == "incomplete"
    assert format_difference(pair) == "missing (seed 2)"


def test_one_seed_gives_a_mean_but_no_interval():
    pair = paired_difference(Cell("a", [0], {0: 91.0}), Cell("b", [0], {0: 90.5}))
    assert pair.mean == pytest.approx(0.5) and pair.interval is None
    assert format_difference(pair) == "+0.50"
    with pytest.raises(ValueError, match="share no seed"):
        paired_difference(Cell("a", [0], {}), Cell("b", [1], {}))


def test_shipped_study_grids_pair_the_right_settings():
    depth = load_grid(GRIDS / "fashion_mnist_depth.yaml")
    assert twin_pairs(depth) == [
        (f"name=se_resnet{d}_cifar", f"name=resnet{d}_cifar") for d in (20, 56, 110)
    ]
    assert depth.seeds == [0, 1, 2] and len(depth.points) == 18
    config = depth.point_config(depth.points[0])
    assert config.data.train_size is None and config.data.val_size is None
    assert config.train.amp == "bf16" and config.train.channels_last is True
    nodecay = load_grid(GRIDS / "fashion_mnist_depth_se_nodecay.yaml")
    assert external_twin_pairs(nodecay, depth) == twin_pairs(depth)
    theirs = {p.run_id: p for p in depth.points}
    for mine in nodecay.points:  # each SE run differs from the depth grid's only in SE's decay
        changed = config_differences(
            depth.point_config(theirs[mine.run_id]).to_dict(), nodecay.point_config(mine).to_dict()
        )
        assert changed == ["optim.attn_weight_decay: None -> 0.0"]
    width = load_grid(GRIDS / "fashion_mnist_se_width.yaml")
    assert twin_pairs(width) is None
    assert reference_pairs(width) == [
        ("min_channels=4", "min_channels=1"),
        ("min_channels=8", "min_channels=1"),
    ]
    assert width.point_config(width.points[0]).optim.attn_weight_decay == 0.0


def test_reference_row_pairs_name_both_sides_in_the_table():
    # With a baseline, settings are paired with the baseline and with the first setting: the
    # table must say which, or "cbam" appears twice with two different differences.
    pair = {"differences": {"0": 0.1}, "shown": "+0.10", "verdict": "no difference", "name": ""}
    study = {
        "title": "t", "status": "complete", "finished_runs": 3, "total_runs": 3, "seeds": [0],
        "paired_by": "reference row", "cells": [],
        "pairs": [{**pair, "arm": "attn=cbam", "reference": "baseline"},
                  {**pair, "arm": "attn=cbam", "reference": "attn=se"}],
    }  # fmt: skip
    text = study_markdown(study)
    assert "| attn=cbam - baseline |" in text and "| attn=cbam - attn=se |" in text
    # A grid run with key=value on top of its file says so under its title.
    assert "on top of the grid file" not in text
    ran = study_markdown({**study, "command_line": ["model.name=se_resnet56_cifar"]})
    assert "Run with `model.name=se_resnet56_cifar` on top of the grid file." in ran
    # One setting and no baseline (a control paired with another grid): no empty pair table.
    alone = study_markdown({**study, "pairs": []})
    assert "| pair |" not in alone and "senet compare RUNS --reference OTHER_RUNS" in alone


def test_pretty_model_names():
    assert pretty_model("name=se_resnet110_cifar") == "SE-ResNet-110"
    assert pretty_model("resnet20_cifar") == "ResNet-20"
    assert pretty_model("se_wrn16_8_cifar") == "SE-WRN-16-8"


def _fake_grid_folder(tmp_path: Path, top1: dict[tuple[str, int], float], failed=()) -> Path:
    """A `senet ablate` results folder with hand-written summaries (nothing trained)."""
    grid = grid_from_dict(
        {
            "name": "fake_depth",
            "title": "fake depth study",
            "base": str(RECIPE),
            "axes": {"model.name": ["resnet20_cifar", "se_resnet20_cifar", "resnet56_cifar",
                                    "se_resnet56_cifar"]},
            "seeds": [0, 1, 2],
        }
    )  # fmt: skip
    out = tmp_path / "out"
    (out / "runs").mkdir(parents=True)
    (out / "grid.yaml").write_text(yaml.safe_dump(grid.to_dict(), sort_keys=False))
    runs = []
    for point in grid.points:
        model = dict(point.settings)["model.name"]
        run_dir = out / "runs" / point.run_id
        run_dir.mkdir()
        key = (model, point.seed)
        if key in top1:
            summary = {"final_top1": top1[key], "params": 1000 + len(model), "macs": 2_000_000,
                       "train_seconds": 300.0, "epochs": 15, "train_images": 60000}  # fmt: skip
            (run_dir / "summary.json").write_text(json.dumps(summary))
            runs.append({"run_id": point.run_id, "status": "cached", "error": None})
        elif key in failed:
            runs.append({"run_id": point.run_id, "status": "failed", "error": "exit code 1: NaN"})
    (out / "results.json").write_text(json.dumps({"runs": runs}))
    return out


def test_report_cli_tables_a_grid_folder_and_marks_the_missing_cell(tmp_path):
    values = {}
    for seed, (r20, se20, r56, se56) in enumerate(
        [(93.0, 93.4, 94.0, 94.5), (93.2, 93.3, 94.2, 94.6), (93.1, 93.5, 94.1, 94.4)]
    ):
        values[("resnet20_cifar", seed)] = r20
        values[("se_resnet20_cifar", seed)] = se20
        values[("resnet56_cifar", seed)] = r56
        if seed != 2:
            values[("se_resnet56_cifar", seed)] = se56
    out = _fake_grid_folder(tmp_path, values, failed={("se_resnet56_cifar", 2)})
    json_copy, plot = tmp_path / "copy.json", tmp_path / "depth.png"
    result = study_cli(out, "--json", json_copy, "--plot", plot)
    assert result.exit_code == 0, result.output
    printed = result.stdout
    study = json.loads(json_copy.read_text())
    assert study == json.loads((out / "study.json").read_text())
    assert study["status"] == "partial"
    assert (study["finished_runs"], study["total_runs"]) == (11, 12)
    assert study["recipe"] == {"epochs": 15, "train_images": 60000, "val_images": None}
    r20, se20, r56, se56 = study["cells"]
    assert r20["name"] == "ResNet-20" and r20["mean"] == pytest.approx(93.1)
    assert r20["std"] == pytest.approx(0.1) and r20["seconds_per_epoch"] == pytest.approx(20.0)
    assert se56["mean"] is None and se56["failed"] == {"2": "exit code 1: NaN"}
    assert se56["shown"] == "missing (2/3 seeds; seed 2 failed)"
    p20, p56 = study["pairs"]
    # ResNet-20: differences 0.4, 0.1, 0.4 -> mean 0.3, s = sqrt(0.03), CI 0.3 +- 4.303 * 0.1
    assert p20["name"] == "ResNet-20" and p20["mean"] == pytest.approx(0.3)
    assert p20["ci95"] == pytest.approx([0.3 - 0.4303, 0.3 + 0.4303], abs=1e-9)
    assert p20["verdict"] == "no difference"
    assert p56["verdict"] == "incomplete" and p56["shown"] == "missing (seed 2)"
    assert "| ResNet-20 | +0.40 / +0.10 / +0.40 | +0.30 [-0.13, +0.73] | no difference |" in printed
    assert (
        "| SE-ResNet-56 | 0.001M | 2.00 | 20 | missing (2/3 seeds; seed 2 failed) | 94.50 / 94.60 |"
        in printed
    )
    assert (out / "study.md").read_text() in printed
    assert plot.is_file() and plot.stat().st_size > 1000


def _folder_with_configs(out: Path, models: list[str], top1: dict, overrides=()) -> Path:
    """A results folder of a model-axis grid whose summaries record their configs."""
    from senet.train import load_config

    grid = grid_from_dict(
        {"name": out.name, "base": str(RECIPE), "overrides": dict(o.split("=") for o in overrides),
         "axes": {"model.name": models}, "seeds": [0, 1, 2]}
    )  # fmt: skip
    (out / "runs").mkdir(parents=True)
    (out / "grid.yaml").write_text(yaml.safe_dump(grid.to_dict(), sort_keys=False))
    for point in grid.points:
        model = dict(point.settings)["model.name"]
        if (model, point.seed) not in top1:
            continue
        config = load_config(RECIPE, [*overrides, *point.overrides()]).to_dict()
        run_dir = out / "runs" / point.run_id
        run_dir.mkdir()
        summary = {"final_top1": top1[model, point.seed], "config": config, "params": 1000}
        (run_dir / "summary.json").write_text(json.dumps(summary))
    return out


def test_an_se_only_grid_pairs_with_the_twins_of_another_grids_folder(tmp_path):
    depth = _folder_with_configs(
        tmp_path / "depth",
        ["resnet20_cifar", "se_resnet20_cifar", "resnet56_cifar", "se_resnet56_cifar"],
        {("resnet20_cifar", s): 93.0 + s / 10 for s in range(3)}
        | {("resnet56_cifar", s): 94.0 for s in range(2)},
    )
    se_only = _folder_with_configs(
        tmp_path / "se_nodecay",
        ["se_resnet20_cifar", "se_resnet56_cifar"],
        {("se_resnet20_cifar", s): 93.5 + s / 10 for s in range(3)}
        | {("se_resnet56_cifar", s): 94.5 for s in range(3)},
        overrides=["optim.attn_weight_decay=0.0"],
    )
    result = study_cli(se_only, "--twins", depth)
    assert result.exit_code == 0, result.output
    study = json.loads((se_only / "study.json").read_text())
    assert [c["name"] for c in study["cells"]] == [
        "ResNet-20", "SE-ResNet-20", "ResNet-56", "SE-ResNet-56"
    ]  # fmt: skip
    assert study["twins_from"] == str(depth) and (study["finished_runs"], study["total_runs"]) == (
        11,
        12,
    )
    p20, p56 = study["pairs"]
    assert p20["mean"] == pytest.approx(0.5) and p20["differences"] == pytest.approx(
        {"0": 0.5, "1": 0.5, "2": 0.5}
    )
    assert p56["verdict"] == "incomplete"  # ResNet-56 seed 2 has not run in the twins' folder
    assert "| ResNet-20 | +0.50 / +0.50 / +0.50 |" in result.stdout


def test_twins_from_a_folder_with_another_recipe_are_refused(tmp_path):
    depth = _folder_with_configs(
        tmp_path / "depth", ["resnet20_cifar"], {("resnet20_cifar", 0): 93.0}
    )
    other = _folder_with_configs(
        tmp_path / "other", ["se_resnet20_cifar"], {("se_resnet20_cifar", 0): 93.5},
        overrides=["optim.lr=0.2", "optim.attn_weight_decay=0.0"],
    )  # fmt: skip
    result = study_cli(other, "--twins", depth)
    assert result.exit_code == 2
    err = result.stderr
    assert "cannot pair name=se_resnet20_cifar with name=resnet20_cifar" in err
    assert "optim.lr: 0.1 -> 0.2" in err and "attn_weight_decay" not in err
    # A grid that is not SE models on a model axis has nothing to pair.
    result = study_cli(depth, "--twins", depth)
    assert result.exit_code == 2
    assert "--twins pairs a grid whose only axis is model.name" in result.stderr


def _control_folder(out: Path, top1: dict[int, float], overrides=()) -> Path:
    """A one-setting grid folder (ResNet-20 with residual branches x 0.5, no SE): a control."""
    from senet.train import load_config

    fixed = {"model.name": "resnet20_cifar", "model.attn": "scale"}
    fixed |= dict(o.split("=") for o in overrides)
    grid = grid_from_dict(
        {
            "name": out.name,
            "base": str(RECIPE),
            "overrides": fixed,
            "axes": {"model.attn_kwargs.value": [0.5]},
            "seeds": [0, 1, 2],
        }
    )
    (out / "runs").mkdir(parents=True)
    (out / "grid.yaml").write_text(yaml.safe_dump(grid.to_dict(), sort_keys=False))
    for point in grid.points:
        config = load_config(RECIPE, [*grid.common_overrides(), *point.overrides()]).to_dict()
        run_dir = out / "runs" / point.run_id
        run_dir.mkdir()
        summary = {"final_top1": top1[point.seed], "config": config, "params": 1000}
        (run_dir / "summary.json").write_text(json.dumps(summary))
    return out


def test_a_control_pairs_against_every_setting_of_another_grids_folder(tmp_path):
    depth = _folder_with_configs(
        tmp_path / "depth",
        ["resnet20_cifar", "se_resnet20_cifar", "resnet56_cifar"],
        {("resnet20_cifar", s): 93.0 + s / 10 for s in range(3)}
        | {("se_resnet20_cifar", s): 93.5 for s in range(3)},
    )
    control = _control_folder(tmp_path / "control", {0: 93.4, 1: 93.3, 2: 93.6})
    result = study_cli(control, "--against", depth)
    assert result.exit_code == 0, result.output
    study = json.loads((control / "study.json").read_text())
    assert study["paired_by"] == "another grid" and study["against"] == str(depth)
    # ResNet-56 has no run in the other folder: nothing to pair with, so it is left out.
    assert [(p["arm"], p["reference"]) for p in study["pairs"]] == [
        ("value=0.5", "name=resnet20_cifar"),
        ("value=0.5", "name=se_resnet20_cifar"),
    ]
    plain, se = study["pairs"]
    # control - ResNet-20: 0.4, 0.2, 0.4 -> mean 1/3, s = 0.11547, half width 4.303 s / sqrt(3)
    half = 4.303 * statistics.stdev([0.4, 0.2, 0.4]) / math.sqrt(3)
    assert plain["mean"] == pytest.approx(1 / 3)
    assert plain["ci95"] == pytest.approx([1 / 3 - half, 1 / 3 + half], abs=1e-9)
    assert se["differences"] == pytest.approx({"0": -0.1, "1": -0.2, "2": 0.1})
    assert study["unanalysed"] == []  # a fixed scale has no gates to analyse
    assert "| value=0.5 - ResNet-20 | +0.40 / +0.20 / +0.40 |" in result.stdout
    assert "| value=0.5 - SE-ResNet-20 | -0.10 / -0.20 / +0.10 |" in result.stdout


def test_a_control_of_another_recipe_or_with_both_pairings_is_refused(tmp_path):
    depth = _folder_with_configs(
        tmp_path / "depth", ["resnet20_cifar"], {("resnet20_cifar", s): 93.0 for s in range(3)}
    )
    other = _control_folder(tmp_path / "other", {0: 93.0, 1: 93.0, 2: 93.0}, ["optim.lr=0.2"])
    result = study_cli(other, "--against", depth)
    assert result.exit_code == 2
    assert "cannot pair value=0.5 with name=resnet20_cifar" in result.stderr
    assert "optim.lr: 0.1 -> 0.2" in result.stderr
    result = study_cli(other, "--against", depth, "--twins", depth)
    assert result.exit_code == 2 and "not both" in result.stderr
    empty = _folder_with_configs(tmp_path / "empty", ["resnet20_cifar"], {})
    result = study_cli(other, "--against", empty)
    assert result.exit_code == 2 and "holds no finished run" in result.stderr


def test_report_cli_on_an_untouched_grid_says_not_yet_run(tmp_path):
    out = _fake_grid_folder(tmp_path, {})
    assert study_cli(out).exit_code == 0
    study = json.loads((out / "study.json").read_text())
    assert study["status"] == "not yet run" and all(c["mean"] is None for c in study["cells"])
    assert build_study(load_grid_from(out), out)["finished_runs"] == 0


def load_grid_from(out: Path):
    from senet.ablation.study import load_study_grid

    return load_study_grid(out)


def test_report_cli_rejects_a_folder_that_is_not_a_grid(tmp_path):
    result = study_cli(tmp_path)
    assert result.exit_code == 2 and "no grid.yaml" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_senet_ablate_ends_with_the_study_tables(tmp_path):
    tiny = {
        "data.name": "synthetic", "data.synthetic_train": 64, "data.train_size": 64,
        "data.synthetic_val": 32, "data.image_size": 16, "data.batch_size": 32,
        "train.epochs": 1, "log.plots": False, "log.tensorboard": False,
    }  # fmt: skip
    grid = {
        "base": str(RECIPE),
        "overrides": tiny,
        "axes": {"model.name": ["resnet20_cifar", "se_resnet20_cifar"]},
        "seeds": [0, 1],
    }
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(grid))
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "senet", "ablate", str(tmp_path / "grid.yaml"), "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    study = json.loads((out / "study.json").read_text())
    assert study["status"] == "complete" and study["paired_by"] == "model twins"
    (pair,) = study["pairs"]
    se, base = (study["cells"][1]["top1"], study["cells"][0]["top1"])
    assert pair["differences"] == pytest.approx({s: se[s] - base[s] for s in ("0", "1")})
    assert "Paired by seed" in proc.stdout and (out / "study.png").is_file()


def _saturation(stds: list[float], hidden: list[tuple[int, int]] | None) -> dict:
    """A saturation.json as `senet analyze` writes it; ``hidden``: (units, dead) per block, or
    None for a report written before dead units were recorded."""
    blocks = []
    for i, std in enumerate(stds):
        block = {"name": f"layer1.{i}.attn", "mean_gate": 0.5 + i / 100, "gate_std": std,
                 "params": 10, "saturated": std < 0.02, "replaceable": True}  # fmt: skip
        if hidden is not None:
            block |= {"hidden_units": hidden[i][0], "dead_units": hidden[i][1]}
        blocks.append(block)
    return {"threshold": 0.02, "blocks": blocks, "replaced": [], "params_saved": 0,
            "params_total": 100, "top1_before": 93.5, "top1_after": 93.25}  # fmt: skip


def test_saturation_digest_counts_blocks_and_dead_units():
    digest = saturation_digest(_saturation([0.001, 0.05, 0.0], [(1, 0), (2, 1), (2, 2)]))
    assert (digest["blocks"], digest["saturated"]) == (3, 2)
    assert digest["varying"] == [{"name": "layer1.1.attn", "gate_std": 0.05}]
    assert digest["mean_gate"] == pytest.approx([0.5, 0.52])
    assert (digest["hidden_units"], digest["dead_units"]) == (5, 3)
    assert digest["lifeless"] == ["layer1.2.attn"]
    old = saturation_digest(_saturation([0.001], None))
    assert old["dead_units"] is None and old["lifeless"] is None


def _write_analysis(run: Path, report: dict) -> None:
    """What `senet analyze RUN` leaves in a Fashion-MNIST run folder."""
    summary = json.loads((run / "summary.json").read_text()) | {"data": "fashion_mnist"}
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "analysis-fashion_mnist").mkdir()
    (run / "analysis-fashion_mnist" / "saturation.json").write_text(json.dumps(report))


def test_the_study_tables_the_gates_of_analysed_runs(tmp_path):
    values = {(m, s): 93.0 for m in ("resnet20_cifar", "se_resnet20_cifar") for s in (0, 1, 2)}
    out = _fake_grid_folder(tmp_path, values)
    runs = out / "runs"
    for seed, report in ((0, _saturation([0.001, 0.05], [(1, 1), (2, 0)])),
                         (2, _saturation([0.001, 0.001], None))):  # fmt: skip
        _write_analysis(runs / f"name=se_resnet20_cifar__seed={seed}", report)
    study = build_study(load_grid_from(out), out)
    assert [(g["label"], g["seed"]) for g in study["gates"]] == [
        ("name=se_resnet20_cifar", 0),
        ("name=se_resnet20_cifar", 2),
    ]  # seed 1 and the baselines hold no analysis: left out
    # The SE run without an analysis is named so it gets one; a baseline has nothing to analyse.
    assert study["unanalysed"] == ["name=se_resnet20_cifar__seed=1"]
    text = study_markdown(study)
    assert "Gates not analysed yet" in text and "`name=se_resnet20_cifar__seed=1`." in text
    assert "saturated: gate std over images < 0.02" in text
    assert (
        "| SE-ResNet-20 | 0 | 1 of 2 | layer1.1 (0.050) | 1 of 3 | layer1.0 | 93.50 -> 93.25 |"
        in text
    )
    assert (
        "| SE-ResNet-20 | 2 | 2 of 2 | none | not recorded | not recorded | 93.50 -> 93.25 |"
        in text
    )


def test_a_study_spread_over_two_machines_adopts_the_earlier_cells_without_mixing_seeds(tmp_path):
    # Machine A ran depth 20 (its run folders stayed there; its study.json travelled).
    depth20 = {(m, s): 93.0 + s / 10 + ("se_" in m) / 5
               for m in ("resnet20_cifar", "se_resnet20_cifar") for s in (0, 1, 2)}  # fmt: skip
    a = _fake_grid_folder(tmp_path / "a", depth20)
    _write_analysis(a / "runs" / "name=se_resnet20_cifar__seed=0", _saturation([0.001], [(1, 1)]))
    assert study_cli(a).exit_code == 0
    earlier = json.loads((a / "study.json").read_text())
    # Machine B ran depth 56, and one SE-ResNet-20 seed again.
    depth56 = {(m, s): 94.0 + s / 10 for m in ("resnet56_cifar", "se_resnet56_cifar")
               for s in (0, 1, 2)}  # fmt: skip
    b = _fake_grid_folder(tmp_path / "b", {**depth56, ("se_resnet20_cifar", 0): 95.0})
    (b / "runs" / "name=resnet20_cifar__seed=0" / "checkpoints").mkdir()  # unfinished
    record = tmp_path / "record"
    result = study_cli(b, "--earlier", a / "study.json", "--record", record)
    assert result.exit_code == 0, result.output
    printed = result.stdout
    study = json.loads((b / "study.json").read_text())
    cells = {c["label"]: c for c in study["cells"]}
    assert study["from_earlier"] == ["name=resnet20_cifar"]
    assert cells["name=resnet20_cifar"] == earlier["cells"][0]  # adopted as it was
    # A cell with a run here is this folder's alone: seed 0 from B, seeds 1 and 2 not from A.
    assert cells["name=se_resnet20_cifar"]["top1"] == {"0": 95.0}
    assert cells["name=se_resnet20_cifar"]["shown"].startswith("missing (1/3 seeds")
    assert cells["name=resnet56_cifar"]["mean"] == pytest.approx(94.1)
    assert (study["finished_runs"], study["status"]) == (10, "partial")
    assert study["gates"] == []  # the analysed run belongs to a cell that was not adopted
    assert "| ResNet-20 † | " in printed and "† runs not kept: taken from an earlier" in printed
    assert "recorded 7 finished run(s)" in printed
    # The record is a results folder of its own: the study reads it, without weights.
    assert sorted(p.name for p in (record / "runs").iterdir()) == sorted(
        p.name for p in (b / "runs").iterdir() if (p / "summary.json").exists()
    )
    assert study_cli(record, "--earlier", a / "study.json").exit_code == 0
    assert json.loads((record / "study.json").read_text())["cells"] == study["cells"]
    # An earlier study of another grid is refused.
    other = earlier | {"study": "another_grid"}
    (tmp_path / "other.json").write_text(json.dumps(other))
    result = study_cli(b, "--earlier", tmp_path / "other.json")
    assert result.exit_code == 2 and "not grid 'fake_depth'" in result.stderr
    result = study_cli(b, "--earlier", tmp_path / "absent.json")
    assert result.exit_code == 2 and "cannot read the earlier study" in result.stderr


def test_adopted_cells_bring_their_gate_analyses(tmp_path):
    values = {(m, s): 93.0 for m in ("resnet20_cifar", "se_resnet20_cifar") for s in (0, 1, 2)}
    a = _fake_grid_folder(tmp_path / "a", values)
    _write_analysis(a / "runs" / "name=se_resnet20_cifar__seed=1", _saturation([0.001], [(1, 1)]))
    earlier = build_study(load_grid_from(a), a)
    b = _fake_grid_folder(tmp_path / "b", {})
    study = build_study(load_grid_from(b), b, earlier=earlier)
    assert study["from_earlier"] == ["name=resnet20_cifar", "name=se_resnet20_cifar"]
    assert study["gates"] == earlier["gates"] and len(study["gates"]) == 1
    assert study["pairs"] == earlier["pairs"] and study["status"] == "partial"
    assert study["recipe"] == earlier["recipe"]


def test_an_output_that_cannot_be_written_is_one_clear_error(tmp_path):
    out = _fake_grid_folder(tmp_path, {("resnet20_cifar", 0): 93.0})
    result = study_cli(out, "--json", tmp_path / "absent" / "study.json")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "cannot write the study's outputs" in result.stderr and "absent" in result.stderr
