"""Training configuration: dataclasses loaded from YAML and overridden by ``key=value`` strings.

A config is plain data. ``load_config(path, overrides)`` reads the YAML file, applies the
overrides (``optim.lr=0.2``, ``model.attn_kwargs.reduction=8``, ``output_dir=/tmp/run``), checks
every key and type against the dataclasses below, and returns a ``Config``. Anything wrong fails
here, before a model is built or a file is written, with the list of valid keys.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from senet.layers.create_attn import attn_kwargs_problem

if typing.TYPE_CHECKING:
    from torch import nn


class ConfigError(ValueError):
    """A config file or override that does not fit the schema."""


# Where attention goes in a residual unit (paper Fig. 5, Table 15); senet.layers.strategies.
Strategy = Literal["standard", "pre", "post", "identity", "conv3x3"]


@dataclass
class RetrofitConfig:
    """``senet.retrofit`` arguments: attention put into a built model (after its base weights)."""

    attn: str = "se"  # attention name (`senet attention` lists them)
    strategy: Strategy = "standard"  # where in a residual unit (paper Fig. 5)
    stages: list[int] | None = None  # only these stages (paper Table 13); None: all
    init: Literal["default", "identity"] = "default"  # identity: starts as the base model
    replace_existing: bool = False  # replace attention the model already has
    input_size: int = 224  # side of the probe image retrofit reads the model's shapes with
    attn_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. {reduction: 8, bias: false}

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``senet.retrofit(model, **kwargs)``: ``attn``, the fields that
        differ from their defaults, then the attention's own (the form 0.1 saved in weights)."""
        default = RetrofitConfig()
        own = {
            k: v
            for k, v in asdict(self).items()
            if k == "attn" or (k != "attn_kwargs" and v != getattr(default, k))
        }
        return {**own, **self.attn_kwargs}


@dataclass
class ModelConfig:
    """``model.*``: what ``senet.create_model`` builds, and the weights it starts from."""

    name: str = "se_resnet20_cifar"  # senet.list_models() name, or torchvision:NAME / timm:NAME
    num_classes: int | None = None  # None: the dataset's class count
    in_chans: int | None = None  # None: the dataset's channel count
    attn: str | None = None  # attention name ("se", "cbam", ..., "none"); None: model default
    attn_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. {reduction: 8, gate: tanh}
    strategy: Strategy | None = None  # None: the model's default (standard)
    attn_stages: list[int] | None = None  # stages that get attention (paper Table 13); None: all
    stride_in_1x1: bool | None = None  # ImageNet ResNets: Caffe layout (True) or torchvision
    kwargs: dict[str, Any] = field(default_factory=dict)  # any other builder keyword argument
    weights: str | None = None  # initial weights (file path), loaded before training
    weights_head: bool = True  # false: keep a new classifier (fine-tuning on other classes)
    # attention retrofitted after the model is built ({attn: se, init: identity, stages: [4, 5],
    # attn_kwargs: {reduction: 8}}); null: none
    retrofit: RetrofitConfig | None = None
    stn: Literal["affine"] | None = None  # affine: a spatial transformer in front (senet.with_stn)
    stn_size: int | None = None  # side of the STN's output (the model's input); None: the input's


@dataclass
class DataConfig:
    """``data.*``: the dataset (``senet.data``), its split sizes, augmentation and loading."""

    name: str = "fashion_mnist"  # a senet.data.list_datasets() name
    # dataset folder (Fashion-MNIST: its four IDX files at the top are read in place);
    # None: the dataset's usual place (see senet.data)
    root: str | None = None
    download: bool = False  # allow torchvision to download a missing dataset
    train_size: int | None = None  # use only the first N training images (quick runs)
    val_size: int | None = None  # use only the first N validation images
    batch_size: int = 128  # images per step per process (global batch = this x world size)
    eval_batch_size: int | None = None  # None: 2 x batch_size
    workers: int | None = None  # loader processes; None: chosen per dataset and machine
    image_size: int | None = None  # training crop side; None: the dataset's native size
    eval_resize: int | None = None  # eval: resize shorter side to this, then centre crop
    augment: bool = True  # the paper's training augmentation for this dataset
    cutout: int = 0  # Cutout square side in pixels, in-memory datasets (paper Table 4: 16); 0: off
    mean: list[float] | None = None  # normalisation; None: the dataset's statistics
    std: list[float] | None = None  # normalisation; None: the dataset's statistics
    num_classes: int = 10  # synthetic only: number of classes
    channels: int = 3  # synthetic only: image channels
    synthetic_train: int = 512  # synthetic only: training images
    synthetic_val: int = 256  # synthetic only: validation images
    distort: Literal["none", "rts"] | None = None  # rts: rotate/scale/translate on a canvas
    distort_canvas: int | None = None  # rts canvas side; None: 1.5 x the image side (28 -> 42)
    # an image file that cannot be decoded: stop with its name, or skip it (each one logged)
    on_bad_image: Literal["stop", "skip"] = "stop"


@dataclass
class OptimConfig:
    """``optim.*``: the optimiser, its learning rate and weight decay."""

    name: Literal["sgd", "adamw"] = "sgd"  # the optimiser (paper: SGD)
    lr: float = 0.1  # LR for a global batch of lr_base_batch images
    lr_base_batch: int | None = 256  # linear scaling: lr * global_batch / lr_base_batch; None: off
    momentum: float = 0.9  # SGD momentum (paper: 0.9)
    nesterov: bool = False  # SGD: Nesterov momentum
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # AdamW only
    weight_decay: float = 1e-4  # paper: 1e-4; no_wd_bn_bias and attn_weight_decay set exceptions
    no_wd_bn_bias: bool = False  # no weight decay on BatchNorm affine params and biases
    grad_clip: float | None = None  # clip the global grad norm to this; None: off
    # LR multiplier of a spatial transformer's parameters (model.stn): a slower localisation net
    # keeps the transform from running away before the classifier can use it.
    stn_lr_mult: float = 1.0
    # Weight decay of the attention modules' parameters (SE's FCs, ...); null: weight_decay.
    # With weak gradients, decay pulls an excitation's weights to zero and its gate to a constant.
    attn_weight_decay: float | None = None


@dataclass
class ScheduleConfig:
    """``schedule.*``: the learning-rate schedule over epochs, with an optional warm-up."""

    name: Literal["step", "multistep", "cosine", "constant"] = "step"  # the LR schedule's shape
    step_size: float = 30  # step: divide by 1/gamma every step_size epochs (paper: 30)
    milestones: list[float] = field(default_factory=list)  # multistep: epochs where LR drops
    gamma: float = 0.1  # LR factor at each drop
    warmup_epochs: float = 0  # linear warm-up length (epochs, fractions allowed)
    warmup_start: float = 0.1  # warm-up starts at this fraction of the LR
    min_lr_ratio: float = 0.0  # cosine: final LR as a fraction of the peak LR


@dataclass
class TrainConfig:
    """``train.*``: the length of the run, precision, tricks, evaluation and checkpoints."""

    epochs: int = 10  # passes over the training set
    seed: int = 0  # seeds weights, data order and augmentation (a run repeats to the digit)
    device: str = "auto"  # auto (cuda when present), cpu, cuda, cuda:1, ...
    # Mixed precision (fp16 only on CUDA). auto: the fastest of fp32 and the reduced precisions
    # the device offers, timed on this run's model and batch (senet.train.fast_path); the run
    # log shows the timings, config.yaml and summary.json record the choice.
    amp: Literal["auto", "none", "bf16", "fp16"] = "none"
    # NHWC memory layout (faster reduced-precision convs); auto: timed with amp, as above
    channels_last: bool | Literal["auto"] = False
    # torch.compile the model (true), each residual stage (stages), or not (false); auto: when
    # the run is long enough that the timed speed-up repays the compile warm-up
    compile: bool | Literal["auto", "stages"] = False
    label_smoothing: float = 0.0  # epsilon of label-smoothed cross-entropy
    freeze_bn_epochs: int = 0  # last K epochs: BatchNorm running stats and affine params fixed
    ema: bool = False  # keep an exponential moving average of the weights, evaluate it too
    ema_decay: float = 0.9998  # EMA: ema = decay * ema + (1 - decay) * weights, per step
    deterministic: bool = False  # deterministic kernels (slower); seeding is always on
    eval_every: int = 1  # validate every N epochs (and always after the last one)
    # also validate with horizontal-flip test-time augmentation (mean logits of each image and
    # its mirror): val_flip_* columns beside the single-view val_*; costs a second forward pass
    eval_flip: bool = False
    sync_bn: bool = False  # DDP: SyncBatchNorm, batch statistics over all processes (CUDA)
    checkpoint_every_steps: int = 0  # also checkpoint every N steps; 0: at epoch ends only
    keep_checkpoints: int = 3  # checkpoints kept in <run>/checkpoints (the newest ones)
    skip_nonfinite: bool = False  # skip (and count) batches with a NaN/inf loss; else stop


@dataclass
class LogConfig:
    """``log.*``: progress display, TensorBoard events and plots."""

    progress: Literal["auto", "bar", "plain", "none"] = "auto"  # auto: bar on a terminal
    log_every: int = 50  # plain mode: one line every N steps
    tensorboard: bool = True  # TensorBoard events (skipped with a notice if not installed)
    plots: bool = True  # loss / accuracy / LR curves as PNG at the end


@dataclass
class Config:
    """A whole training run: one section per dataclass above, and the run folder."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    log: LogConfig = field(default_factory=LogConfig)
    output_dir: str | None = None  # run folder; None: runs/<model>-<data>-<time>

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The config key of each create_model argument: a models-layer error names the argument, the
# config layer names the key.
_MODEL_KEYS = {
    "name": "model.name",
    "pretrained": "model.weights",
    "pretrained_head": "model.weights_head",
    "in_chans": "model.in_chans",
    "retrofit": "model.retrofit",
    "stn": "model.stn",
}


def model_kwargs(cfg: ModelConfig, *, num_classes: int, in_chans: int) -> dict[str, Any]:
    """The ``senet.create_model`` arguments a model section stands for (weights aside): what a
    run records with its weights, so they rebuild the same model."""
    kwargs: dict[str, Any] = {"num_classes": num_classes, "in_chans": in_chans}
    for key in ("attn", "strategy", "attn_stages", "stride_in_1x1"):
        value = getattr(cfg, key)
        if value is not None:
            kwargs[key] = value
    if cfg.attn_kwargs:
        kwargs["attn_kwargs"] = dict(cfg.attn_kwargs)
    kwargs.update(cfg.kwargs)
    if cfg.retrofit:
        kwargs["retrofit"] = cfg.retrofit.as_kwargs()
    if cfg.stn:
        kwargs["stn"] = {"kind": cfg.stn, "output_size": cfg.stn_size}
    return kwargs


def create_model_from_config(
    cfg: ModelConfig, *, num_classes: int, in_chans: int
) -> tuple[nn.Module, dict[str, Any]]:
    """``senet.create_model`` for a model section: the model (with ``model.weights`` loaded)
    and the arguments that rebuild it. Its errors become ConfigErrors naming the config key."""
    from senet.models import ModelError, create_model

    kwargs = model_kwargs(cfg, num_classes=num_classes, in_chans=in_chans)
    try:
        model = create_model(
            cfg.name, pretrained=cfg.weights or False, pretrained_head=cfg.weights_head, **kwargs
        )
    except ModelError as e:
        key = _MODEL_KEYS.get(e.argument, "model.name")
        reason = e.reason.replace("pretrained_head=False", "model.weights_head=false")
        raise ConfigError(f"{key}={_lookup_model(cfg, key)}: {reason}") from e
    except (TypeError, ValueError) as e:  # the architecture refused one of its arguments
        shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise ConfigError(f"cannot build model {cfg.name!r}({shown}): {e}") from e
    return model, kwargs


def _lookup_model(cfg: ModelConfig, key: str) -> Any:
    value = getattr(cfg, key.removeprefix("model."))
    return value.as_kwargs() if isinstance(value, RetrofitConfig) else value


def valid_keys(cls: type = Config, prefix: str = "") -> list[str]:
    """Every dotted key the schema accepts, e.g. ``optim.lr``."""
    keys = []
    for f in dataclasses.fields(cls):
        tp = _hints(cls)[f.name]
        tp = _optional_dataclass(tp) or tp
        if dataclasses.is_dataclass(tp):
            keys += valid_keys(tp, f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["optim.lr=0.2", "model.attn_kwargs.reduction=8"]`` -> nested dict of YAML values."""
    nested: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not key=value (e.g. optim.lr=0.2)")
        value = parse_value(text)
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with an earlier one for {part!r}")
        node[parts[-1]] = _RawOverride(value, text)
    return nested


def parse_value(text: str) -> Any:
    """A command-line value by the YAML rules (``8`` int, ``false`` bool, ``null`` None, ``[3, 4]``
    list); an empty text is None and text that is not YAML stays a string."""
    try:
        return yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        return text


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML recipe (or the defaults if ``path`` is None), apply overrides, validate."""
    data: dict[str, Any] = {}
    if path is not None:
        path = _recipe(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    _merge(data, parse_overrides(overrides or []))
    return config_from_dict(data)


def _recipe(path: str | Path) -> Path:
    """``path`` if it is a file, else the shipped recipe it names (``senet train NAME``)."""
    from senet.configs import names, packaged

    if Path(path).is_file():
        return Path(path)
    found = packaged(path)
    if found is None:
        raise ConfigError(
            f"config file {str(path)!r} does not exist, and senet ships no recipe by that name "
            f"(recipes: {', '.join(names())})"
        )
    return found


def config_from_dict(data: dict[str, Any]) -> Config:
    """Build and validate a ``Config`` from a nested dict (a YAML file's content)."""
    config = _build(Config, data, "")
    check_values(config)
    return config


def check_values(config: Config) -> None:
    """Range checks the types cannot express; raise ConfigError naming the key."""
    d, o, s, t = config.data, config.optim, config.schedule, config.train
    m, r = config.model, config.model.retrofit
    if r is not None and (problem := attn_kwargs_problem(r.attn, r.attn_kwargs)):
        raise ConfigError(f"model.retrofit={r.as_kwargs()!r}: {problem}")
    if m.attn is not None and (problem := attn_kwargs_problem(m.attn, m.attn_kwargs)):
        raise ConfigError(f"model.attn={m.attn!r}, model.attn_kwargs: {problem}")
    checks = [
        ("train.epochs", t.epochs >= 1, "an integer >= 1"),
        ("data.batch_size", d.batch_size >= 1, "an integer >= 1"),
        ("data.eval_batch_size", d.eval_batch_size is None or d.eval_batch_size >= 1, ">= 1"),
        ("data.train_size", d.train_size is None or d.train_size >= 1, ">= 1 or null"),
        ("data.val_size", d.val_size is None or d.val_size >= 1, ">= 1 or null"),
        ("data.workers", d.workers is None or d.workers >= 0, ">= 0 or null"),
        ("optim.lr", o.lr > 0, "> 0"),
        ("optim.lr_base_batch", o.lr_base_batch is None or o.lr_base_batch >= 1, ">= 1"),
        ("optim.weight_decay", o.weight_decay >= 0, ">= 0"),
        (
            "optim.attn_weight_decay",
            o.attn_weight_decay is None or o.attn_weight_decay >= 0,
            ">= 0 or null",
        ),
        ("optim.grad_clip", o.grad_clip is None or o.grad_clip > 0, "> 0 or null"),
        ("optim.stn_lr_mult", o.stn_lr_mult > 0, "> 0"),
        (
            "optim.stn_lr_mult",
            o.stn_lr_mult == 1 or m.stn is not None,
            "1 unless model.stn is set (it scales the spatial transformer's learning rate)",
        ),
        ("schedule.gamma", 0 < s.gamma <= 1, "in (0, 1]"),
        ("schedule.step_size", s.step_size > 0, "> 0"),
        ("schedule.warmup_epochs", 0 <= s.warmup_epochs <= t.epochs, "in [0, train.epochs]"),
        ("schedule.warmup_start", 0 <= s.warmup_start <= 1, "in [0, 1]"),
        ("train.label_smoothing", 0 <= t.label_smoothing < 1, "in [0, 1)"),
        ("train.freeze_bn_epochs", 0 <= t.freeze_bn_epochs < t.epochs, "in [0, train.epochs)"),
        ("train.ema_decay", 0 < t.ema_decay < 1, "in (0, 1)"),
        ("train.eval_every", t.eval_every >= 1, ">= 1"),
        ("train.checkpoint_every_steps", t.checkpoint_every_steps >= 0, ">= 0 (0: off)"),
        ("train.keep_checkpoints", t.keep_checkpoints >= 1, ">= 1"),
        ("log.log_every", config.log.log_every >= 1, ">= 1"),
        ("model.stn_size", config.model.stn_size is None or config.model.stn_size >= 1, ">= 1"),
        ("data.distort_canvas", d.distort_canvas is None or d.distort_canvas >= 1, ">= 1"),
    ]
    for key, ok, expected in checks:
        if not ok:
            value = _lookup(config, key)
            raise ConfigError(f"config key {key!r} must be {expected}, got {value!r}")
    if s.name == "multistep" and not s.milestones:
        raise ConfigError("schedule.name=multistep needs schedule.milestones, e.g. [30, 60, 90]")
    if t.amp == "fp16" and not t.device.startswith(("cuda", "auto")):
        raise ConfigError("train.amp=fp16 needs a CUDA device; on CPU use train.amp=bf16")
    for key in ("data.mean", "data.std"):
        stats = _lookup(config, key)
        if stats is not None and len(stats) not in (1, 3):
            raise ConfigError(f"config key {key!r} needs 1 or 3 values, got {stats!r}")
    _check_dataset_name(d.name)


def _check_dataset_name(name: str) -> None:
    from senet.data import DataOptionError, dataset_options

    try:
        dataset_options(name)
    except DataOptionError as e:
        raise ConfigError(f"data.name={name!r}: {e.reason}") from None


def _lookup(config: Config, key: str) -> Any:
    node: Any = config
    for part in key.split("."):
        node = getattr(node, part)
    return node


def save_config(config: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (the file ``load_config`` reads back unchanged)."""
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


# --- internals -------------------------------------------------------------------------------


@dataclass
class _RawOverride:
    """A command-line value: the YAML reading and the raw text (a str field takes the text)."""

    value: Any
    text: str


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(cls: type, data: Any, prefix: str) -> Any:
    if isinstance(data, _RawOverride):
        data = data.value
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {data!r}")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        key = f"{prefix}{unknown[0]}"
        close = difflib.get_close_matches(key, valid_keys(), n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"unknown config key {key!r}.{hint} Valid keys: {', '.join(valid_keys())}"
        )
    kwargs = {}
    for name in names:
        if name not in data:
            continue
        tp = hints[name]
        key = f"{prefix}{name}"
        optional = _optional_dataclass(tp)
        if optional is not None:
            kwargs[name] = _build_optional(optional, data[name], key + ".")
        elif dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, data[name], key + ".")
        else:
            kwargs[name] = _coerce(data[name], tp, key)
    return cls(**kwargs)


def _optional_dataclass(tp: Any) -> type | None:
    """``X`` for a field typed ``X | None`` where X is a dataclass (``model.retrofit``)."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and dataclasses.is_dataclass(args[0]):
            return args[0]
    return None


def _build_optional(cls: type, data: Any, prefix: str) -> Any:
    """None for null or an empty mapping; else ``cls`` built from ``data``. A retrofit section in
    the 0.1 form puts attention arguments beside retrofit's own ({attn: se, reduction: 8}): they
    move into ``attn_kwargs``."""
    if isinstance(data, _RawOverride):
        data = data.value
    if data is None or data == {}:
        return None
    if cls is RetrofitConfig and isinstance(data, dict):
        names = {f.name for f in dataclasses.fields(cls)}
        extra = {k: v for k, v in data.items() if k not in names}
        if extra:
            data = {k: v for k, v in data.items() if k in names}
            data["attn_kwargs"] = {**_plain(data.get("attn_kwargs") or {}), **_plain(extra)}
    return _build(cls, data, prefix)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(tp))
        return f"{origin.__name__}[{args}]"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _coerce(raw: Any, tp: Any, key: str) -> Any:
    """Return ``raw`` converted to ``tp`` (int -> float allowed), or raise naming key and type."""
    text = raw.text if isinstance(raw, _RawOverride) else None
    value = raw.value if isinstance(raw, _RawOverride) else raw
    try:
        return _convert(value, text, tp)
    except (TypeError, ValueError):
        shown = text if text is not None else value
        raise ConfigError(
            f"config key {key!r} expects {_type_name(tp)}, got {shown!r} ({type(value).__name__})"
        ) from None


def _convert(value: Any, text: str | None, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return _plain(value)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        # Prefer the non-str options first so "8" from the command line becomes an int for
        # `int | None`, but a str option still takes the raw text.
        for arg in sorted((a for a in args if a is not type(None)), key=lambda a: a is str):
            try:
                return _convert(value, text, arg)
            except (TypeError, ValueError):
                continue
        raise TypeError
    if origin is Literal:
        choice = text if text is not None else value
        if choice in typing.get_args(tp):
            return choice
        raise ValueError
    if origin is list:
        if not isinstance(value, list | tuple):
            raise TypeError
        (item_tp,) = typing.get_args(tp)
        return [_convert(v, None, item_tp) for v in value]
    if origin is dict:
        if value is None:  # `model.attn_kwargs=null` clears a mapping set earlier
            return {}
        if not isinstance(value, dict):
            raise TypeError
        return {str(k): _plain(v) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise TypeError
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
            return float(value)
        raise TypeError
    if tp is str:
        if text is not None:
            return text
        if isinstance(value, str):
            return value
        raise TypeError
    raise TypeError


def _plain(value: Any) -> Any:
    """Unwrap command-line values nested inside free-form dicts (``model.attn_kwargs.x=1``)."""
    if isinstance(value, _RawOverride):
        return value.value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
