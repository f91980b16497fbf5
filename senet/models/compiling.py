"""``torch.compile`` applied in place, to the whole model or to each residual stage.

In place (``nn.Module.compile``): the module's state_dict keys, its hooks and its identity stay,
so checkpoints, DDP and analysis see the same model. Static shapes: a last partial batch or the
eval batch costs a recompile, not slower symbolic kernels (and some backward formulas, e.g.
affine_grid's for an STN, have no symbolic-shape version).
"""

from __future__ import annotations

from torch import nn

from senet.models.precision import CompileHow

COMPILE_CHOICES = ("none", "model", "stages")


def residual_stages(model: nn.Module) -> list[nn.Module]:
    """The model's stages: its direct children that are ``nn.Sequential`` chains of blocks
    (modules with submodules of their own), e.g. ``layer1``..``layer4`` of a ResNet. Fewer than
    two such children: no stages (the model is compiled whole or not at all)."""
    stages = [
        child
        for child in model.children()
        if isinstance(child, nn.Sequential)
        and len(child) > 0
        and all(any(True for _ in block.children()) for block in child)
    ]
    return stages if len(stages) >= 2 else []


def compile_in_place(model: nn.Module, how: CompileHow) -> None:
    """Compile ``model`` (``model``), each of its residual stages (``stages``) or nothing."""
    if how not in COMPILE_CHOICES:
        raise ValueError(f"unknown compile choice {how!r}; expected one of {COMPILE_CHOICES}")
    if how == "model":
        model.compile(dynamic=False)
    elif how == "stages":
        stages = residual_stages(model)
        if not stages:
            raise ValueError(
                f"{type(model).__name__} has no residual stages to compile one by one (no two "
                "direct children that are nn.Sequential chains of blocks); compile it whole"
            )
        for stage in stages:
            stage.compile(dynamic=False)
