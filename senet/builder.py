"""The one model builder: a spec (senet name, ``torchvision:NAME``, ``timm:NAME``) or a
``ModelConfig`` -> a module with its base weights loaded, attention retrofitted and a spatial
transformer in front.

Training, evaluation, ablation and the CLI build every model here; build and load errors are
ConfigErrors that name the config keys. It sits above ``models`` and ``retrofit`` (it uses both).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from senet.config import ConfigError, ModelConfig
from senet.models.specs import is_foreign, load_initial_weights, resolve_model
from senet.models.stn import with_stn
from senet.retrofitting.api import retrofit as retrofit_model


def model_from_config(
    cfg: ModelConfig, *, num_classes: int, in_chans: int, base_weights: str | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """The model ``cfg`` names and the exact keyword arguments that rebuild it (weights aside).

    ``base_weights`` load into the model as built, before ``cfg.retrofit`` adds attention.
    """
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
    model = build_model(
        cfg.name, base_weights=base_weights, weights_head=cfg.weights_head, **kwargs
    )
    return model, kwargs


def build_model(
    name: str,
    *,
    retrofit: dict[str, Any] | None = None,
    stn: dict[str, Any] | None = None,
    base_weights: str | None = None,
    weights_head: bool = True,
    **kwargs: Any,
) -> nn.Module:
    """Build a senet, torchvision or timm model, load ``base_weights``, ``retrofit`` it, then
    put a spatial transformer in front (``stn``); build errors become ConfigErrors naming the
    arguments."""
    if name.startswith("torchvision:"):  # torchvision builders take no in_chans
        in_chans = kwargs.pop("in_chans", 3)
        if in_chans != 3:
            raise ConfigError(
                f"{name} reads 3-channel images but the data has {in_chans}; use "
                f"timm:{name.partition(':')[2]} (timm models take in_chans) or 3-channel data"
            )
    try:
        model = resolve_model(name, **kwargs)
    except (TypeError, ValueError, ImportError) as e:
        shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise ConfigError(f"cannot build model {name!r}({shown}): {e}") from e
    if base_weights:
        load_initial_weights(model, base_weights, foreign=is_foreign(name), head=weights_head)
    if retrofit:
        try:
            retrofit_model(model, **retrofit)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"model.retrofit={retrofit!r} on {name}: {e}") from e
    if stn:
        try:
            model = with_stn(model, **stn)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"model.stn={stn.get('kind')} on {name}: {e}") from e
    return model
