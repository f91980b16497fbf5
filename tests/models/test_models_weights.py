"""Checkpoint import: timm, Cadene pretrainedmodels and torchvision state dicts give the same
outputs in senet's models; anything that does not fit is refused before the model changes."""

import shutil
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn

import senet
from senet.models import _pretrained
from senet.models.weights import CheckpointError, WeightsDownloadError, detect_layout


def need_timm():
    """timm, or a skip of only the case that needs it (torchvision cases still run)."""
    return pytest.importorskip("timm", reason="timm is not installed (pip install 'senet[test]')")


def cadene_senet():
    """pretrainedmodels' senet.py (the Cadene ports of the authors' Caffe models), or a skip."""
    pytest.importorskip("six", reason="pretrainedmodels needs six (pip install 'senet[test]')")
    return pytest.importorskip(
        "pretrainedmodels.models.senet",
        reason="pretrainedmodels is not installed (pip install 'senet[test]')",
    )


def prepared(model: nn.Module) -> nn.Module:
    """Random BN statistics and affine terms (timm zero-inits some gammas), eval mode."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    if isinstance(getattr(model, "avg_pool", None), nn.AvgPool2d):
        # Cadene's head is AvgPool2d(7), fixed to 224x224 input; adaptive pooling is the same
        # operation there and lets the comparison run at 64x64.
        model.avg_pool = nn.AdaptiveAvgPool2d(1)
    return model.eval()


def save(state: dict, path: Path) -> Path:
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return path


def reference_models():
    # Each builder imports its reference only when called, so a missing one skips only its cases.
    return {
        # id: (reference builder, senet name, file suffix)
        "timm-seresnet50": (lambda: need_timm().create_model("seresnet50"), "se_resnet50", ".pth"),
        "timm-legacy_seresnet50": (
            lambda: need_timm().create_model("legacy_seresnet50"),
            "se_resnet50",
            ".safetensors",
        ),
        "timm-seresnext50_32x4d": (
            lambda: need_timm().create_model("seresnext50_32x4d"),
            "se_resnext50_32x4d",
            ".safetensors",
        ),
        "timm-legacy_senet154": (
            lambda: need_timm().create_model("legacy_senet154"),
            "senet154",
            ".safetensors",
        ),
        "timm-resnet50": (lambda: need_timm().create_model("resnet50"), "resnet50", ".pth"),
        "cadene-se_resnet50": (
            lambda: cadene_senet().se_resnet50(num_classes=1000, pretrained=None),
            "se_resnet50",
            ".pth",
        ),
        "cadene-se_resnext50_32x4d": (
            lambda: cadene_senet().se_resnext50_32x4d(num_classes=1000, pretrained=None),
            "se_resnext50_32x4d",
            ".pth",
        ),
        "cadene-senet154": (
            lambda: cadene_senet().senet154(num_classes=1000, pretrained=None),
            "senet154",
            ".pth",
        ),
        "torchvision-resnet50": (lambda: torchvision.models.resnet50(), "resnet50", ".safetensors"),
        "torchvision-resnext50_32x4d": (
            lambda: torchvision.models.resnext50_32x4d(),
            "resnext50_32x4d",
            ".pth",
        ),
    }


REFERENCES = [
    "timm-seresnet50", "timm-legacy_seresnet50", "timm-seresnext50_32x4d", "timm-legacy_senet154",
    "timm-resnet50", "cadene-se_resnet50", "cadene-se_resnext50_32x4d", "cadene-senet154",
    "torchvision-resnet50", "torchvision-resnext50_32x4d",
]  # fmt: skip


@pytest.mark.parametrize("ref_id", REFERENCES)
def test_imported_weights_reproduce_the_source_model(ref_id, tmp_path):
    build_ref, name, suffix = reference_models()[ref_id]
    ref = prepared(build_ref())
    path = save(ref.state_dict(), tmp_path / f"weights{suffix}")
    expected_layout = {"timm": "torchvision", "torchvision": "torchvision", "cadene": "cadene"}[
        ref_id.split("-")[0]
    ]
    if "legacy" in ref_id:
        expected_layout = "cadene"
    assert detect_layout(ref.state_dict()) == expected_layout

    # create_model applies the layout the checkpoint needs (stride placement, stem pool).
    model = senet.create_model(name, pretrained=path).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out, ref_out = model(x), ref(x)
    # fp32 rounding through ~50 layers (SE's FCs run as matmuls, its scale fused with the add):
    # ~1e-6 of the logits' size; a wrong weight or layout is off by the logits' size itself
    assert (out - ref_out).abs().max().item() < 1e-5 * max(1.0, ref_out.abs().max().item())
    assert model.pretrained_cfg["weights_layout"] == expected_layout
    assert model.pretrained_cfg["loaded_from"] == str(path)
    if expected_layout == "torchvision":
        assert model.stem_pool == "torch" and not model.stride_in_1x1
    else:
        assert model.stem_pool == "caffe"
        assert model.stride_in_1x1 == (name == "se_resnet50")


@pytest.fixture(scope="module")
def tv_resnet50():
    return prepared(torchvision.models.resnet50())


def test_layout_mismatch_is_refused(tv_resnet50):
    model = senet.create_model("resnet50")  # Caffe layout
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"stem_pool='torch'.*stride_in_1x1=False"):
        senet.load_weights(model, tv_resnet50.state_dict())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    # Loading anyway is possible, and computes something else (the point of the check).
    senet.load_weights(model, tv_resnet50.state_dict(), check_layout=False)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (model.eval()(x) - tv_resnet50(x)).abs().max() > 1e-3


def test_load_weights_into_a_built_model(tv_resnet50, tmp_path):
    model = senet.create_model("resnet50", stride_in_1x1=False, stem_pool="torch").eval()
    assert senet.load_weights(model, tv_resnet50.state_dict()) is model
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (model(x) - tv_resnet50(x)).abs().max() < 1e-5
    # Training checkpoints: nested under "model" and saved from DDP ("module." prefixes). Keys in
    # senet's own layout say nothing about stride placement: the builder arguments must be
    # repeated, as for any state dict.
    wrapped = {"model": {f"module.{k}": v for k, v in model.state_dict().items()}, "epoch": 3}
    path = save(wrapped, tmp_path / "ckpt.pth")
    again = senet.create_model("resnet50", pretrained=path, stride_in_1x1=False, stem_pool="torch")
    with torch.no_grad():
        assert (again.eval()(x) - tv_resnet50(x)).abs().max() < 1e-5
    assert detect_layout(model.state_dict()) == "senet"


def test_new_num_classes_keeps_a_fresh_classifier(tv_resnet50, tmp_path):
    path = save(tv_resnet50.state_dict(), tmp_path / "tv.pth")
    model = senet.create_model("resnet50", pretrained=path, num_classes=10).eval()
    assert model.fc.out_features == 10
    torch.testing.assert_close(model.layer4[2].conv3.weight, tv_resnet50.layer4[2].conv3.weight)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(
            model.forward_head(model.forward_features(x), pre_logits=True),
            torch.flatten(tv_resnet50.avgpool(_tv_features(tv_resnet50, x)), 1),
        )


def _tv_features(m, x):
    x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
    return m.layer4(m.layer3(m.layer2(m.layer1(x))))


def test_mismatched_checkpoint_lists_the_differences(tv_resnet50):
    model = senet.create_model("se_resnet50", stride_in_1x1=False, stem_pool="torch")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as err:
        senet.load_weights(model, tv_resnet50.state_dict())
    message = str(err.value)
    assert "missing from the checkpoint" in message and "layer1.0.attn.fc1.weight" in message
    assert "only attention weights differ" in message
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())

    small = senet.create_model("se_resnet18", attn_kwargs={"reduction": 8})
    with pytest.raises(CheckpointError, match=r"shape mismatches: layer1\.0\.attn\.fc1\.weight"):
        senet.load_weights(small, senet.create_model("se_resnet18").state_dict())
    with pytest.raises(CheckpointError, match="check in_chans"):
        senet.load_weights(senet.create_model("resnet18", in_chans=1), model_state("resnet18"))


def model_state(name):
    return senet.create_model(name).state_dict()


def test_unreadable_files_are_refused(tmp_path):
    state = model_state("resnet20_cifar")
    for suffix in (".pth", ".safetensors"):
        path = save(state, tmp_path / f"w{suffix}")
        truncated = tmp_path / f"truncated{suffix}"
        truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        with pytest.raises(CheckpointError, match="truncated"):
            senet.load_weights(senet.create_model("resnet20_cifar"), truncated)
    with pytest.raises(CheckpointError, match="does not exist"):
        senet.load_weights(senet.create_model("resnet20_cifar"), tmp_path / "nope.pth")
    torch.save({"weights": state, "note": "fine"}, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match="expected a state dict"):
        senet.load_weights(senet.create_model("resnet20_cifar"), tmp_path / "odd.pth")


class Payload:
    """Any class a pickle names: weights_only loading refuses to construct it."""


def test_pickles_that_need_code_are_refused(tmp_path):
    path = tmp_path / "model.pth"
    torch.save({"state_dict": model_state("resnet20_cifar"), "extra": Payload()}, path)
    with pytest.raises(CheckpointError, match="arbitrary code"):
        senet.create_model("resnet20_cifar", pretrained=path)


def test_downloads_are_cached_and_hash_checked(tmp_path, monkeypatch):
    import hashlib

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    state = model_state("resnet20_cifar")
    src = save(state, tmp_path / "src.pth")
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    good = shutil.copy(src, tmp_path / f"r20-{digest[:8]}.pth")
    model = senet.create_model("resnet20_cifar", pretrained=Path(good).as_uri())
    assert (tmp_path / "hub" / "checkpoints" / Path(good).name).is_file()
    torch.testing.assert_close(model.state_dict()["fc.weight"], state["fc.weight"])

    bad = shutil.copy(src, tmp_path / "r20-00000000.pth")
    with pytest.raises(WeightsDownloadError, match="does not match the sha256 prefix"):
        senet.load_weights(senet.create_model("resnet20_cifar"), Path(bad).as_uri())
    assert not (tmp_path / "hub" / "checkpoints" / "r20-00000000.pth").exists()


def test_offline_pretrained_names_the_url_and_the_way_out(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    url = "http://127.0.0.1:9/se_resnet50-ce0d4300.pth"  # nothing listens on the discard port
    known = _pretrained.KNOWN_WEIGHTS["se_resnet50"]
    monkeypatch.setitem(
        _pretrained.KNOWN_WEIGHTS, "se_resnet50", type(known)(url, "cadene", known.origin)
    )
    with pytest.raises(WeightsDownloadError) as err:
        senet.create_model("se_resnet50", pretrained=True)
    assert url in str(err.value) and "pretrained='/path/to/se_resnet50-ce0d4300.pth'" in str(
        err.value
    )


def test_pretrained_true_uses_the_cache_and_the_known_layout(tmp_path, monkeypatch):
    # A file already in torch.hub's cache is used without a download (as torch.hub does).
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    ref = prepared(need_timm().create_model("resnet18"))
    filename = Path(_pretrained.KNOWN_WEIGHTS["resnet18"].url).name
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    save(ref.state_dict(), tmp_path / "hub" / "checkpoints" / filename)
    model = senet.create_model("resnet18", pretrained=True).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max() < 1e-5
    assert model.pretrained_cfg["url"].endswith(filename)


def test_pretrained_true_without_known_weights():
    with pytest.raises(ValueError, match="no public weights are known for 'resnet20_cifar'"):
        senet.create_model("resnet20_cifar", pretrained=True)


def test_every_known_url_carries_a_hash_and_a_registered_name():
    for name, known in _pretrained.KNOWN_WEIGHTS.items():
        assert name in senet.list_models()
        assert torch.hub.HASH_REGEX.search(Path(known.url).name), known.url
        assert known.layout in _pretrained.LAYOUTS and known.layout != "senet"
        with torch.device("meta"):
            cfg = senet.create_model(name).pretrained_cfg
        assert (cfg["url"], cfg["weights_layout"]) == (known.url, known.layout)


def test_timm_legacy_basic_blocks_are_refused():
    # timm's legacy_seresnet18 has a ReLU before its SE blocks that the paper's block lacks.
    legacy = need_timm().create_model("legacy_seresnet18")
    with pytest.raises(CheckpointError, match="legacy_seresnet18/34"):
        senet.load_weights(senet.create_model("se_resnet18"), legacy.state_dict())
