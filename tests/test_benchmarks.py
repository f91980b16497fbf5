"""The benchmark scripts still run against senet's current API.

They are not part of the package, so nothing else would notice when a refactor changes a call
they make (bench_train.py once called ``train_one_epoch`` with arguments it no longer takes and
failed only on the GPU machine). Each is imported, and the pieces that call senet run on a tiny
input. No timing is asserted.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

import senet

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # as when a script runs: its helpers (_timing) import


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPTS = sorted(p.stem for p in BENCHMARKS.glob("*.py") if not p.stem.startswith("_"))


@pytest.mark.parametrize("name", SCRIPTS, ids=lambda n: n)  # _timing is their helper, not a script
def test_every_benchmark_imports_and_has_a_main(name):
    assert callable(_load(name).main)


def test_bench_train_trains_through_senets_trainer():
    bench = _load("bench_train")
    model = senet.create_model("resnet20_cifar", num_classes=10, in_chans=1)
    before = [p.detach().clone() for p in model.parameters()]
    batches = [(torch.randn(4, 1, 28, 28), torch.randint(0, 10, (4,))) for _ in range(2)]
    args = argparse.Namespace(amp="none", channels_last=False)
    rate = bench.images_per_second(model, batches, args, torch.device("cpu"))
    assert rate > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize("mode", ["fp32", "bf16-cl"])
def test_bench_se_overhead_train_step_runs(mode):
    bench = _load("bench_se_overhead")
    step = bench._train_step_fn("se_resnet20_cifar", mode, 4, "cpu")
    first, second = step().item(), step().item()
    assert torch.isfinite(torch.tensor([first, second])).all()


def test_the_benchmarks_timer_keeps_the_process_thread_count():
    # torch.utils.benchmark.Timer times on one thread unless given num_threads
    median_seconds = _load("_timing").median_seconds
    seen = []
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        median_seconds(lambda: seen.append(torch.get_num_threads()), min_run_time=0.01)
    finally:
        torch.set_num_threads(before)
    assert seen and set(seen) == {2}


def test_bench_squeeze_times_both_squeezes_and_rejects_bad_shapes():
    bench = _load("bench_squeeze")
    times = bench.squeeze_times((2, 8, 6, 6), threads=1, min_run_time=0.01)
    assert times.keys() == {"matmul", "mean"} and all(t > 0 for t in times.values())
    assert bench.parse_shape("8x256x56x56") == (8, 256, 56, 56)
    with pytest.raises(argparse.ArgumentTypeError, match="N x C x H x W"):
        bench.parse_shape("8x256x56")


def test_bench_se_overhead_profile_sees_the_se_operators():
    bench = _load("bench_se_overhead")
    base = bench._self_ms_per_op(bench._train_step_fn("resnet20_cifar", "bf16-cl", 4, "cpu"), 1)
    se = bench._self_ms_per_op(bench._train_step_fn("se_resnet20_cifar", "bf16-cl", 4, "cpu"), 1)
    assert all(ms >= 0 for ms in base.values()) and sum(base.values()) > 0
    # SE's gate and scale run operators that the plain net does not run at all
    assert {"aten::sigmoid", "aten::addcmul"} <= set(se) - set(base)


def test_bench_se_overhead_inference_fast_mode_runs():
    bench = _load("bench_se_overhead")
    model = senet.create_model("se_resnet20_cifar", num_classes=10)
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        out = bench._inference_fn(model, "fast", x)()
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_bench_stage_layout_variants_compute_the_same_function():
    bench = _load("bench_stage_layout")
    x = torch.randn(2, 1, 28, 28)
    outputs = {}
    for layout in ("nchw", "channels_last", "mixed"):
        torch.manual_seed(0)
        model = bench.build("resnet20_cifar", layout).eval()
        with torch.no_grad():
            outputs[layout] = model(x.contiguous(memory_format=bench.CL))
        if layout == "mixed":  # the switch sits before stage 2, and stage 1 stays NCHW
            assert isinstance(model.layer2[0], bench.ToChannelsLast)
            assert model.layer1[0].conv1.weight.is_contiguous()
            assert model.layer3[0].conv1.weight.is_contiguous(memory_format=bench.CL)
    torch.testing.assert_close(outputs["mixed"], outputs["nchw"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(outputs["channels_last"], outputs["nchw"], rtol=1e-4, atol=1e-5)
    batches = [(x, torch.randint(0, 10, (2,)))]
    before = [p.detach().clone() for p in model.parameters()]
    assert bench.step_rate(model.train(), "mixed", batches) > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_bench_auto_sets_autos_pick_against_every_candidate(tmp_path):
    from senet.models.precision import candidate_modes

    bench = _load("bench_auto")
    tiny = ["--depths", "20", "--batch", "4", "--rounds", "1", "--steps", "1", "--epochs", "1"]
    tiny += ["--train-images", "64", "--no-compile", "--inference-batches", "2"]
    tiny += ["--inference-pair", "se_resnet20_cifar", "resnet20_cifar"]
    tiny += ["--inference-size", "3", "16", "16", "--json", str(tmp_path / "auto.json")]
    results = bench.main(tiny)
    pair = results["train"][0]
    assert [row["model"] for row in pair["models"]] == ["se_resnet20_cifar", "resnet20_cifar"]
    for row in pair["models"]:
        assert set(row["candidates_ms"]) == {m.label for m in candidate_modes("cpu")}
        assert row["auto_vs_fastest"] >= 1.0 and row["fastest"] in row["candidates_ms"]
        assert "(too short:" in row["why"]  # 16 steps: auto does not measure, fp32 NCHW
    assert pair["joint"] == "fp32 NCHW" and pair["se_overhead"] > -1
    (row,) = results["inference"]
    assert row["batch"] == 2 and set(row["dtype"].values()) <= {"fp32", "bf16"}
    assert "| 20 | fp32 NCHW |" in bench.report(results)
    assert "| se_resnet20_cifar | fp32 NCHW (too short) |" in bench.report(results)
    assert (tmp_path / "auto.json").exists()


def _gpu_steps() -> list[tuple[int, list[str], bool]]:
    """gpu.sh's steps: (time limit, command words, only with EXTRA=1)."""
    import shlex

    text = (BENCHMARKS / "gpu.sh").read_text().replace("\\\n", " ")
    steps, extra = [], False
    for line in text.splitlines():
        extra = extra or (line.startswith("if [") and "EXTRA" in line)
        if line.strip().startswith("step "):
            words = shlex.split(line.strip())
            steps.append((int(words[1]), words[2:], extra))
    return steps


def test_gpu_sh_fits_eight_minutes_and_its_commands_parse_here():
    # The script runs only where a GPU is lent: what can be checked without one is checked here,
    # so a renamed option or config key fails now, not in a short device lease.
    from senet.train import load_config

    steps = _gpu_steps()
    assert sum(limit for limit, _, extra in steps if not extra) <= 8 * 60
    checked = 0
    for _, words, _ in steps:
        words = [w.replace("$OUT", "/tmp/out") for w in words]
        if words[1:2] == ["benchmarks/bench_auto.py"]:
            args = _load("bench_auto").parse_args(words[2:])
            assert args.device == "cuda"
            checked += 1
        elif "senet" in words and "train" in words:
            recipe, *overrides = words[words.index("train") + 1 :]
            config = load_config(recipe, overrides)
            assert config.train.amp == "auto" and config.train.compile == "auto"
            checked += 1
        elif words[1:3] == ["-m", "pytest"]:
            assert all((BENCHMARKS.parent / w).exists() for w in words if w.startswith("tests/"))
            checked += 1
    assert checked == 4
