"""The `senet` command: a thin layer over the Python API."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import typer

app = typer.Typer(
    name="senet",
    help="Squeeze-and-Excitation networks: layers, models, profiling, training, ablations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command()
def demo(
    tour: bool = typer.Option(False, "--tour", help="Only the attention-module tour (seconds)."),
    out: Path = typer.Option(Path("runs/demo"), help="Folder for the two runs."),
) -> None:
    """Train SE-ResNet-20 and ResNet-20 on Fashion-MNIST with one budget; compare (`make demo`)."""
    from senet.demo import run_demo, run_tour

    if tour:
        run_tour()
    else:
        with _clear_errors():
            run_demo(out)


@app.command()
def attention() -> None:
    """List the attention modules that `attn=` accepts."""
    from senet.layers import attention_names

    for name in attention_names():
        typer.echo(name)


# --- training and evaluation (issue 6) ---------------------------------------------------------


@contextlib.contextmanager
def _clear_errors() -> Iterator[None]:
    """Show config and data mistakes as one line and exit 2, without a traceback."""
    from senet.data import DataError
    from senet.train import ConfigError

    try:
        yield
    except (ConfigError, DataError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


@app.command()
def train(
    config: Path = typer.Argument(..., help="YAML recipe, e.g. configs/cifar10_se_resnet110.yaml"),
    overrides: list[str] = typer.Argument(
        None, help="key=value changes, e.g. optim.lr=0.2 train.epochs=1 output_dir=/tmp/run"
    ),
    resume: Path = typer.Option(
        None, "--resume", help="checkpoint.pt of this run: continue after its last epoch."
    ),
) -> None:
    """Train a model from a recipe; writes a run folder (config, metrics, weights, plots)."""
    from senet.train import load_config
    from senet.train import train as run_training

    with _clear_errors():
        run_training(load_config(config, overrides or []), resume=resume)


@app.command()
def evaluate(
    model: str = typer.Argument(..., help="Registry name, e.g. se_resnet50"),
    weights: Path = typer.Option(..., "--weights", help="senet .safetensors, or timm/Cadene file"),
    data: str = typer.Option(..., "--data", help="fashion_mnist, cifar10, cifar100, imagefolder"),
    root: str = typer.Option(None, "--root", help="Dataset folder (imagefolder: holds val/)."),
    size: int = typer.Option(None, "--size", help="Evaluate only the first N images."),
    batch_size: int = typer.Option(256, "--batch-size"),
    device: str = typer.Option("auto", "--device"),
    output: Path = typer.Option(None, "--output", help="Report folder (default: beside weights)."),
) -> None:
    """Top-1/top-5, per-class accuracy and a confusion-matrix PNG for a weights file."""
    from rich.console import Console

    from senet.train.report import evaluate_weights, per_class_table

    with _clear_errors():
        report = evaluate_weights(
            model,
            weights,
            data,
            root=root,
            size=size,
            batch_size=batch_size,
            device=device,
            output_dir=output,
        )
    Console().print(per_class_table(report))
    typer.echo(f"report: {report['output_dir']}/(eval.json, per_class.csv, confusion.png)")


@app.command()
def compare(
    runs: list[Path] = typer.Argument(..., help="Run folders written by `senet train`."),
    plot: Path = typer.Option(Path("compare.png"), "--plot", help="Overlay plot to write."),
) -> None:
    """One table (top-1, params, MACs, time) and one overlay plot for several runs."""
    from rich.console import Console

    from senet.train.report import compare_runs

    with _clear_errors():
        _, table = compare_runs(runs, plot_path=plot)
    Console().print(table)
    typer.echo(f"overlay plot: {plot}")


# --- end of training and evaluation -------------------------------------------------------------


def main() -> None:
    app()
