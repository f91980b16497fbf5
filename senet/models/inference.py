"""The inference fast path: fold BatchNorm into its conv, channels_last, the device's fast dtype,
and on CUDA one graph launch per forward."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch.utils._pytree import tree_map

from senet.models.cuda_graph import GraphedForward
from senet.models.precision import fast_dtype

_DTYPES = {"auto": None, "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class InferenceModel(nn.Module):
    """A model prepared by :func:`optimize_for_inference`: converts its input, runs, returns fp32.

    Callers keep feeding float32 NCHW images; the conversion to the fast dtype and layout happens
    here, once per batch, and floating outputs come back as float32. With ``cuda_graph`` the whole
    of that is replayed from a CUDA graph per input shape (see :class:`GraphedForward`).
    """

    def __init__(
        self,
        model: nn.Module,
        dtype: torch.dtype,
        memory_format: torch.memory_format,
        *,
        cuda_graph: bool = False,
    ) -> None:
        super().__init__()
        self.model = model
        self.dtype = dtype
        self.memory_format = memory_format
        self.pretrained_cfg = getattr(model, "pretrained_cfg", None)
        self.graphed = GraphedForward(self._run) if cuda_graph else None

    def forward(self, x: torch.Tensor) -> Any:
        if self.graphed is not None:
            return self.graphed(x)
        return self._run(x)

    def _run(self, x: torch.Tensor) -> Any:
        x = x.to(dtype=self.dtype, memory_format=self.memory_format)
        out = self.model(x)
        return tree_map(lambda t: t.float() if _is_float_tensor(t) else t, out)

    def extra_repr(self) -> str:
        layout = "channels_last" if self.memory_format == torch.channels_last else "NCHW"
        graph = ", cuda_graph=True" if self.graphed is not None else ""
        return f"dtype={self.dtype}, layout={layout}{graph}"


def _is_float_tensor(t: object) -> bool:
    return isinstance(t, torch.Tensor) and t.is_floating_point()


def _probe_input(model: nn.Module, input_size: Sequence[int] | None) -> torch.Tensor:
    if input_size is None:
        cfg = getattr(model, "pretrained_cfg", None) or {}
        input_size = cfg.get("input_size", (3, 224, 224)) if isinstance(cfg, dict) else None
        input_size = input_size or (3, 224, 224)
    if len(input_size) != 3 or not all(isinstance(d, int) and d > 0 for d in input_size):
        raise ValueError(
            f"optimize_for_inference: input_size must be (C, H, W) of positive ints, "
            f"got {tuple(input_size)}"
        )
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    return torch.randn(2, *input_size, device=device)


def conv_bn_pairs(model: nn.Module, x: torch.Tensor) -> list[tuple[str, str]]:
    """(conv, bn) module names where a BatchNorm2d reads exactly a Conv2d's output.

    Found by running ``x`` through the model with hooks, so any forward (not only ``nn.Sequential``
    chains) is understood without tracing it.
    """
    produced: dict[int, str] = {}
    pairs: list[tuple[str, str]] = []
    handles = []
    for name, module in model.named_modules():
        if type(module) is nn.Conv2d:
            handles.append(
                module.register_forward_hook(
                    lambda m, i, o, name=name: produced.__setitem__(id(o), name)
                )
            )
        elif type(module) is nn.BatchNorm2d:

            def pre_hook(m: nn.Module, inputs: tuple[Any, ...], name: str = name) -> None:
                conv = produced.get(id(inputs[0]))
                if conv is not None and (conv, name) not in pairs:
                    pairs.append((conv, name))

            handles.append(module.register_forward_pre_hook(pre_hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return pairs


def fold_batchnorm(model: nn.Module, pairs: list[tuple[str, str]]) -> int:
    """Fold each (conv, bn) pair's BN into the conv's weights and bias; the BN becomes Identity."""
    for conv_name, bn_name in pairs:
        conv, bn = model.get_submodule(conv_name), model.get_submodule(bn_name)
        _replace(model, conv_name, fuse_conv_bn_eval(conv, bn))
        _replace(model, bn_name, nn.Identity())
    return len(pairs)


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def optimize_for_inference(
    model: nn.Module,
    *,
    dtype: str = "auto",
    channels_last: bool = True,
    fold_bn: bool = True,
    input_size: Sequence[int] | None = None,
    compile: bool = False,
    cuda_graph: bool | None = None,
) -> InferenceModel:
    """A copy of ``model`` for fast inference; ``model`` itself is left as it was.

    Folds every BatchNorm that reads a conv's output into that conv, converts to channels_last
    and to ``dtype`` (``"auto"``: bf16 on CPUs with AMX or AVX512-BF16 and on CUDA, else fp32;
    or ``"fp32"``, ``"bf16"``, ``"fp16"``), and optionally compiles it. Works for senet models
    and torchvision/timm CNNs, retrofitted or not. The copy's output on a random batch of
    ``input_size`` (default: the model's ``pretrained_cfg``, else 3x224x224) is checked against
    the original's, so a fold that changed the function raises instead of returning it.

    ``cuda_graph`` (CUDA only; default: on for a model on a CUDA device) replays each forward as
    one CUDA graph, captured on the first call with each input shape: at small batches a GPU
    forward is bound by kernel launches, and SE's small kernels cost their launches, not their
    arithmetic. With ``compile=True`` it becomes ``torch.compile``'s ``"reduce-overhead"`` mode,
    which captures graphs itself. Inputs must then be on the model's device.
    """
    if dtype not in _DTYPES:
        raise ValueError(
            f"optimize_for_inference: unknown dtype {dtype!r}; expected one of {', '.join(_DTYPES)}"
        )
    fast = copy.deepcopy(model).eval()
    x = _probe_input(fast, input_size)
    target = _DTYPES[dtype] or fast_dtype(x.device)
    if target == torch.float16 and x.device.type == "cpu":
        raise ValueError("optimize_for_inference: dtype='fp16' needs CUDA; on CPU use 'bf16'")
    with torch.no_grad():
        if fold_bn:
            reference = _first_tensor(fast(x))
            fold_batchnorm(fast, conv_bn_pairs(fast, x))
            folded = _first_tensor(fast(x))
            if not torch.allclose(folded, reference, rtol=1e-3, atol=1e-3 * _scale(reference)):
                raise RuntimeError(
                    "optimize_for_inference: folding BatchNorm changed the model's output (a conv "
                    "output is also used elsewhere than its BatchNorm?); pass fold_bn=False"
                )
    on_cuda = x.device.type == "cuda"
    if cuda_graph and not on_cuda:
        raise ValueError(
            f"optimize_for_inference: cuda_graph=True needs the model on a CUDA device, it is on "
            f"{x.device}; move it with .cuda() first or leave cuda_graph unset"
        )
    cuda_graph = on_cuda if cuda_graph is None else cuda_graph
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    fast = fast.to(dtype=target, memory_format=fmt)
    result = InferenceModel(fast, target, fmt, cuda_graph=cuda_graph and not compile)
    if compile:
        mode = "reduce-overhead" if cuda_graph else None
        result.model = torch.compile(fast, mode=mode)  # type: ignore[assignment]
    return result


def _first_tensor(out: Any) -> torch.Tensor:
    leaves = [t for t in torch.utils._pytree.tree_leaves(out) if _is_float_tensor(t)]
    if not leaves:
        raise TypeError("optimize_for_inference: the model returned no floating-point tensor")
    return leaves[0].float()


def _scale(t: torch.Tensor) -> float:
    return max(t.abs().max().item(), 1.0)
