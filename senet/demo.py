"""What `make demo` runs: a tour of the attention modules on one feature map."""

from __future__ import annotations

import torch
from rich.console import Console
from rich.table import Table

from senet.layers import attention_names, create_attn


def attention_tour(channels: int = 256, size: int = 56, seed: int = 0) -> Table:
    """Params of each attention module and statistics of its output on a random feature map.

    The map imitates a post-ReLU ResNet stage-2 activation (256 x 56 x 56, non-negative).
    """
    torch.manual_seed(seed)
    x = torch.randn(2, channels, size, size).relu()
    table = Table(title=f"Attention modules on a {channels}x{size}x{size} feature map (batch 2)")
    for column in ("module", "params", "out mean", "out std", "mean gate (out/in)"):
        table.add_column(column, justify="left" if column == "module" else "right")
    table.add_row("none (input)", "0", f"{x.mean():.4f}", f"{x.std():.4f}", "1.000")
    for name in attention_names():
        module = create_attn(name, channels).eval()
        with torch.inference_mode():
            y = module(x)
        params = sum(p.numel() for p in module.parameters())
        table.add_row(
            name, f"{params:,}", f"{y.mean():.4f}", f"{y.std():.4f}", f"{(y.sum() / x.sum()):.3f}"
        )
    return table


def run_demo() -> None:
    Console().print(attention_tour())
