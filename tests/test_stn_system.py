"""STN in front of any model (senet.with_stn, model.stn) and RTS-distorted data (data.distort)."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _idx_files import write_fashion_mnist
from _tiny_models import QUICK, tiny_models_registered
from torch import nn

import senet
from senet.config import ConfigError, create_model_from_config
from senet.data import DataError, create_dataset
from senet.data.distort import default_canvas, rts_distort
from senet.layers import SpatialTransformer
from senet.models import STNClassifier
from senet.plots.stn import rectified_pairs
from senet.train import load_config, read_weights, train

CLI = Path(__file__).resolve().parent / "_senet_cli.py"
RTS = [*QUICK, "data.channels=1", "data.distort=rts", "model.stn=affine", "log.plots=false"]


# --- senet.with_stn ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "in_chans", "kwargs"),
    [
        ("resnet20_cifar", 1, {"in_chans": 1}),
        ("torchvision:resnet18", 3, {"num_classes": 10}),
        ("timm:resnet10t", 2, {"in_chans": 2, "num_classes": 10}),
    ],
)
def test_with_stn_starts_as_the_identity_on_senet_torchvision_and_timm(spec, in_chans, kwargs):
    torch.manual_seed(0)
    model = senet.create_model(spec, **kwargs).eval()
    wrapped = senet.with_stn(model).eval()
    assert isinstance(wrapped.stn, SpatialTransformer) and wrapped.model is model
    assert wrapped.in_chans == in_chans  # read from the model's first conv
    x = torch.randn(2, in_chans, 36, 36)
    with torch.no_grad():
        # The identity theta samples every pixel centre exactly (align_corners=False).
        torch.testing.assert_close(wrapped.rectify(x), x, atol=1e-4, rtol=0)
        torch.testing.assert_close(wrapped(x), model(x), atol=1e-4, rtol=1e-4)
    assert sorted({k.split(".")[0] for k in wrapped.state_dict()}) == ["model", "stn"]


def test_with_stn_output_size_and_gradients_reach_the_localisation_net():
    model = senet.with_stn(senet.create_model("resnet20_cifar", in_chans=1), output_size=28)
    x = torch.randn(4, 1, 42, 42)
    assert model.rectify(x).shape == (4, 1, 28, 28)
    model(x).logsumexp(1).sum().backward()
    # At init the regressor's last layer is zero, so only it (and its bias) get gradients.
    last = model.stn.regressor[-1]
    assert last.weight.grad.abs().sum() > 0 and last.bias.grad.abs().sum() > 0
    assert model.pretrained_cfg["input_size"] == (1, 32, 32) and model.num_classes == 10
    model.reset_classifier(3)
    assert model(x).shape == (4, 3) and model.num_classes == 3


def test_with_stn_runs_compiled():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    model = senet.with_stn(net).eval()
    x = torch.randn(2, 1, 20, 20)
    with torch.no_grad():
        expected = model(x)
        compiled = torch.compile(model, backend="eager", fullgraph=True)
        torch.testing.assert_close(compiled(x), expected)


def test_with_stn_bad_input_is_a_clear_error():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with pytest.raises(ValueError, match="first weighted layer is a Linear, not a Conv2d"):
        senet.with_stn(mlp)
    with pytest.raises(ValueError, match="no weighted layer"):
        senet.with_stn(nn.ReLU())
    with pytest.raises(ValueError, match=r"unknown kind 'tps' \(model.stn\)"):
        senet.with_stn(senet.create_model("resnet20_cifar"), kind="tps")
    model = senet.with_stn(senet.create_model("resnet20_cifar", in_chans=1), output_size=28)
    with pytest.raises(ValueError, match=r"resamples \(N, 1, H, W\) images, got shape \(4, 784\)"):
        model(torch.randn(4, 784))
    with pytest.raises(ValueError, match=r"the 20x20 input canvas is smaller than the 28x28"):
        model(torch.randn(1, 1, 20, 20))
    with pytest.raises(ValueError, match="already has a spatial transformer"):
        senet.with_stn(model)


# --- the RTS distortion -----------------------------------------------------------------------


def _square(side=28, size=12, n=64):
    images = torch.zeros(n, 1, side, side, dtype=torch.uint8)
    start = (side - size) // 2
    images[:, :, start : start + size, start : start + size] = 200
    return images


def test_rts_without_distortion_is_the_identity_and_draws_are_fixed():
    images = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8)
    same = rts_distort(images, canvas=28, degrees=0.0, scale=(1.0, 1.0))
    assert torch.equal(same, images)  # no shift room on a 28 canvas, no rotation, no zoom
    a, b = rts_distort(images, seed=3), rts_distort(images, seed=3)
    assert a.shape == (5, 1, 42, 42) and a.dtype == torch.uint8 and torch.equal(a, b)
    assert not torch.equal(a, rts_distort(images, seed=4))
    assert default_canvas(28) == 42 and default_canvas(32) == 48


def test_rts_scales_rotates_and_translates_within_the_protocol():
    # A 12x12 square keeps an area of 144 * zoom^2 with zoom in [0.7, 1.2] (rotation keeps
    # area); its centre moves by at most (42 - 28) / 2 = 7 pixels each way.
    out = rts_distort(_square(), seed=0).float() / 200
    area = out.sum(dim=(1, 2, 3))
    assert area.min() > 144 * 0.7**2 * 0.97 and area.max() < 144 * 1.2**2 * 1.03
    assert area.max() / area.min() > 1.8  # the zooms differ (1.2^2 / 0.7^2 = 2.9 at most)
    ys, xs = torch.meshgrid(torch.arange(42.0), torch.arange(42.0), indexing="ij")
    centre_y = (out[:, 0] * ys).sum(dim=(1, 2)) / area
    centre_x = (out[:, 0] * xs).sum(dim=(1, 2)) / area
    for centre in (centre_y, centre_x):
        assert (centre - 20.5).abs().max() <= 7.05
        assert (centre - 20.5).abs().max() > 4  # positions vary over the canvas
    # Rotation: an axis-aligned square covers fewer pixels partly lit than a rotated one.
    partial = ((out > 0.1) & (out < 0.9)).sum(dim=(1, 2, 3)).float()
    assert partial.max() > 2 * partial.min()


def test_rts_canvas_smaller_than_the_images_is_a_clear_error():
    with pytest.raises(ValueError, match=r"^canvas=20: smaller than the 28x28"):
        rts_distort(_square(), canvas=20)


def test_dataset_distort_option_and_its_errors(tmp_path):
    train_set, info = create_dataset("synthetic", "train", size=16, channels=1, distort="rts")
    val_set, _ = create_dataset("synthetic", "val", size=16, channels=1, distort="rts")
    assert val_set.images.shape == (16, 1, 48, 48)
    assert info.image_size == 48 and train_set.images.shape == (16, 1, 48, 48)
    # Fashion-MNIST on a 42 canvas: the same distorted images every time (it takes no seed).
    write_fashion_mnist(tmp_path)  # synthetic IDX files: no need for the real set
    fmnist = [
        create_dataset("fashion_mnist", "train", root=tmp_path, size=8, distort="rts")
        for _ in range(2)
    ]
    assert fmnist[0][1].image_size == 42
    assert torch.equal(fmnist[0][0].images, fmnist[1][0].images)
    plain, _ = create_dataset("synthetic", "train", size=16, channels=1, distort="none")
    assert plain.images.shape[-1] == 32
    with pytest.raises(DataError, match=r"distort='rotate': unknown distortion; expected one of"):
        create_dataset("synthetic", "train", size=16, distort="rotate")
    with pytest.raises(DataError, match="not on imagefolder"):
        create_dataset("imagefolder", "train", root="/nonexistent", distort="rts")


def test_config_fields_and_their_errors():
    config = load_config(None, ["model.stn=affine", "model.stn_size=28", "data.distort=rts"])
    assert (config.model.stn, config.model.stn_size, config.data.distort) == ("affine", 28, "rts")
    assert load_config(None, []).model.stn is None and load_config(None, []).data.distort is None
    with pytest.raises(ConfigError, match=r"'data.distort' expects 'none' \| 'rts' \| null"):
        load_config(None, ["data.distort=rotate"])
    with pytest.raises(ConfigError, match=r"'model.stn' expects 'affine' \| null"):
        load_config(None, ["model.stn=tps"])
    with pytest.raises(ConfigError, match=r"'data.distort_canvas' must be >= 1"):
        load_config(None, ["data.distort_canvas=0"])
    model, kwargs = create_model_from_config(config.model, num_classes=10, in_chans=1)
    assert isinstance(model, STNClassifier) and model.output_size == (28, 28)
    assert kwargs["stn"] == {"kind": "affine", "output_size": 28}
    vit_cfg = load_config(None, ["model.name=torchvision:vit_b_16", "model.stn=affine"]).model
    with torch.device("meta"):
        vit, _ = create_model_from_config(vit_cfg, num_classes=10, in_chans=3)
    assert isinstance(vit.stn, SpatialTransformer)  # a ViT starts with a Conv2d patch embedding


# --- training, evaluating, DDP --------------------------------------------------------------------


def test_training_with_stn_on_rts_data_saves_the_picture(tmp_path):
    with tiny_models_registered():
        overrides = [*RTS, "train.epochs=2", f"output_dir={tmp_path / 'run'}"]
        summary = train(load_config(None, overrides))
        assert summary["input_size"] == [1, 24, 24]  # 16x16 synthetic images on a 24 canvas
        assert summary["model_kwargs"]["stn"] == {"kind": "affine", "output_size": None}
        assert (tmp_path / "run" / "stn_rectified.png").stat().st_size > 5000
        weights, meta = read_weights(tmp_path / "run" / "last.safetensors")
        assert any(k.startswith("stn.localization.") for k in weights)
        assert meta["data_args"]["distort"] == "rts"
        # The STN learned something: theta moved away from the identity.
        bias = weights["stn.regressor.2.bias"]
        assert not torch.allclose(bias, torch.tensor([1.0, 0, 0, 0, 1, 0]))

        # The model rebuilt from the run's metadata (as `senet evaluate` does) agrees.
        from senet.evaluation import EvalSource, evaluate_weights

        source = EvalSource(
            "_test_tinynet", tmp_path / "run" / "last.safetensors", "synthetic", device="cpu"
        )
        report = evaluate_weights(source)
        assert report.top1 == pytest.approx(summary["final_top1"])

        # `senet analyze` draws the STN picture too (this tiny model has no gates to analyse).
        from senet.analysis import analyze_weights

        out = tmp_path / "analysis"
        with pytest.raises(ConfigError, match=r"no attention module.*the STN's inputs and outputs"):
            analyze_weights(source, output_dir=out)
        assert (out / "stn_rectified.png").stat().st_size > 5000


def test_rectified_pairs_needs_an_stn():
    dataset, _ = create_dataset("synthetic", "val", size=4, channels=1)
    model = senet.create_model("resnet20_cifar", in_chans=1)
    with pytest.raises(ValueError, match="no spatial transformer in front; train it with"):
        rectified_pairs(model, dataset)
    inputs, outputs = rectified_pairs(senet.with_stn(model), dataset, count=3)
    assert inputs.shape == outputs.shape == (3, 1, 32, 32)
    torch.testing.assert_close(outputs, inputs, atol=1e-5, rtol=0)  # identity at init


def test_a_model_that_cannot_take_the_canvas_fails_naming_the_setting(tmp_path):
    overrides = [*RTS, "model.name=resnet20_cifar", "model.stn_size=64"]
    with pytest.raises(ConfigError, match=r"24x24 input canvas is smaller than the 64x64"):
        train(load_config(None, [*overrides, f"output_dir={tmp_path}"]))
    small = [*QUICK, "data.channels=1", "model.name=attention92_cifar", "data.image_size=7"]
    with pytest.raises(ConfigError, match=r"at least 8x8 \(e.g. set data.image_size=8"):
        train(load_config(None, [*small, f"output_dir={tmp_path}"]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_stn_under_ddp_matches_one_process(tmp_path):
    # BN-free tiny model: two Gloo processes with 16 images each make the same steps as one
    # process with 32 (see test_train_ddp.py).
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("{}\n")
    common = [*RTS, "model.kwargs={norm: false}", "train.epochs=1", "train.device=cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
        f"--master_port={_free_port()}", str(CLI), "train", str(recipe), *common,
        "data.batch_size=16", f"output_dir={tmp_path / 'ddp'}",
    ]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    with tiny_models_registered():
        train(load_config(None, [*common, f"output_dir={tmp_path / 'one'}"]))
    ddp, _ = read_weights(tmp_path / "ddp" / "last.safetensors")
    one, _ = read_weights(tmp_path / "one" / "last.safetensors")
    assert any(k.startswith("stn.") for k in ddp)
    for name in one:
        torch.testing.assert_close(ddp[name], one[name], rtol=1e-4, atol=1e-5, msg=name)
    assert math.isfinite(float(ddp["stn.regressor.2.bias"].sum()))


def test_base_weights_load_into_the_model_behind_the_stn(tmp_path):
    # model.weights of a plain model (not a senet run) load before the STN goes in front.
    torch.manual_seed(1)
    base = senet.create_model("resnet20_cifar", in_chans=1, num_classes=4)
    torch.save(base.state_dict(), tmp_path / "base.pth")
    overrides = [
        *RTS, "model.name=resnet20_cifar", f"model.weights={tmp_path / 'base.pth'}",
        "train.epochs=1", "data.synthetic_train=32", f"output_dir={tmp_path / 'run'}",
    ]  # fmt: skip
    from senet.train.setup import model_for_data as build_model

    config = load_config(None, overrides)
    val, info = create_dataset("synthetic", "val", size=4, channels=1, num_classes=4)
    model, kwargs, _, _ = build_model(config.model, info, val)
    assert isinstance(model, STNClassifier) and kwargs["stn"]["kind"] == "affine"
    for name, value in base.state_dict().items():
        assert torch.equal(model.model.state_dict()[name], value), name


@pytest.mark.slow
def test_training_compiled_with_stn(tmp_path):
    with tiny_models_registered():
        overrides = [*RTS, "train.epochs=1", "train.compile=true", f"output_dir={tmp_path}"]
        summary = train(load_config(None, overrides))
    weights, _ = read_weights(tmp_path / "last.safetensors")
    assert any(k.startswith("stn.") for k in weights)  # compile kept the state-dict keys
    assert math.isfinite(summary["final_top1"]) and (tmp_path / "stn_rectified.png").is_file()
