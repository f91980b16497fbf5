"""The `senet` command: a thin layer over the Python API."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    name="senet",
    help="Squeeze-and-Excitation networks: layers, models, profiling, training, ablations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command()
def demo() -> None:
    """Run the main demo job (what `make demo` runs)."""
    from senet.demo import run_demo

    run_demo()


@app.command()
def attention() -> None:
    """List the attention modules that `attn=` accepts."""
    from senet.layers import attention_names

    for name in attention_names():
        typer.echo(name)


# --- retrofit (issue 5) -------------------------------------------------------------------


@app.command()
def retrofit(
    model: str = typer.Argument(
        ..., help='"torchvision:resnet50", "timm:resnet50" or a senet model name'
    ),
    attn: str = typer.Option("se", help="attention module (see `senet attention`)"),
    strategy: str = typer.Option(
        "standard", help="standard | pre | post | identity | conv3x3 (paper Fig. 5, Table 15)"
    ),
    stages: str = typer.Option(
        "", help="only these stages, comma-separated, e.g. 3,4 (ResNet layer1..4 = 2..5)"
    ),
    init: str = typer.Option("default", help="default | identity (starts as the base model)"),
    attn_kw: list[str] = typer.Option(
        [], "--attn-kw", help="attention argument key=value, e.g. reduction=8; repeatable"
    ),
    input_size: int = typer.Option(224, help="side of the sample image used to read shapes"),
    weights: Path | None = typer.Option(
        None, help="base state dict (.pth or .safetensors) to load before retrofitting"
    ),
    save: Path | None = typer.Option(
        None, help="write the retrofitted state dict (.safetensors or .pth)"
    ),
    dry_run: bool = typer.Option(False, help="print the sites and the cost, change nothing"),
) -> None:
    """Put attention into an existing CNN; print the sites and the cost delta."""
    from senet.retrofit_cli import parse_kwargs, run_retrofit

    try:
        run_retrofit(
            model,
            attn=attn,
            strategy=strategy,
            stages=[int(s) for s in stages.split(",") if s.strip()] or None,
            init=init,
            attn_kwargs=parse_kwargs(attn_kw),
            input_size=input_size,
            weights=weights,
            save=save,
            dry_run=dry_run,
        )
    except ValueError as err:
        typer.echo(f"senet retrofit: {err}", err=True)
        raise typer.Exit(2) from err


def main() -> None:
    app()
