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


def main() -> None:
    app()
