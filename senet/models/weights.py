"""Load checkpoints into senet models from senet's own, torchvision/timm and Cadene layouts.

A checkpoint is read without running code from it (``torch.load(weights_only=True)`` or
safetensors), its key layout is recognised, its keys are renamed to senet's module names, and
every key and shape is checked against the model before anything is copied: a checkpoint that
does not fit raises a ``CheckpointError`` listing the first mismatches and leaves the model
untouched. Downloads go through torch.hub's cache and are checked against the sha256 prefix in
the file name, as ``torch.hub.load_state_dict_from_url(check_hash=True)`` does.

It is also senet's one weights writer (``save_weights``: safetensors with senet's metadata,
written atomically) and reader (``read_weights``: the state dict and that metadata).
"""

from __future__ import annotations

import json
import os
import pickle
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from senet.models._pretrained import LAYOUTS
from senet.models.errors import CheckpointError
from senet.models.family_layouts import (
    FAMILY_LAYOUTS,
    LayoutError,
    convert_family_state_dict,
    detect_family_layout,
)

StateDict = dict[str, torch.Tensor]
Source = str | os.PathLike | Mapping[str, Any]

_SHOW = 8  # mismatches listed in an error


class WeightsDownloadError(RuntimeError):
    """A checkpoint URL that could not be fetched (offline, moved, or failing its hash)."""


def is_url(source: object) -> bool:
    return isinstance(source, str) and urlparse(source).scheme in ("http", "https", "file")


def download(url: str, *, progress: bool = True) -> Path:
    """Fetch ``url`` into torch.hub's cache (once) and return the local file.

    A ``-<hex>.`` suffix in the file name is the sha256 prefix the download must match.
    """
    filename = os.path.basename(urlparse(url).path)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if cached.is_file():
        return cached
    match = torch.hub.HASH_REGEX.search(filename)
    hash_prefix = match.group(1) if match else None
    cached.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(cached), hash_prefix, progress=progress)
    except RuntimeError as err:
        if "invalid hash value" not in str(err):
            raise
        raise WeightsDownloadError(
            f"the file at {url} does not match the sha256 prefix {hash_prefix!r} in its name "
            f"({err}); it was discarded. The download may be corrupt (try again) or the file "
            "was replaced upstream."
        ) from err
    except OSError as err:  # URLError, HTTPError, socket timeouts, refused connections
        reason = getattr(err, "reason", err)
        raise WeightsDownloadError(
            f"could not download {url} ({reason}). senet caches checkpoints in {cached.parent}. "
            f"Offline? Fetch the file on a connected machine, then either copy it to {cached} "
            f"or pass the local file: create_model(name, pretrained='/path/to/{filename}') or "
            f"senet.load_weights(model, '/path/to/{filename}')."
        ) from err
    return cached


def read_checkpoint(path: str | os.PathLike) -> Any:
    """The object stored in a ``.safetensors``, ``.pth``, ``.pt`` or ``.bin`` file, on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist or is not a file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as err:
            raise CheckpointError(
                f"could not read {path} as safetensors ({err}); the file is truncated or not a "
                "safetensors file"
            ) from err
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights_only" not in str(err).lower() and "weights only" not in str(err).lower():
            raise CheckpointError(f"could not read {path}: truncated or corrupt ({err})") from err
        raise CheckpointError(
            f"{path} holds Python objects beyond tensors and plain containers (e.g. a whole "
            "pickled model or custom classes). senet loads only weights_only pickles and "
            "safetensors, because unpickling anything else can run arbitrary code. If you trust "
            "the file, re-save its weights: torch.save(torch.load(path, weights_only=False)"
            "['state_dict' or the model].state_dict(), 'weights.pth')."
        ) from err
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(
            f"could not read {path} ({type(err).__name__}: {err}); the file is truncated or not "
            "a PyTorch checkpoint (.pth/.pt) or safetensors file"
        ) from err


def unwrap_state_dict(obj: Any) -> StateDict:
    """The tensor dict inside a checkpoint: bare, or under ``state_dict``/``model``/``module``;
    ``module.`` (DDP) and ``_orig_mod.`` (torch.compile) prefixes are dropped."""
    if isinstance(obj, Mapping) and not _is_tensor_dict(obj):
        for key in ("state_dict", "model", "module", "state_dict_ema", "model_ema"):
            if isinstance(obj.get(key), Mapping) and _is_tensor_dict(obj[key]):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not _is_tensor_dict(obj):
        kind = type(obj).__name__
        keys = list(obj)[:_SHOW] if isinstance(obj, Mapping) else []
        raise CheckpointError(
            f"expected a state dict (names -> tensors), got a {kind}"
            + (f" with keys {keys}" if keys else "")
            + "; save weights with torch.save(model.state_dict(), path)"
        )
    state = {}
    for key, value in obj.items():
        for prefix in ("module.", "_orig_mod."):
            if key.startswith(prefix):
                key = key[len(prefix) :]
        state[key] = value
    return state


def _is_tensor_dict(obj: Mapping) -> bool:
    return bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def load_state_dict(source: Source, *, progress: bool = True) -> StateDict:
    """A state dict from a file, a URL (cached, hash-checked) or a mapping (``read_weights``
    without the metadata)."""
    return read_weights(source, progress=progress)[0]


def detect_layout(state: Mapping[str, Any]) -> str:
    """``"senet"``, ``"torchvision"`` (also timm's resnet.py), ``"cadene"`` (also timm legacy),
    or one of the other families' public layouts (``family_layouts.FAMILY_LAYOUTS``)."""
    keys = set(state)
    family = detect_family_layout(keys)
    if family is not None:
        return family
    if any(k.startswith(("stem.", "features.conv1_1.", "conv2d_1a.")) for k in keys):
        return "senet"
    if any(k.startswith("layer0.") for k in keys) or "last_linear.weight" in keys:
        return "cadene"
    if "conv1.weight" in keys and any(k.startswith("layer1.") for k in keys):
        return "torchvision"
    raise CheckpointError(
        f"unrecognised checkpoint layout (first keys: {sorted(keys)[:_SHOW]}); senet reads its "
        f"own keys and those of torchvision/timm ResNets, Cadene/timm-legacy SENets, torchvision "
        f"vgg16_bn, Cadene bninception, Cadene/timm Inception-ResNet-v2 and timm mobilenetv1_100 "
        f"({LAYOUTS})"
    )


def _rename(key: str, layout: str) -> str:
    if layout == "torchvision":
        if key.startswith(("conv1.", "bn1.")):
            return "stem." + key
        return key.replace(".se.", ".attn.")
    if layout == "cadene":
        if key.startswith("layer0."):
            return "stem." + key[len("layer0.") :]
        if key.startswith("last_linear."):
            return "fc." + key[len("last_linear.") :]
        return key.replace(".se_module.", ".attn.")
    return key


def convert_state_dict(state: Mapping[str, torch.Tensor], layout: str | None = None) -> StateDict:
    """Rename a checkpoint's keys to senet's module names (layout detected if not given)."""
    layout = layout or detect_layout(state)
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
    if layout in FAMILY_LAYOUTS:
        try:
            return convert_family_state_dict(state, layout)
        except LayoutError as err:
            raise CheckpointError(f"{layout} checkpoint: {err}") from err
    return {_rename(k, layout): v for k, v in state.items()}


def _check_layout(model: nn.Module, layout: str) -> None:
    stem_pool = getattr(model, "stem_pool", None)
    if stem_pool is None or layout == "senet":
        return
    want_pool = "torch" if layout == "torchvision" else "caffe"
    bottleneck = getattr(model, "block", None) == "bottleneck"
    want_stride = layout == "cadene" and getattr(model, "groups", 1) == 1
    if layout == "cadene" and not bottleneck:
        raise CheckpointError(
            "a Cadene/timm-legacy checkpoint with basic blocks comes from timm's "
            "legacy_seresnet18/34, whose blocks apply a ReLU between the last BN and the SE block; "
            "senet's basic block follows the paper (no such ReLU), so the weights would compute "
            "something else. Pass check_layout=False to load them anyway."
        )
    problems = []
    if stem_pool != want_pool:
        problems.append(f"stem_pool={want_pool!r} (model has {stem_pool!r})")
    if bottleneck and model.stride_in_1x1 != want_stride:
        problems.append(f"stride_in_1x1={want_stride} (model has {model.stride_in_1x1})")
    if problems:
        raise CheckpointError(
            f"the checkpoint is in the {layout} layout, whose architecture needs "
            f"{' and '.join(problems)}: its weights would load but compute something else. Build "
            f"the model with those arguments (create_model(name, pretrained=path) does this by "
            f"itself), or pass check_layout=False to load them into this architecture anyway."
        )


def _mismatch_report(model: nn.Module, state: StateDict, target: StateDict) -> str | None:
    missing = [k for k in target if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in target]
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(target[k].shape)}"
        for k in target
        if k in state and state[k].shape != target[k].shape
    ]
    if not (missing or unexpected or shapes):
        return None
    parts = [f"the checkpoint does not fit {type(model).__name__}:"]
    for title, items in (
        ("missing from the checkpoint", missing),
        ("in the checkpoint but not in the model", unexpected),
        ("shape mismatches", shapes),
    ):
        if items:
            more = f" (and {len(items) - _SHOW} more)" if len(items) > _SHOW else ""
            parts.append(f"{len(items)} {title}: {'; '.join(items[:_SHOW])}{more}")
    attn_only = [k for k in missing + unexpected if ".attn." not in k]
    if (missing or unexpected) and not attn_only:
        parts.append(
            "only attention weights differ: the model and the checkpoint disagree on attn= "
            "(e.g. resnet50 vs se_resnet50) or attn_stages/strategy"
        )
    if any(k.startswith("stem.conv1") for k in shapes):
        parts.append("the first conv differs: check in_chans")
    return "\n  ".join(parts)


def load_converted(
    model: nn.Module,
    state: StateDict,
    *,
    layout: str = "senet",
    classifier: bool = True,
    check_layout: bool = True,
) -> nn.Module:
    """Copy an already-renamed state dict into ``model`` after checking every key and shape."""
    if check_layout:
        _check_layout(model, layout)
    target = model.state_dict()
    if not classifier:
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        state.update({k: v for k, v in target.items() if k.startswith("fc.")})
    report = _mismatch_report(model, state, target)
    if report:
        raise CheckpointError(report)
    # Checkpoints saved before PyTorch 0.4 (the Caffe ports) lack BN's num_batches_tracked.
    full = {**{k: v for k, v in target.items() if k.endswith("num_batches_tracked")}, **state}
    model.load_state_dict(full, strict=True)
    return model


def load_weights(
    model: nn.Module,
    source: Source,
    *,
    classifier: bool = True,
    check_layout: bool = True,
    progress: bool = True,
) -> nn.Module:
    """Load a checkpoint into ``model`` in place and return it.

    Args:
        model: a senet model.
        source: a ``.pth``/``.pt``/``.bin``/``.safetensors`` file, an http(s) URL (cached by
            torch.hub, checked against the sha256 prefix in its name) or a state dict, in senet's,
            torchvision/timm's or Cadene/timm-legacy's key layout.
        classifier: also load the classifier; False keeps ``model.fc`` (fine-tuning).
        check_layout: refuse a checkpoint whose architecture layout (stride placement, stem
            pool) differs from the model's.
        progress: show a download progress bar.

    Raises:
        CheckpointError: unreadable file, code-carrying pickle, unknown layout, or any missing /
            unexpected key or shape mismatch (the model is left unchanged).
        WeightsDownloadError: a URL that cannot be fetched or fails its hash.
    """
    state = load_state_dict(source, progress=progress)
    layout = detect_layout(state)
    return load_converted(
        model,
        convert_state_dict(state, layout),
        layout=layout,
        classifier=classifier,
        check_layout=check_layout,
    )


def atomic_write(path: str | Path, write: Any) -> None:
    """Call ``write(tmp_path)``, fsync, then rename over ``path``: readers see old or new, whole.

    The temporary file lives in the same folder (a rename is atomic only within a file system);
    on any error it is removed and ``path`` is left as it was.
    """
    path = Path(path)
    # A fresh name in the same folder (created by ``write``, so the umask applies as usual).
    tmp = str(path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # Make the rename itself durable (POSIX: fsync the directory entry).
    if hasattr(os, "O_DIRECTORY"):
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def save_weights(
    path: str | Path, model: nn.Module, meta: dict[str, Any], *, meta_key: str = "senet"
) -> None:
    """Model weights, written atomically: safetensors with ``meta`` as JSON under ``meta_key``
    (model name, kwargs, preprocessing), or for ``.pth``/``.pt`` a bare state dict.

    Tensors that share storage (tied weights) are stored once each as contiguous copies.
    """
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    if Path(path).suffix == ".safetensors":
        metadata = {meta_key: json.dumps(meta)}
        atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    else:
        atomic_write(path, lambda tmp: torch.save(tensors, tmp))


def read_weights_metadata(path: str | Path) -> dict[str, Any]:
    """The senet metadata of a ``.safetensors`` file (empty if it has none), from its header only."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {str(path)!r} does not exist or is not a file")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("senet")
        return json.loads(raw) if raw else {}
    except Exception as err:  # safetensors raises its own SafetensorError, JSON a ValueError
        raise CheckpointError(
            f"could not read {path} as safetensors ({err}); the file is truncated or not a "
            "safetensors file"
        ) from err


def read_weights(source: Source, *, progress: bool = True) -> tuple[StateDict, dict[str, Any]]:
    """senet's one weights reader: the state dict and the senet metadata (empty where there is
    none) of a file (safetensors, a state dict, a senet training checkpoint), a URL or a mapping.

    Every failure is a ``CheckpointError`` that names the file.
    """
    if isinstance(source, Mapping):
        return unwrap_state_dict(source), {}
    if is_url(source):
        source = download(str(source), progress=progress)
    path = Path(source)
    meta = read_weights_metadata(path) if path.suffix == ".safetensors" else {}
    try:
        return unwrap_state_dict(read_checkpoint(path)), meta
    except CheckpointError as err:
        if str(path) in str(err):
            raise
        raise CheckpointError(f"{path}: {err}") from err
