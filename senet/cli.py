"""The `senet` command: a thin layer over the Python API."""

from __future__ import annotations

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


def main() -> None:
    app()
