"""train(config) end to end: the run folder, the checks before training, the CLI commands."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from _tiny_models import QUICK, tiny_models_registered
from typer.testing import CliRunner

from senet.cli import app
from senet.data import DataError
from senet.data.fashion_mnist import SYSTEM_DIR
from senet.evaluation import EvalSource, EvaluationReport, compare_runs, evaluate_weights
from senet.train import (
    CheckpointDir,
    ConfigError,
    load_checkpoint,
    load_config,
    read_weights,
    train,
)


def _config(tmp_path, *extra):
    return load_config(None, [*QUICK, f"output_dir={tmp_path / 'run'}", *extra])


@pytest.fixture(autouse=True, scope="module")
def _registered_tiny_models():
    with tiny_models_registered():
        yield


@pytest.fixture(scope="module")
def run(tmp_path_factory, _registered_tiny_models):
    """One 3-epoch run with EMA, warm-up and BN freezing in the last epoch."""
    out = tmp_path_factory.mktemp("runs")
    cfg = load_config(
        None,
        [
            *QUICK,
            f"output_dir={out / 'tiny'}",
            "train.epochs=3",
            "train.ema=true",
            "train.ema_decay=0.9",
            "train.freeze_bn_epochs=1",
            "schedule.warmup_epochs=1",
        ],
    )
    return out / "tiny", train(cfg)


def test_run_folder_contents(run):
    folder, summary = run
    for name in (
        "config.yaml",
        "metrics.csv",
        "summary.json",
        "best.safetensors",
        "last.safetensors",
        "ema.safetensors",
        "curves.png",
    ):
        assert (folder / name).is_file(), name
    # One checkpoint per epoch (8 steps each), named by global step and digest.
    names = [p.name for p in CheckpointDir(folder / "checkpoints").paths()]
    assert [n[:13] for n in names] == ["step-00000008", "step-00000016", "step-00000024"]
    assert list((folder / "tensorboard").glob("events.out.tfevents.*"))
    with open(folder / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert [r["bn_frozen"] for r in rows] == ["0", "0", "1"]
    assert json.loads((folder / "summary.json").read_text())["best_top1"] == summary["best_top1"]
    assert load_config(folder / "config.yaml").train.epochs == 3


def test_summary_numbers(run):
    _, summary = run
    assert summary["train_images"] == 256 and summary["val_images"] == 64
    # TinyNet(width 8): convs 3*8*9 + 8*16*9, BN 2*(8+16), FC 16*4 + 4.
    assert summary["params"] == 216 + 1152 + 48 + 68
    assert summary["lr"] == pytest.approx(1.6 * 32 / 256)  # linear scaling from batch 256
    assert 1 <= summary["best_epoch"] <= 3 and summary["best_top1"] >= summary["final_top1"]
    # 4 learnable classes, 64 val images: chance is 25% +- 5.4 (one sd); 3 noisy epochs (LR 0.2,
    # BN frozen in the last) land at 42-50% over seeds 0-2.
    assert summary["best_top1"] > 40


def test_best_weights_reproduce_the_best_score(run):
    folder, summary = run
    _, meta = read_weights(folder / "best.safetensors")
    assert meta["model"] == "_test_tinynet" and meta["epoch"] == summary["best_epoch"]
    source = EvalSource("_test_tinynet", folder / "best.safetensors", "synthetic", size=64)
    report = evaluate_weights(source, output_dir=folder / "eval")
    assert isinstance(report, EvaluationReport)
    assert report.top1 == pytest.approx(summary["best_top1"])
    assert (folder / "eval" / "confusion.png").is_file()
    assert int(report.confusion.sum()) == 64
    # eval.json keeps the keys (and order) it had when the report was a dict; no confusion.
    on_disk = json.loads((folder / "eval" / "eval.json").read_text())
    assert list(on_disk) == [
        "model", "weights", "data", "images", "loss", "top1", "top5", "per_class",
        "preprocessing", "output_dir",
    ]  # fmt: skip
    assert on_disk == report.to_dict()
    assert on_disk["weights"] == str(folder / "best.safetensors")
    assert on_disk["output_dir"] == str(folder / "eval")
    assert list(on_disk["per_class"]) == [f"class_{k}" for k in range(4)]
    assert list(on_disk["preprocessing"]) == ["mean", "std", "image_size"]


def test_eval_flip_adds_tta_metrics_without_changing_the_run(tmp_path):
    plain = train(_config(tmp_path / "plain", "train.epochs=2"))
    flipped = train(_config(tmp_path / "flip", "train.epochs=2", "train.eval_flip=true"))
    # The second forward pass draws nothing from the training stream: the same run, same scores.
    assert flipped.final_top1 == plain.final_top1 and flipped.best_top1 == plain.best_top1
    assert plain.final_flip_top1 is None
    with open(tmp_path / "flip" / "run" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["val_flip_top1"]) for r in rows][-1] == flipped.final_flip_top1
    assert all(r["val_flip_loss"] and r["val_flip_top5"] for r in rows)
    # The same number from the saved weights, through `senet evaluate --flip`.
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "_test_tinynet",
            "--weights",
            str(tmp_path / "flip" / "run" / "last.safetensors"),
            "--data",
            "synthetic",
            "--size",
            "64",
            "--output",
            str(tmp_path / "ev"),
            "--flip",
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    on_disk = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert on_disk["flip_top1"] == pytest.approx(flipped.final_flip_top1)
    assert on_disk["top1"] == pytest.approx(flipped.final_top1)
    assert (
        f"with flip TTA (mean logits of image and mirror): top-1 {on_disk['flip_top1']:.2f}%"
        in result.output
    )


def test_checkpoint_holds_the_full_training_state(run):
    folder, _ = run
    path, state = CheckpointDir(folder / "checkpoints").newest_valid()
    assert load_checkpoint(path)["step"] == state["step"]  # the same file, read by path
    assert state["epoch"] == 3 and state["step"] == 3 * 8
    assert state["world_size"] == 1 and state["global_batch"] == 32
    assert state["totals"]["step"] == 0  # an epoch-end checkpoint: nothing to carry over
    assert {
        "model",
        "optimizer",
        "scheduler",
        "scaler",
        "ema",
        "rng",
        "config",
        "history",
        "best",
    } <= set(state)
    assert state["scheduler"]["last_epoch"] == 24
    assert state["config"]["train"]["epochs"] == 3 and len(state["history"]) == 3


def test_resume_after_a_crash_ends_with_the_uninterrupted_weights(tmp_path, monkeypatch):
    import senet.train.fit_loop as fit_module

    extra = [
        "train.epochs=3",
        "train.ema=true",
        "schedule.name=cosine",
        "data.augment=true",
        "log.tensorboard=false",
        "log.plots=false",
    ]
    full = train(_config(tmp_path / "a", *extra))
    real = fit_module.train_one_epoch
    calls = []

    def crash_in_epoch_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(fit_module, "train_one_epoch", crash_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train(_config(tmp_path / "b", *extra))
    monkeypatch.setattr(fit_module, "train_one_epoch", real)
    folder = tmp_path / "b" / "run"
    assert CheckpointDir(folder / "checkpoints").newest_valid()[1]["epoch"] == 2
    resumed = train(_config(tmp_path / "b", *extra), resume="auto")
    for name in ("last.safetensors", "ema.safetensors"):  # the EMA resumes too
        a, _ = read_weights(tmp_path / "a" / "run" / name)
        b, _ = read_weights(folder / name)
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}: {key}"
    assert resumed["final_top1"] == full["final_top1"]
    with open(folder / "metrics.csv") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1", "2", "3"]


def test_resume_with_a_different_config_names_the_differences(tmp_path):
    train(_config(tmp_path, "train.epochs=1"))
    with pytest.raises(ConfigError, match=r"optim\.lr: 1\.6 -> 0\.8"):
        train(
            _config(tmp_path, "train.epochs=1", "optim.lr=0.8"),
            resume=tmp_path / "run",
        )


def test_class_count_mismatch_fails_before_training(tmp_path):
    with pytest.raises(ConfigError, match=r"model.num_classes=10 but synthetic has 4 classes"):
        train(_config(tmp_path, "model.num_classes=10"))
    assert not (tmp_path / "run" / "metrics.csv").exists()


def test_model_head_mismatch_found_by_the_forward_check(tmp_path):
    # A builder that ignores num_classes: caught by the dry forward pass.
    with pytest.raises(ConfigError, match=r"outputs \(7,\) logits per image but synthetic has 4"):
        train(
            _config(
                tmp_path, "model.kwargs={num_classes_override: 7}", "model.name=_test_fixed_head"
            )
        )


def test_unknown_model_and_bad_model_argument(tmp_path):
    with pytest.raises(ConfigError, match=r"model\.name=_test_tinynt: unknown model.*did you mean"):
        train(_config(tmp_path, "model.name=_test_tinynt"))
    with pytest.raises(ConfigError, match=r"cannot build model '_test_tinynet'\(.*depth=3"):
        train(_config(tmp_path, "model.kwargs={depth: 3}"))


def test_in_chans_mismatch(tmp_path):
    with pytest.raises(ConfigError, match=r"model\.in_chans=1 but synthetic images have 3"):
        train(_config(tmp_path, "model.in_chans=1"))


def test_output_folder_not_writable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="is not writable"):
        train(load_config(None, [*QUICK, f"output_dir={blocker / 'run'}"]))


def test_missing_data_fails_before_training(tmp_path):
    with pytest.raises(DataError, match="not found"):
        train(_config(tmp_path, "data.name=cifar10", f"data.root={tmp_path / 'none'}"))


def test_cli_train_evaluate_compare(tmp_path, run):
    runner = CliRunner()
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  epochs: 1\n")
    out = tmp_path / "cli_run"
    result = runner.invoke(app, ["train", str(recipe), *QUICK, f"output_dir={out}"])
    assert result.exit_code == 0, result.output
    assert (out / "summary.json").is_file()
    bad = runner.invoke(app, ["train", str(recipe), "optim.lrr=1"])
    assert bad.exit_code == 2 and "unknown config key 'optim.lrr'" in bad.output
    result = runner.invoke(
        app,
        [
            "evaluate",
            "_test_tinynet",
            "--weights",
            str(out / "best.safetensors"),
            "--data",
            "synthetic",
            "--size",
            "32",
            "--output",
            str(tmp_path / "ev"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "class_0" in result.output and (tmp_path / "ev" / "per_class.csv").is_file()
    plot = tmp_path / "cmp.png"
    result = runner.invoke(
        app, ["compare", str(out), str(run[0]), "--plot", str(plot)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "cli_run" in result.output and "tiny" in result.output and plot.is_file()
    rows, _ = compare_runs([out, run[0]])
    assert [r["epochs"] for r in rows] == [1, 3]


def test_cli_evaluate_takes_a_run_folder(tmp_path, run):
    """A run folder names its model, data and weights: the same report as spelling them out."""
    folder, _ = run
    runner = CliRunner()

    def eval_json(*args: str, out: str) -> dict:
        report = tmp_path / out
        result = runner.invoke(app, ["evaluate", *args, "--size", "32", "--output", str(report)])
        assert result.exit_code == 0, result.output
        return json.loads((report / "eval.json").read_text())

    named = eval_json(
        "_test_tinynet", "--weights", str(folder / "best.safetensors"), "--data", "synthetic",
        out="named",
    )  # fmt: skip
    from_folder = eval_json(str(folder), out="folder")
    assert from_folder["weights"] == str(folder / "best.safetensors")
    assert (from_folder["model"], from_folder["data"]) == ("_test_tinynet", "synthetic")
    assert from_folder["top1"] == named["top1"] and from_folder["loss"] == named["loss"]
    # --weights picks another file of the run; the model and data stay the run's.
    last = eval_json(str(folder), "--weights", str(folder / "last.safetensors"), out="last")
    assert last["weights"] == str(folder / "last.safetensors") and last["model"] == "_test_tinynet"
    # A model name cannot guess its data; a folder that is not a run says what to pass instead.
    no_data = runner.invoke(
        app, ["evaluate", "_test_tinynet", "--weights", str(folder / "best.safetensors")]
    )
    assert no_data.exit_code == 2 and "--data is needed with --weights" in no_data.output
    not_run = runner.invoke(app, ["evaluate", str(tmp_path)])
    assert not_run.exit_code == 2 and "not a senet run folder" in not_run.output


@pytest.mark.skipif(not SYSTEM_DIR.is_dir(), reason=f"Fashion-MNIST not installed in {SYSTEM_DIR}")
def test_short_real_run_on_fashion_mnist(tmp_path):
    cfg = load_config(
        None,
        [
            "model.name=se_resnet20_cifar",
            "data.name=fashion_mnist",
            f"data.root={tmp_path / 'data'}",
            "data.train_size=512",
            "data.val_size=256",
            "data.batch_size=32",
            "train.epochs=1",
            "optim.lr=0.05",
            "optim.lr_base_batch=null",
            "data.augment=false",
            "log.progress=none",
            f"output_dir={tmp_path / 'run'}",
        ],
    )
    summary = train(cfg)
    assert summary["train_images"] == 512 and summary["val_images"] == 256
    assert summary["input_size"] == [1, 28, 28]
    # One epoch on 512 images (measured: 36.7%): far above chance (10%) on real test images.
    assert summary["final_top1"] > 25


def test_evaluate_timm_weights_with_their_preprocessing(tmp_path):
    """A timm resnet18 checkpoint (2 classes) scores in senet what timm itself scores."""
    timm = pytest.importorskip("timm")
    from PIL import Image

    from senet.data import create_dataset
    from senet.data.transforms import imagenet_eval_transform

    gen = torch.Generator().manual_seed(0)
    for cls in ("a", "b"):
        (tmp_path / "val" / cls).mkdir(parents=True)
        for i in range(3):
            pixels = torch.randint(0, 256, (60, 80, 3), generator=gen, dtype=torch.uint8)
            Image.fromarray(pixels.numpy()).save(tmp_path / "val" / cls / f"{i}.png")
    reference = timm.create_model("resnet18", num_classes=2).eval()
    torch.save(reference.state_dict(), tmp_path / "timm_resnet18.pth")

    source = EvalSource(
        "resnet18", tmp_path / "timm_resnet18.pth", "imagefolder", root=str(tmp_path)
    )
    report = evaluate_weights(source, output_dir=tmp_path / "eval")
    # timm's own predictions with the preprocessing of its pretrained_cfg (resize 256, crop 224).
    tf = imagenet_eval_transform(224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), resize=256)
    ds, _ = create_dataset("imagefolder", "val", root=tmp_path)
    images = torch.stack([tf(ds.loader(path)) for path, _ in ds.samples])
    targets = torch.tensor([t for _, t in ds.samples])
    with torch.no_grad():
        logits = reference(images)
    expected_loss = torch.nn.functional.cross_entropy(logits, targets).item()
    expected_top1 = 100.0 * (logits.argmax(1) == targets).float().mean().item()
    assert report.loss == pytest.approx(expected_loss, abs=1e-4)
    assert report.top1 == pytest.approx(expected_top1)
    assert report.preprocessing["crop_pct"] == 0.875

    with pytest.raises(ConfigError, match="has a 2-class head but the data has 4 classes"):
        for cls in ("c", "d"):
            (tmp_path / "val" / cls).mkdir()
            Image.new("RGB", (8, 8)).save(tmp_path / "val" / cls / "x.png")
        evaluate_weights(source)


def test_missing_tensorboard_is_a_one_line_notice(tmp_path, monkeypatch):
    import sys

    from senet.train.run_log import RunLog

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    notices = []
    log = RunLog(tmp_path, tensorboard=True, notice=notices.append)
    assert log.writer is None and len(notices) == 1 and "tensorboard is not installed" in notices[0]
    log.add_epoch({"epoch": 1, "train_loss": 1.0})
    assert (tmp_path / "metrics.csv").read_text().splitlines()[1].startswith("1,,1.0")


def test_demo_tour_still_runs():
    result = CliRunner().invoke(app, ["demo", "--tour"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "cbam" in result.output and "none (input)" in result.output


def test_initial_weights_of_another_model_are_refused_whole(run, tmp_path):
    folder, _ = run
    config = _config(
        tmp_path, "model.name=resnet20_cifar", f"model.weights={folder / 'best.safetensors'}"
    )
    with pytest.raises(
        ConfigError,
        match=r"model\.weights=.*best\.safetensors: holds weights of '_test_tinynet', not "
        r"'resnet20_cifar'; name the model '_test_tinynet' instead",
    ):
        train(config)
    assert not list(tmp_path.glob("**/summary.json"))
