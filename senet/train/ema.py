"""Model EMA: an exponential moving average of the weights, evaluated beside the model."""

from __future__ import annotations

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def create_ema(model: nn.Module, decay: float) -> AveragedModel:
    """``ema = decay * ema + (1 - decay) * weights`` after each ``update_parameters(model)``.

    Buffers (BatchNorm running statistics) are averaged too, so the EMA model can be evaluated
    directly. The first update copies the weights.
    """
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
