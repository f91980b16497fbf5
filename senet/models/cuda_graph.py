"""Replay a model's inference forward as a CUDA graph, one graph per input shape.

At small batches a GPU forward is bound by kernel launches, not by arithmetic: the CPU issues
hundreds of small kernels one by one, and each SE block adds about eight more (pool, two FCs,
activation, gate, cast, scale) for 0.3% of the FLOPs. A CUDA graph issues the whole forward in
one launch, so SE costs its kernels' GPU time instead of their launch overhead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils._pytree import tree_map

_WARMUP_CALLS = 3  # on a side stream before capture, as torch.cuda.graph's docs ask


class GraphedForward:
    """``fn(x)`` replayed from a CUDA graph captured on the first call with each input shape.

    The input is copied into the graph's own buffer and the outputs are cloned out of it, so
    callers see ordinary tensors that the next call does not overwrite. Each shape's graph keeps
    its activations' memory for as long as this object lives.
    """

    def __init__(self, fn: Callable[[torch.Tensor], Any]) -> None:
        self.fn = fn
        self._graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, torch.Tensor, Any]] = {}

    def __call__(self, x: torch.Tensor) -> Any:
        if x.device.type != "cuda":
            raise ValueError(
                f"a CUDA-graphed model takes inputs on a CUDA device, got one on {x.device}; move "
                f"the input with .cuda() or prepare the model with cuda_graph=False"
            )
        key = (tuple(x.shape), x.dtype, x.device)
        if key not in self._graphs:
            self._graphs[key] = self._capture(x)
        graph, static_in, static_out = self._graphs[key]
        static_in.copy_(x)
        graph.replay()
        return tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, static_out)

    def _capture(self, x: torch.Tensor) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, Any]:
        with torch.inference_mode(False):  # a buffer the caller may fill in any grad mode
            static_in = torch.empty_like(x, memory_format=torch.contiguous_format)
        static_in.copy_(x)
        side = torch.cuda.Stream(device=x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        try:
            with torch.no_grad():
                with torch.cuda.stream(side):
                    for _ in range(_WARMUP_CALLS):
                        self.fn(static_in)
                torch.cuda.current_stream(x.device).wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    static_out = self.fn(static_in)
        except RuntimeError as err:  # e.g. a forward that reads a tensor back to the host
            raise RuntimeError(
                f"could not capture the model's forward as a CUDA graph for input shape "
                f"{tuple(x.shape)}: {err}. Prepare it with cuda_graph=False"
            ) from err
        return graph, static_in, static_out

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """The input shapes captured so far."""
        return [key[0] for key in self._graphs]
