"""`senet retrofit`: load a model, retrofit attention, print the sites and the cost, save."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from senet.config import parse_value
from senet.models.specs import resolve_model
from senet.models.weights import load_state_dict, save_weights
from senet.retrofitting.api import RetrofitReport, retrofit


def parse_kwargs(pairs: list[str]) -> dict[str, Any]:
    """``["reduction=8", "gate=tanh", "bias=false"]`` -> ``{"reduction": 8, "gate": "tanh",
    "bias": False}``: values read by the YAML rules of ``senet train key=value``."""
    kwargs = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--attn-kw expects key=value (e.g. reduction=8), got {pair!r}")
        kwargs[key] = parse_value(text)
    return kwargs


def run_retrofit(
    spec: str,
    *,
    attn: str,
    strategy: str,
    stages: list[int] | None,
    init: str,
    attn_kwargs: dict[str, Any],
    input_size: int,
    weights: Path | None,
    save: Path | None,
    dry_run: bool,
) -> RetrofitReport:
    """What the command does; returns the report it printed."""
    from rich.console import Console

    if dry_run and save is not None:
        raise ValueError("--dry-run changes nothing, so there is nothing to --save; drop one")
    model = resolve_model(spec).eval()
    if weights is not None:
        model.load_state_dict(load_state_dict(weights), strict=True)
    report = retrofit(
        model,
        attn,
        strategy=strategy,
        stages=stages,
        init=init,
        input_size=input_size,
        dry_run=dry_run,
        **attn_kwargs,
    )
    console = Console()
    if not console.is_terminal:  # piped or captured: do not squeeze the table to 80 columns
        console = Console(width=160)
    console.print(report)
    console.print(
        f"params: {report.base_params:,} -> {report.params:,} "
        f"({report.added_params:+,}, {100.0 * report.added_params / report.base_params:+.2f}%)"
    )
    if save is not None:
        recipe = {
            "model": spec,
            "attn": attn,
            "strategy": strategy,
            "stages": stages,
            "init": init,
            "attn_kwargs": attn_kwargs,
        }
        # The recipe says how to rebuild the model: retrofit the base with these arguments.
        save_weights(save, model, recipe, meta_key="senet.retrofit")
        console.print(f"saved {save}")
    return report
