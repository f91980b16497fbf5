"""The `senet` command: a thin layer over the Python API."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

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


# --- profile -------------------------------------------------------------------------------------
class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


@app.command("profile")
def profile_command(
    model: Annotated[str, typer.Argument(help="senet model name, torchvision:NAME or timm:NAME.")],
    compare: Annotated[
        list[str] | None,
        typer.Option("--compare", "-c", help="Another model to compare against (repeatable)."),
    ] = None,
    input_size: Annotated[tuple[int, int, int], typer.Option(help="One sample's shape: C H W.")] = (
        3,
        224,
        224,
    ),
    batch_size: Annotated[int, typer.Option(help="Samples per batch; counts are per batch.")] = 1,
    timing: Annotated[bool, typer.Option(help="Also time latency, throughput, memory.")] = False,
    device: Annotated[str, typer.Option(help="Device for --timing: cpu, cuda, cuda:1.")] = "cpu",
    compile: Annotated[bool, typer.Option(help="Time the torch.compile'd model.")] = False,
    channels_last: Annotated[bool, typer.Option(help="Time in channels_last format.")] = False,
    warmup: Annotated[int, typer.Option(help="Untimed runs per model.")] = 5,
    repeats: Annotated[int, typer.Option(help="Timed runs per model.")] = 20,
    by_module: Annotated[bool, typer.Option(help="Add the per-module breakdown.")] = False,
    depth: Annotated[int, typer.Option(help="Module tree depth for --by-module.")] = 2,
    format: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="Output format.")
    ] = OutputFormat.table,
) -> None:
    """Params and MACs (the SE paper's GFLOPs), attention share, optional timings."""
    from senet.hub import resolve_model
    from senet.profile import compare as compare_models
    from senet.profile import profile

    timing_kw = dict(
        device=device, timing=timing, warmup=warmup, repeats=repeats, compile=compile,
        channels_last=channels_last,
    )  # fmt: skip
    try:
        if compare:
            models = {spec: resolve_model(spec) for spec in [model, *compare]}
            result = compare_models(models, input_size, batch_size=batch_size, **timing_kw)
        else:
            result = profile(
                resolve_model(model), input_size, batch_size=batch_size, name=model, **timing_kw
            )
    except (ValueError, ImportError, TypeError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(result.render(format.value, by_module=by_module, depth=depth), nl=False)


# --- end profile ---------------------------------------------------------------------------------


# --- model zoo (issue 3) ---
@app.command()
def models(
    pattern: str = typer.Argument("*", help="fnmatch pattern over model names, e.g. 'se_*'."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
) -> None:
    """List the model zoo with parameters and multiply-adds (from the golden table: no building)."""
    import json

    from rich.console import Console
    from rich.table import Table

    from senet.models.complexity import model_table

    rows = model_table(pattern)
    if not rows:
        typer.echo(f"no model matches {pattern!r}; `senet models` lists them all", err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    paper = any("macs" in row for row in rows)
    table = Table(title="senet models (multiply-adds for one image of the input size)")
    table.add_column("name")
    table.add_column("input", justify="right")
    table.add_column("params (M)", justify="right")
    table.add_column("conv+FC GMACs", justify="right")
    if paper:
        table.add_column("GFLOPs (paper convention)", justify="right")
    for row in rows:
        cells = [
            row["name"],
            "x".join(map(str, row["input_size"][1:])),
            f"{row['params'] / 1e6:.2f}",
            f"{row['conv_fc_macs'] / 1e9:.3f}",
        ]
        if paper:
            cells.append(f"{row['macs'] / 1e9:.2f}" if "macs" in row else "-")
        table.add_row(*cells)
    Console(width=120).print(table)


# --- end model zoo ---


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
