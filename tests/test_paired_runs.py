"""`senet compare RUNS --reference REF`: finished runs paired by the seed their config records."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from senet.ablation.paired_runs import compare_paired
from senet.cli import app
from senet.config import ConfigError


def fake_run(
    folder, model: str, seed: int, top1: float, flip: float | None = None, attn: str | None = None
):
    """A finished run's files as `senet train` leaves them, with chosen accuracies."""
    folder.mkdir(parents=True)
    config = {"train": {"seed": seed}, "model": {"name": model, "attn": attn}}
    summary = {
        "model": model, "data": "fashion_mnist", "params": 1000, "macs": 2_000_000,
        "epochs": 2, "best_epoch": 2, "best_top1": top1, "final_top1": top1,
        "final_flip_top1": flip, "wall_seconds": 3.0, "config": config,
    }  # fmt: skip
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder.parent / f"{folder.name}.log").write_text("a log beside the run, as a shell leaves it")
    (folder / "metrics.csv").write_text(
        f"epoch,train_loss,val_top1,train_img_s\n1,0.9,{top1 - 1},100\n2,0.5,{top1},100\n"
    )
    return folder


@pytest.fixture
def runs(tmp_path):
    # Folder names deliberately disagree with the seeds: the config's seed is what pairs runs.
    arm = [fake_run(tmp_path / f"se_{i}", "se_net", s, v, v + 0.3)
           for i, (s, v) in enumerate([(2, 94.0), (0, 94.5), (1, 94.2)])]  # fmt: skip
    ref = [fake_run(tmp_path / f"plain_{s}", "plain_net", s, v, v + 0.2)
           for s, v in [(0, 94.1), (1, 94.0), (2, 93.9)]]  # fmt: skip
    return tmp_path, arm, ref


def test_runs_are_paired_by_their_configured_seed(runs):
    _, arm, ref = runs
    paired = compare_paired(arm, ref)
    assert paired.arm.label == "se_net" and paired.reference.label == "plain_net"
    assert paired.difference.differences == pytest.approx({0: 0.4, 1: 0.2, 2: 0.1})
    # mean 0.2333, sd 0.1528, t(2) = 4.303: half width 0.3795
    assert paired.difference.mean == pytest.approx(0.7 / 3)
    assert paired.difference.half_width == pytest.approx(4.303 * 0.152753 / 3**0.5, rel=1e-4)
    assert paired.difference.verdict == "no difference"
    flip = compare_paired(arm, ref, metric="final_flip_top1")
    assert flip.difference.mean == pytest.approx(0.7 / 3 + 0.1)


def test_a_seed_on_one_side_only_is_reported_missing_not_averaged(runs):
    _, arm, ref = runs
    paired = compare_paired(arm, ref[:2])
    assert paired.reference.missing_seeds == [2] and paired.reference.mean is None
    assert not paired.difference.complete and paired.difference.mean is None


def test_cli_prints_the_paired_table_from_glob_patterns(runs):
    tmp_path, _, _ = runs
    plot = tmp_path / "cmp.png"
    result = CliRunner().invoke(
        app,
        ["compare", str(tmp_path / "se_*"), "--reference", str(tmp_path / "plain_*"),
         "--plot", str(plot)],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "se_net - plain_net" in result.output and "+0.23 [-0.15, +0.61]" in result.output
    assert "no difference" in result.output and plot.is_file()


def test_bad_runs_are_named(runs, tmp_path):
    root, arm, ref = runs
    with pytest.raises(ConfigError, match="both ran seed 0"):
        compare_paired([arm[1], fake_run(tmp_path / "again", "se_net", 0, 90.0)], ref)
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    with pytest.raises(ConfigError, match="unfinished is not a finished senet run"):
        compare_paired([unfinished], ref)
    with pytest.raises(ConfigError, match="no run folder matches"):
        compare_paired([str(root / "nothing_*")], ref)
    with pytest.raises(ConfigError, match="unknown metric 'top9'"):
        compare_paired(arm, ref, metric="top9")
    no_flip = fake_run(tmp_path / "no_flip", "se_net", 0, 94.0)
    with pytest.raises(ConfigError, match=r"no final_flip_top1 \(train with train.eval_flip"):
        compare_paired([no_flip], ref, metric="final_flip_top1")


def test_a_network_with_attention_put_in_by_its_config_is_labelled_so(tmp_path):
    # The constant-scale control is resnet110_cifar with model.attn=scale: its label must not
    # read as the plain network it is paired with.
    arm = [
        fake_run(tmp_path / f"scaled_{s}", "plain_net", s, 94.0 + s, attn="scale") for s in (0, 1)
    ]
    ref = [fake_run(tmp_path / f"plain_{s}", "plain_net", s, 93.0 + s) for s in (0, 1)]
    paired = compare_paired(arm, ref)
    assert paired.arm.label == "plain_net (attn=scale)" and paired.reference.label == "plain_net"
    assert paired.difference.differences == pytest.approx({0: 1.0, 1: 1.0})
