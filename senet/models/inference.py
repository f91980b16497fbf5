"""The inference fast path: fold BatchNorm into its conv, channels_last, the dtype timed fastest,
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
from senet.models.inference_dtype import as_set, choose_dtype

_DTYPES = ("auto", "fp32", "bf16", "fp16")


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
        # How the dtype was chosen (optimize_for_inference): source, timings, table
        self.fast_path: dict[str, Any] | None = None

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


def _example(
    model: nn.Module, example_input: torch.Tensor | None, input_size: Sequence[int] | None
) -> torch.Tensor:
    """``example_input`` on the model's device, or one random image of ``input_size``."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    if example_input is not None:
        if input_size is not None:
            raise ValueError(
                "optimize_for_inference: pass example_input or input_size, not both (the "
                "example's shape is the input size)"
            )
        if not isinstance(example_input, torch.Tensor) or not example_input.is_floating_point():
            raise TypeError(
                "optimize_for_inference: example_input must be a floating-point tensor batch "
                f"(N, C, H, W), got {type(example_input).__name__}"
            )
        return example_input.detach().to(device=device, dtype=torch.float32)
    if input_size is None:
        cfg = getattr(model, "pretrained_cfg", None) or {}
        input_size = cfg.get("input_size", (3, 224, 224)) if isinstance(cfg, dict) else None
        input_size = input_size or (3, 224, 224)
    if len(input_size) != 3 or not all(isinstance(d, int) and d > 0 for d in input_size):
        raise ValueError(
            f"optimize_for_inference: input_size must be (C, H, W) of positive ints, "
            f"got {tuple(input_size)}"
        )
    return torch.randn(1, *input_size, device=device)


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
    example_input: torch.Tensor | None = None,
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
    and to ``dtype``, and optionally compiles it. Works for senet models and torchvision/timm
    CNNs, retrofitted or not. The copy's output on two images is checked against the
    original's, so a fold that changed the function raises instead of returning it.

    ``example_input``: a batch like those the model will get (the batch size matters: bf16 may
    pay at batch 32 and not at 1). Without it, ``input_size`` (default: the model's
    ``pretrained_cfg``, else 3x224x224) at batch 1.

    ``dtype``: ``"auto"`` times fp32 against each reduced precision the device offers (bf16 on
    CPUs that report bf16 hardware; bf16 and fp16 on CUDA) on that batch and keeps the fastest,
    never trusting CPU flags; cached (``senet.models.speed_cache``), with the timings in
    ``result.fast_path``. Or ``"fp32"``, ``"bf16"``, ``"fp16"`` as set.

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
    x = _example(fast, example_input, input_size)
    _refuse_what_cannot_run(x, dtype=dtype, channels_last=channels_last, cuda_graph=cuda_graph)
    if fold_bn:
        _fold_checked(fast, x[:2])
    on_cuda = x.device.type == "cuda"
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    graph = (on_cuda if cuda_graph is None else cuda_graph) and not compile

    def prepare(target: torch.dtype) -> InferenceModel:
        converted = copy.deepcopy(fast).to(dtype=target, memory_format=fmt)
        return InferenceModel(converted, target, fmt, cuda_graph=graph)

    variant = {"channels_last": channels_last, "cuda_graph": graph}
    choice = choose_dtype(fast, x, prepare, variant=variant) if dtype == "auto" else as_set(dtype)
    result = InferenceModel(
        fast.to(dtype=choice.dtype, memory_format=fmt), choice.dtype, fmt, cuda_graph=graph
    )
    result.fast_path = choice.record
    if compile:
        mode = "reduce-overhead" if on_cuda and cuda_graph is not False else None
        result.model = torch.compile(result.model, mode=mode)  # type: ignore[assignment]
    return result


def _refuse_what_cannot_run(
    x: torch.Tensor, *, dtype: str, channels_last: bool, cuda_graph: bool | None
) -> None:
    """One clear error, naming the option, for a setting this input's device cannot run."""
    if dtype == "fp16" and x.device.type == "cpu":
        raise ValueError("optimize_for_inference: dtype='fp16' needs CUDA; on CPU use 'bf16'")
    if channels_last and x.dim() != 4:
        raise ValueError(
            f"optimize_for_inference: channels_last=True needs 4-D (N, C, H, W) input, the "
            f"example has shape {tuple(x.shape)}; pass channels_last=False"
        )
    if cuda_graph and x.device.type != "cuda":
        raise ValueError(
            f"optimize_for_inference: cuda_graph=True needs the model on a CUDA device, it is on "
            f"{x.device}; move it with .cuda() first or leave cuda_graph unset"
        )


def _fold_checked(model: nn.Module, x: torch.Tensor) -> None:
    """Fold BatchNorm into convs, refusing a fold that changes the output on ``x``."""
    with torch.no_grad():
        reference = _first_tensor(model(x))
        fold_batchnorm(model, conv_bn_pairs(model, x))
        folded = _first_tensor(model(x))
    if not torch.allclose(folded, reference, rtol=1e-3, atol=1e-3 * _scale(reference)):
        raise RuntimeError(
            "optimize_for_inference: folding BatchNorm changed the model's output (a conv "
            "output is also used elsewhere than its BatchNorm?); pass fold_bn=False"
        )


def _first_tensor(out: Any) -> torch.Tensor:
    leaves = [t for t in torch.utils._pytree.tree_leaves(out) if _is_float_tensor(t)]
    if not leaves:
        raise TypeError("optimize_for_inference: the model returned no floating-point tensor")
    return leaves[0].float()


def _scale(t: torch.Tensor) -> float:
    return max(t.abs().max().item(), 1.0)
