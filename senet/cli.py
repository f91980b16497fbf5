"""The `senet` command: a thin layer over the Python API."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
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


def _print_version(value: bool) -> None:
    if value:
        from senet.version import __version__

        typer.echo(f"senet {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print senet's version."
    ),
) -> None:
    """Squeeze-and-Excitation networks: layers, models, profiling, training, ablations."""


@app.command()
def info(
    as_json: bool = typer.Option(False, "--json", help="Print it as JSON."),
) -> None:
    """What a bug report needs: versions, the CPU and its features, threads, GPUs.

    Example: senet info --json > env.json
    """
    import json

    from senet.environment import environment, format_environment

    found = environment()
    typer.echo(json.dumps(found, indent=1) if as_json else format_environment(found))


@app.command()
def demo(
    tour: bool = typer.Option(False, "--tour", help="Only the attention-module tour (seconds)."),
    out: Path = typer.Option(Path("runs/demo"), help="Folder for the two runs."),
    overrides: list[str] = typer.Argument(
        None, help="key=value applied to both runs, e.g. train.epochs=1 data.train_size=2000"
    ),
) -> None:
    """Train SE-ResNet-20 and ResNet-20 on Fashion-MNIST with one budget and compare them.

    Example: senet demo train.epochs=1
    """
    from senet.demo import run_demo, run_tour

    if tour:
        run_tour()
    else:
        with _clear_errors():
            run_demo(out, list(overrides or []))


@app.command()
def attention() -> None:
    """List the attention modules that attn= accepts.

    Example: senet attention
    """
    from senet.layers import attention_names

    for name in attention_names():
        typer.echo(name)


# --- training and evaluation ---------------------------------------------------------------------


@contextlib.contextmanager
def _clear_errors() -> Iterator[None]:
    """Every command's one error handler: a known error is one line and an exit code, with no
    traceback (2: a usage mistake; 1: a run that failed; 143: stopped by SIGTERM after its
    checkpoint). Under torchrun every rank raises the same error and rank 0 says it once."""
    try:
        yield
    except Exception as e:
        code = _exit_code(e)
        if code is None:
            raise
        if os.environ.get("RANK", "0") == "0":
            typer.echo(f"{'stopped' if code == 128 + signal.SIGTERM else 'error'}: {e}", err=True)
        raise typer.Exit(code) from None


class CommandLineError(ValueError):
    """Options that do not go together, or a value a command cannot parse."""


def _exit_code(error: Exception) -> int | None:
    """The exit code of an error senet raises on purpose; None for anything else (a bug)."""
    from senet.ablation import GridError
    from senet.config import ConfigError
    from senet.data import DataError
    from senet.models import CheckpointError, ModelError
    from senet.profiling import ProfileError
    from senet.retrofitting import RetrofitError
    from senet.train import NonFiniteLossError, TrainingStopped

    if isinstance(error, TrainingStopped):
        return 128 + signal.SIGTERM
    if isinstance(error, CheckpointError | NonFiniteLossError):
        return 1
    usage = (CommandLineError, ConfigError, GridError, DataError, ModelError, ProfileError)
    usage += (RetrofitError,)
    return 2 if isinstance(error, usage) else None


@app.command()
def train(
    config: Path = typer.Argument(
        ..., help="YAML recipe, or a shipped recipe's name, e.g. cifar10_se_resnet110"
    ),
    overrides: list[str] = typer.Argument(
        None, help="key=value changes, e.g. optim.lr=0.2 train.epochs=1 output_dir=/tmp/run"
    ),
    resume: str = typer.Option(
        None,
        "--resume",
        help="auto (newest valid checkpoint in output_dir; a fresh start if none), a run "
        "folder, or a checkpoint file: continue from the exact step it was saved at.",
    ),
) -> None:
    """Train a model from a recipe and write its run folder (config, metrics, weights, checkpoints).

    Example: senet train fashion_mnist_se_resnet20 train.epochs=1 output_dir=runs/se20

    Several GPUs or machines: torchrun --nproc_per_node=N -m senet train RECIPE ...
    """
    from senet.train import load_config
    from senet.train import train as run_training

    with _clear_errors():
        run_training(load_config(config, overrides or []), resume=resume)


@app.command()
def evaluate(
    source: str = typer.Argument(
        ...,
        help="A `senet train` run folder, or a registry name (e.g. se_resnet50) with --weights.",
    ),
    weights: Path = typer.Option(
        None,
        "--weights",
        help="senet .safetensors, or timm/Cadene file (default for a run folder: best, else last).",
    ),
    data: str = typer.Option(
        None,
        "--data",
        help="fashion_mnist, cifar10, cifar100, imagefolder (default for a run folder: the run's).",
    ),
    root: str = typer.Option(None, "--root", help="Dataset folder (imagefolder: holds val/)."),
    size: int = typer.Option(None, "--size", help="Evaluate only the first N images."),
    batch_size: int = typer.Option(256, "--batch-size"),
    device: str = typer.Option("auto", "--device"),
    output: Path = typer.Option(None, "--output", help="Report folder (default: beside weights)."),
    flip: bool = typer.Option(
        False, "--flip", help="Also with flip TTA: mean logits of each image and its mirror."
    ),
) -> None:
    """Evaluate weights on a dataset: top-1/top-5, per-class accuracy, confusion matrix.

    Example: senet evaluate runs/se20 --flip
    """
    from dataclasses import replace

    from rich.console import Console

    from senet.evaluation import evaluate_weights, per_class_table, resolve_source

    with _clear_errors():
        found = resolve_source(source, weights, data, root)
        found = replace(found, size=size, batch_size=batch_size, device=device)
        report = evaluate_weights(found, output_dir=output, flip=flip)
    Console().print(per_class_table(report))
    if report.flip_top1 is not None:
        typer.echo(
            f"with flip TTA (mean logits of image and mirror): top-1 {report.flip_top1:.2f}%, "
            f"top-5 {report.flip_top5:.2f}%"
        )
    typer.echo(f"report: {report.output_dir}/(eval.json, per_class.csv, confusion.png)")


@app.command()
def compare(
    runs: list[str] = typer.Argument(
        ..., help="Run folders written by `senet train` (or quoted glob patterns)."
    ),
    plot: Path = typer.Option(Path("compare.png"), "--plot", help="Overlay plot to write."),
    reference: list[str] = typer.Option(
        None,
        "--reference",
        help="Reference run folders or a quoted glob (repeatable): RUNS - reference, paired by "
        "seed, with a 95% CI over seeds.",
    ),
    metric: str = typer.Option(
        "final_top1", "--metric", help="Paired on: final_top1, final_flip_top1, best_top1, ..."
    ),
) -> None:
    """Table and overlay plot of several runs; with --reference, their seed-paired difference.

    Example: senet compare 'runs/se_s*' --reference 'runs/plain_s*'
    """
    from rich.console import Console

    from senet.ablation.paired_runs import compare_paired, expand_run_folders
    from senet.evaluation.compare import compare_runs

    with _clear_errors():
        arm = expand_run_folders(runs)
        ref = expand_run_folders(reference) if reference else []
        paired = compare_paired(arm, ref, metric=metric) if ref else None
        _, table = compare_runs([*arm, *ref], plot_path=plot)
    Console().print(table)
    if paired is not None:
        Console().print(paired.table())
    typer.echo(f"overlay plot: {plot}")


# --- end of training and evaluation -------------------------------------------------------------


# --- profile -------------------------------------------------------------------------------------
class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


_BY_MODULE_HELP = (
    "Add the per-module breakdown; with --timing also each module's and each op class's time, "
    "GFLOP/s and FLOPs per byte."
)
_ROOFLINE_HELP = (
    "With --timing: measure this machine's peak compute and memory bandwidth and draw the op "
    "classes against them in this image (e.g. roofline.png)."
)


@app.command("profile")
def profile_command(
    model: Annotated[str, typer.Argument(help="senet model name, torchvision:NAME or timm:NAME.")],
    compare: Annotated[
        list[str] | None,
        typer.Option(
            "--compare",
            "-c",
            help="A reference model (repeatable); deltas are against the first one given.",
        ),
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
    by_module: Annotated[bool, typer.Option(help=_BY_MODULE_HELP)] = False,
    depth: Annotated[int, typer.Option(help="Module tree depth for --by-module.")] = 2,
    roofline: Annotated[Path | None, typer.Option(help=_ROOFLINE_HELP, dir_okay=False)] = None,
    format: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="Output format.")
    ] = OutputFormat.table,
) -> None:
    """Params and MACs as the SE paper counts them, attention's share, optional timings.

    Example: senet profile se_resnet50 --compare resnet50
    """
    timing_kw = dict(
        device=device,
        timing=timing,
        warmup=warmup,
        repeats=repeats,
        compile=compile,
        channels_last=channels_last,
        by_module=by_module,
        depth=depth,
    )
    with _clear_errors():
        result = _profile_or_compare(model, compare, input_size, batch_size, roofline, timing_kw)
    typer.echo(result.render(format.value, by_module=by_module, depth=depth), nl=False)
    if roofline is not None:
        from senet.plots.roofline import plot_roofline

        try:
            plot_roofline(result, roofline)
        except OSError as err:  # the measured figures are printed above: nothing is lost
            typer.echo(
                f"error: could not write the roofline plot {str(roofline)!r}: {err}", err=True
            )
            raise typer.Exit(1) from None
        typer.echo(f"roofline plot: {roofline}", err=True)


def _profile_or_compare(
    model: str,
    compare: list[str] | None,
    input_size: tuple[int, int, int],
    batch_size: int,
    roofline: Path | None,
    timing_kw: dict,
) -> object:
    """``senet profile``'s result: one model, or several compared; options checked first."""
    from senet.models import create_model
    from senet.plots.roofline import check_plot_path
    from senet.profiling.counter import compare_costs, profile

    if roofline is not None:
        if not timing_kw["timing"]:
            raise CommandLineError("--roofline needs --timing: its points are measured speeds")
        if compare:
            raise CommandLineError("--roofline draws one model; drop --compare")
        try:
            check_plot_path(roofline)
        except ValueError as err:
            raise CommandLineError(f"--roofline: {err}") from None
    if compare:
        # The reference first, as in the paper's tables: MODEL's deltas read as its cost.
        models = {name: create_model(name) for name in dict.fromkeys([*compare, model])}
        return compare_costs(models, input_size, batch_size=batch_size, **timing_kw)
    roof = roofline is not None
    net = create_model(model)
    return profile(net, input_size, batch_size=batch_size, name=model, roofline=roof, **timing_kw)


# --- end profile ---------------------------------------------------------------------------------


# --- model zoo ---
@app.command()
def models(
    pattern: str = typer.Argument("*", help="fnmatch pattern over model names, e.g. 'se_*'."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
    write: bool = typer.Option(
        False, "--write", help="Measure every model and rewrite the stored table (after a change)."
    ),
    check: bool = typer.Option(
        False, "--check", help="Measure every model again; exit 1 where the stored table differs."
    ),
) -> None:
    """List the model zoo with params and multiply-adds, from the stored table.

    Example: senet models 'se_resnext*'
    """
    import json

    from rich.console import Console
    from rich.table import Table

    from senet.models.complexity import model_table

    if write or check:
        _measure_models(write=write)
        return
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
    printed = any("paper" in row for row in rows)
    if printed:
        table.add_column("paper GFLOPs / params (M)", justify="right")
    for row in rows:
        cells = [
            row["name"],
            "x".join(map(str, row["input_size"][1:])),
            f"{row['params'] / 1e6:.2f}",
            f"{row['conv_fc_macs'] / 1e9:.3f}",
        ]
        if paper:
            cells.append(f"{row['macs'] / 1e9:.2f}" if "macs" in row else "-")
        if printed:  # the SE paper's own figure (Tables 2-3); the JSON output says how it counts
            figure = row.get("paper", {})
            params = f" / {figure['params_m']}" if "params_m" in figure else ""
            cells.append(f"{figure['gflops']}{params}" if figure else "")
        table.add_row(*cells)
    Console(width=120).print(table)


def _measure_models(*, write: bool) -> None:
    """`senet models --write` / `--check`: the stored table against what the models count now."""
    from senet.models import complexity

    if write:
        typer.echo(f"wrote {len(complexity.write_golden())} models to {complexity.GOLDEN_PATH}")
        return
    changed = complexity.check_golden()
    for line in changed:
        typer.echo(f"changed: {line}", err=True)
    if changed:
        where = complexity.GOLDEN_PATH
        typer.echo(f"{len(changed)} model(s) differ from {where}: `senet models --write`")
        raise typer.Exit(1)
    typer.echo(f"every model counts as stored in {complexity.GOLDEN_PATH}")


# --- end model zoo ---


# --- retrofit -------------------------------------------------------------------------------


@app.command()
def retrofit(
    model_name: str = typer.Argument(
        ..., metavar="MODEL", help='"torchvision:resnet50", "timm:resnet50" or a senet model name'
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
    """Put attention into an existing CNN; print the sites and what they cost.

    Example: senet retrofit torchvision:resnet50 --attn se --dry-run
    """
    from rich.console import Console

    from senet.models import create_model, save_weights
    from senet.retrofitting import retrofit as retrofit_model

    with _clear_errors():
        if dry_run and save is not None:
            raise CommandLineError("--dry-run changes nothing, so there is nothing to --save")
        arguments = dict(attn=attn, strategy=strategy, init=init, input_size=input_size)
        arguments.update(stages=[int(s) for s in stages.split(",") if s.strip()] or None)
        arguments.update(_key_values(attn_kw, "--attn-kw"))
        model = create_model(model_name, pretrained=weights or False).eval()
        report = retrofit_model(model, dry_run=dry_run, **arguments)
    console = Console() if Console().is_terminal else Console(width=160)  # piped: wide
    console.print(report)
    added = 100.0 * report.added_params / report.base_params
    console.print(f"params: {report.base_params:,} -> {report.params:,} ({added:+.2f}%)")
    if save is not None:
        # A run-style record: create_model(MODEL, pretrained=FILE) rebuilds the retrofitted model.
        recorded = {"model": model_name, "model_kwargs": {"retrofit": arguments}}
        save_weights(save, model, recorded)
        console.print(f"saved {save}")


def _key_values(pairs: list[str], option: str) -> dict[str, object]:
    """``["reduction=8", "bias=false"]`` -> ``{"reduction": 8, "bias": False}``: values read by
    the YAML rules of ``senet train key=value``."""
    from senet.config import parse_value

    values = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.isidentifier():
            raise CommandLineError(f"{option} expects key=value (e.g. reduction=8), got {pair!r}")
        values[key] = parse_value(text)
    return values


# --- ablation grids, studies and gate analysis ---------------------------------------------


@app.command()
def ablate(
    grid: Path = typer.Argument(
        ..., help="Grid file, or a shipped grid's name, e.g. reduction_fashion_mnist"
    ),
    overrides: list[str] = typer.Argument(None, help="key=value applied to every point."),
    out: Path = typer.Option(
        None, "--out", help="Results folder (default: runs/ablations/<grid name>)."
    ),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Points run at once (local backend)."),
    backend: str = typer.Option(
        "local", "--backend", help="local, or ray (a Ray cluster or a local Ray)."
    ),
    retries: int = typer.Option(1, "--retries", help="Extra attempts for a failed point."),
    cpus: float = typer.Option(1, "--cpus", help="Ray: CPUs per point."),
    gpus: float = typer.Option(0, "--gpus", help="Ray: GPUs per point."),
    threads: int = typer.Option(
        None, "--threads", help="CPU threads per point (default: the cores split over --jobs)."
    ),
    only: list[str] = typer.Option(
        None, "--only", help="Run only the points whose run id matches this pattern (repeatable)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Validate and list the points, with where each stands in --out."
    ),
) -> None:
    """Run a grid of training runs, resumably, and write its paper-style table and plot.

    Example: senet ablate table14_integration data.root=/data/imagenet --jobs 2
    """
    from rich.console import Console

    from senet.ablation import describe_points, load_grid, run_grid, write_report
    from senet.ablation.study import study_markdown, write_study

    with _clear_errors():
        grid_spec = load_grid(grid, list(overrides or []))
        out = out or Path("runs") / "ablations" / grid_spec.name
        if dry_run:
            typer.echo(describe_points(grid_spec, out, only or None))
            return
        resources = {"num_cpus": cpus, "num_gpus": gpus}
        results = run_grid(
            grid_spec,
            out,
            jobs=jobs,
            backend=backend,
            retries=retries,
            ray_resources=resources,
            only=only or None,
            threads=threads,
        )
    paths = write_report(grid_spec, results, out)
    Console().print(paths["md"].read_text())
    typer.echo(f"table: {paths['md']} (also .csv, .json); plot: {paths['png']}")
    Console().print(study_markdown(write_study(out)))  # seed-paired 95% CIs
    failed = [r.point.run_id for r in results if r.status == "failed"]
    if failed:
        typer.echo(f"{len(failed)} run(s) failed: {', '.join(failed)}; rerun to retry", err=True)
        raise typer.Exit(1)


@app.command()
def analyze(
    source: str = typer.Argument(
        ..., help="A `senet train` run folder, or a model name with --weights."
    ),
    weights: Path = typer.Option(
        None, "--weights", help="Weights file (default for a run folder: best, else last)."
    ),
    data: str = typer.Option(None, "--data", help="Dataset (default: the run's)."),
    root: str = typer.Option(None, "--root", help="Dataset folder."),
    size: int = typer.Option(None, "--size", help="Use only the first N validation images."),
    classes: str = typer.Option(None, "--classes", help="Class indices to plot, e.g. 0,3,7."),
    threshold: float = typer.Option(
        0.02, "--threshold", help="Gate std below which a block is saturated."
    ),
    device: str = typer.Option("auto", "--device"),
    output: Path = typer.Option(
        None, "--output", help="Report folder (default: beside the weights)."
    ),
) -> None:
    """Analyse a run's gates per class and depth (paper Sec. 7): specificity, saturation, plots.

    Example: senet analyze runs/se20
    """
    from dataclasses import replace

    from rich.console import Console

    from senet.analysis import analysis_table, analyze_weights, saturation_summary
    from senet.evaluation import resolve_source

    with _clear_errors():
        found = resolve_source(source, weights, data, root)
        picked = [int(c) for c in classes.split(",")] if classes else None
        report = analyze_weights(
            replace(found, size=size, device=device),
            classes=picked,
            threshold=threshold,
            output_dir=output,
        )
    console = Console()
    console.print(analysis_table(report))
    console.print(saturation_summary(report))
    typer.echo(
        f"report: {report.output_dir}/(gates.json, saturation.json, class_gates.png, specificity.png)"
    )


@app.command()
def study(
    paths: list[Path] = typer.Argument(
        ..., help="A `senet ablate` results folder or a record of one; with --pages, pages."
    ),
    json_path: Path = typer.Option(None, "--json", help="Also write study.json here."),
    plot: Path = typer.Option(None, "--plot", help="The depth plot's path (default: in FOLDER)."),
    twins: Path = typer.Option(
        None, "--twins", help="Another grid's folder holding the models without SE (se_X vs X)."
    ),
    against: Path = typer.Option(
        None, "--against", help="Another grid's folder: pair every setting with each of its own."
    ),
    earlier: Path = typer.Option(
        None, "--earlier", help="A study.json of this grid written elsewhere: fills empty cells."
    ),
    record: Path = typer.Option(
        None, "--record", help="Also copy the finished runs' record (no weights) into this folder."
    ),
    summary: Path = typer.Option(
        None, "--summary", help="Also write the small summary `senet demo` prints (JSON)."
    ),
    pages: bool = typer.Option(
        False, "--pages", help="PATHS are results pages: regenerate their tables from records."
    ),
    check: bool = typer.Option(
        False, "--check", help="With --pages: change nothing; exit 1 if a table is out of date."
    ),
) -> None:
    """Seed-paired 95% CIs of a grid's runs (nothing is trained); or regenerate results pages.

    Example: senet study runs/ablations/table10_reduction

    Pages: senet study --pages docs/results/*.md --check
    """
    from senet.ablation.pages import update_pages
    from senet.ablation.study import StudyOutputs, run_study, study_markdown

    if pages:
        with _clear_errors():
            stale = update_pages(paths, check=check)
        for page in stale:
            typer.echo(f"{'out of date' if check else 'regenerated'}: {page}")
        raise typer.Exit(1 if check and stale else 0)
    with _clear_errors():
        if len(paths) != 1:
            raise CommandLineError(f"give one results folder (or --pages PAGES), got {len(paths)}")
        outputs = StudyOutputs(json_path, plot, record, summary)
        found, recorded = run_study(paths[0], outputs, twins, against, earlier)
    typer.echo(study_markdown(found))
    if recorded is not None:
        typer.echo(f"recorded {len(recorded)} finished run(s) in {record}")


# --- end of ablation grids and gate analysis ---------------------------------------------------


def main() -> None:
    app()
