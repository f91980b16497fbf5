"""What every senet classifier shares: the head, classifier reset, init, argument checks."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from senet.layers.validate import check_positive_int


def check_attn_stages(owner: str, attn_stages: Iterable[int], valid: tuple[int, ...]) -> frozenset:
    """Validate a subset of the paper's stage numbers (Table 13) and return it as a set."""
    try:
        stages = frozenset(attn_stages)
    except TypeError:
        stages = None
    if stages is None or not stages <= set(valid) or any(isinstance(s, bool) for s in stages):
        raise ValueError(
            f"{owner}: attn_stages must be a subset of {valid} (the paper's stage numbers: "
            f"stage {valid[0]} is the first residual stage, layer1), got {attn_stages!r}"
        )
    return stages


def check_num_classes(owner: str, num_classes: object) -> int:
    """``num_classes`` must be an int >= 0 (0 drops the classifier: the model returns features)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(
            f"{owner}: num_classes must be an integer >= 0 (0 = no classifier), got {num_classes!r}"
        )
    return num_classes


def check_in_chans(owner: str, in_chans: object) -> int:
    """``in_chans`` (image channels) must be an int >= 1."""
    return check_positive_int(owner, "in_chans", in_chans)


def build(cls: type[nn.Module], arch: dict[str, Any], kwargs: dict[str, Any]) -> Any:
    """``cls(**arch, **kwargs)``, user kwargs winning; an unknown keyword gets a helpful error."""
    params = inspect.signature(cls.__init__).parameters
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        hint = ""
        if any(k in ("reduction", "squeeze", "gate", "bias", "act_layer") for k in unknown):
            example = ", ".join(f"{k!r}: {kwargs[k]!r}" for k in unknown)
            hint = f"; attention options go in attn_kwargs, e.g. attn_kwargs={{{example}}}"
        valid = ", ".join(p for p in params if p != "self")
        raise TypeError(
            f"{cls.__name__}: unknown argument(s) {', '.join(unknown)}{hint}; "
            f"valid arguments: {valid}"
        )
    return cls(**{**arch, **kwargs})


class ClassifierNet(nn.Module):
    """Base of senet's networks: features -> global average pool -> [dropout] -> fc.

    Subclasses set ``num_features`` and implement ``forward_features``; the head pools any input
    size adaptively.
    """

    num_features: int
    drop_rate: float

    def _init_head(self, num_classes: int, drop_rate: float) -> None:
        self.num_classes = check_num_classes(type(self).__name__, num_classes)
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"{type(self).__name__}: drop_rate must be in [0, 1), got {drop_rate}")
        self.drop_rate = drop_rate
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.head_drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.fc = self._make_fc(num_classes)

    def _make_fc(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a fresh ``num_classes``-way one (0: no classifier)."""
        self.num_classes = check_num_classes(type(self).__name__, num_classes)
        ref = next(self.parameters())
        self.fc = self._make_fc(num_classes).to(device=ref.device, dtype=ref.dtype)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool (N, C, H, W) features to (N, C); then dropout and the classifier unless
        ``pre_logits``."""
        x = torch.flatten(self.global_pool(x), 1)
        if pre_logits:
            return x
        return self.fc(self.head_drop(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def _init_weights(self, zero_init_last: bool) -> None:
        # He init (the paper's recipe) for the backbone; attention modules keep their own init.
        for name, m in self.named_modules():
            if "attn" in name.split("."):
                continue
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_last:
            for m in self.modules():
                if hasattr(m, "zero_init_last"):
                    m.zero_init_last()
