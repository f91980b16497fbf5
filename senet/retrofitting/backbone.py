"""Detection and segmentation models take attention in their backbone's feature extractor only,
as in the paper's Table 6 (SE-ResNet-50 in Faster R-CNN)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from torch import nn

from senet.retrofitting.plan import SitePredicate
from senet.retrofitting.report import RetrofitReport, Skipped
from senet.retrofitting.sites import join_path


def backbone_path(model: nn.Module) -> str | None:
    """Path of the feature extractor of a detection / segmentation model, or None.

    torchvision's detectors keep it at ``backbone.body`` (under an FPN in ``backbone.fpn``),
    its segmentation models at ``backbone``; the model's own forward takes image lists or
    returns dicts, so it is not probed as a whole.
    """
    backbone = model._modules.get("backbone")
    if not isinstance(backbone, nn.Module):
        return None
    body = backbone._modules.get("body")
    return "backbone.body" if isinstance(body, nn.Module) else "backbone"


def sites_within(
    model: nn.Module, sites: Sequence[str] | SitePredicate | None, scope: str
) -> Sequence[str] | SitePredicate | bool | None:
    """``sites`` relative to ``scope``; False when some named site lies outside it."""
    if sites is None:
        return None
    prefix = f"{scope}."
    if callable(sites):
        chosen = [path for path, m in model.named_modules() if sites(path, m)]
        if not all(path.startswith(prefix) for path in chosen):
            return False
        return lambda path, module: sites(join_path(scope, path), module)
    names = [sites] if isinstance(sites, str) else list(sites)
    if not names or not all(name.startswith(prefix) for name in names):
        return False
    return [name[len(prefix) :] for name in names]


def whole_model_report(model: nn.Module, scope: str, sub: RetrofitReport) -> RetrofitReport:
    """The backbone's report, with paths from the whole model and its other parts listed."""
    parts = scope.split(".")
    outside = []
    for depth in range(len(parts)):
        parent = model.get_submodule(".".join(parts[:depth]))
        for name, child in parent.named_children():
            path = join_path(".".join(parts[:depth]), name)
            if name != parts[depth] and any(True for _ in child.parameters()):
                outside.append(
                    Skipped(
                        path,
                        f"outside the backbone's feature extractor {scope}: the paper adds SE to the "
                        "backbone (Table 6: SE-ResNet-50 in Faster R-CNN); sites=[...] adds it here",
                    )
                )
    sites = [
        replace(s, unit=join_path(scope, s.unit), attn_path=join_path(scope, s.attn_path))
        for s in sub.sites
    ]
    skipped = [Skipped(join_path(scope, s.path), s.reason) for s in sub.skipped]
    own = sum(t.numel() for t in model.parameters())
    return replace(
        sub,
        model=f"{type(model).__name__} ({scope})",
        sites=sites,
        skipped=skipped + outside,
        existing=[f"{scope}.{e}" for e in sub.existing],
        base_params=own - (sub.added_params if sub.applied else 0),
    )
