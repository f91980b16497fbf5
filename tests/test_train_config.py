"""Config: YAML + key=value overrides, validated against the dataclasses before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from senet.train import ConfigError, load_config, save_config, valid_keys

CONFIGS = Path(__file__).resolve().parents[1] / "senet" / "configs"


def test_defaults_and_typed_overrides():
    cfg = load_config(
        None,
        [
            "optim.lr=0.2",
            "train.epochs=3",
            "model.attn_kwargs.reduction=8",
            "model.attn_kwargs.gate=tanh",
            "model.attn=none",
            "data.mean=[0.5]",
            "schedule.milestones=[30, 60]",
            "optim.grad_clip=null",
            "train.channels_last=true",
            "output_dir=/tmp/run 1",
        ],
    )
    assert cfg.optim.lr == 0.2 and isinstance(cfg.optim.lr, float)
    assert cfg.train.epochs == 3
    assert cfg.model.attn_kwargs == {"reduction": 8, "gate": "tanh"}
    assert cfg.model.attn == "none"
    assert cfg.data.mean == [0.5]
    assert cfg.schedule.milestones == [30.0, 60.0]
    assert cfg.optim.grad_clip is None
    assert cfg.train.channels_last is True
    assert cfg.output_dir == "/tmp/run 1"


def test_int_is_accepted_for_float_and_str_field_keeps_text():
    cfg = load_config(None, ["optim.lr=1", "model.name=123", "data.root=007"])
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.model.name == "123"
    assert cfg.data.root == "007"  # the raw text, not the YAML int 7


def test_yaml_1e_minus_4_is_a_float(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  weight_decay: 1e-4\n")  # YAML 1.1 reads this as a string
    assert load_config(path).optim.weight_decay == pytest.approx(1e-4)


def test_unknown_key_lists_valid_keys_and_suggests():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["optim.lrr=0.1"])
    message = str(err.value)
    assert "'optim.lrr'" in message and "Did you mean optim.lr" in message
    assert "train.freeze_bn_epochs" in message  # the full list of valid keys


def test_unknown_section_in_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("optimizer:\n  lr: 0.1\n")
    with pytest.raises(ConfigError, match="unknown config key 'optimizer'"):
        load_config(path)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.epochs=abc", "'train.epochs' expects int, got 'abc'"),
        ("train.epochs=1.5", "'train.epochs' expects int"),
        ("train.ema=maybe", "'train.ema' expects bool"),
        ("schedule.name=linear", "'schedule.name' expects 'step' | 'multistep'"),
        ("data.mean=0.5", "'data.mean' expects list[float] | null"),
        ("optim=0.1", "optim: expected a mapping"),
    ],
)
def test_wrong_type_names_key_and_type(override, expected):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert expected in str(err.value)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.epochs=0", "'train.epochs' must be an integer >= 1"),
        ("train.freeze_bn_epochs=10", "'train.freeze_bn_epochs' must be in [0, train.epochs)"),
        ("train.label_smoothing=1.5", "'train.label_smoothing' must be in [0, 1)"),
        ("schedule.name=multistep", "needs schedule.milestones"),
        ("optim.lr=-1", "'optim.lr' must be > 0"),
        ("not_key_value", "is not key=value"),
    ],
)
def test_bad_values_fail_before_running(override, expected):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert expected in str(err.value)


def test_missing_config_file():
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("no/such/recipe.yaml")


def test_saved_config_reloads_identically(tmp_path):
    cfg = load_config(None, ["optim.lr=0.3", "model.attn_kwargs.reduction=4", "data.std=[0.2]"])
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg


@pytest.mark.parametrize("recipe", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_shipped_recipes_load(recipe):
    cfg = load_config(CONFIGS / recipe, ["data.train_size=16", "train.epochs=2"])
    assert cfg.data.train_size == 16 and cfg.train.epochs == 2


def test_paper_imagenet_recipe_values():
    cfg = load_config(CONFIGS / "imagenet_se_resnet50.yaml")
    assert (cfg.model.name, cfg.train.epochs, cfg.optim.momentum) == ("se_resnet50", 100, 0.9)
    assert (cfg.optim.lr, cfg.optim.lr_base_batch) == (0.6, 1024)
    assert (cfg.schedule.name, cfg.schedule.step_size, cfg.schedule.gamma) == ("step", 30, 0.1)
    assert (cfg.data.image_size, cfg.data.eval_resize) == (224, 256)


def test_valid_keys_are_dotted():
    keys = valid_keys()
    assert {"optim.lr", "data.train_size", "train.epochs", "output_dir"} <= set(keys)
