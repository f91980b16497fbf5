"""Results pages whose tables are generated from records: ``senet study --pages PAGE``.

A table on a page sits between two markers; the first names what it shows and where from::

    <!-- senet:table pairs ../../experiments/fashion_mnist/records/fashion_mnist_depth -->
    ...(generated)...
    <!-- /senet:table -->

The words after ``senet:table``: the kind of table, then one source or several joined by ``+``.
A source is a results folder or record (a path relative to the page), with options:
``earlier=STUDY.json`` (cells whose runs were not kept, marked as such), ``twins=FOLDER`` or
``against=FOLDER`` (as ``senet study``'s options). Kinds: ``pairs`` (one row per seed-paired
difference: the page's headline), ``cells`` (cost and top-1 of each setting), ``gates`` (the
gate analyses), ``loss`` (each run's training loss over its epochs) and ``study`` (cells and
pairs). Everything between the markers is rewritten, so a
table edited by hand does not survive, and ``check=True`` reports it instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from senet.ablation.gates import gates_markdown
from senet.ablation.grid import GridError
from senet.ablation.study import (
    NOT_KEPT,
    build_study,
    cells_markdown,
    load_study_grid,
    pairs_markdown,
    read_earlier,
    shown_name,
)
from senet.train.run_log import read_metrics

MARKED = re.compile(r"(<!-- senet:table (.*?) -->\n)(.*?)(<!-- /senet:table -->)", re.S)
KINDS = ("pairs", "cells", "gates", "loss", "study")
OPTIONS = ("earlier", "twins", "against")


@dataclass
class Source:
    """One study a table reads: a folder and ``senet study``'s options, paths as on the page."""

    folder: str
    options: dict[str, str] = field(default_factory=dict)

    def study(self, page_dir: Path) -> dict[str, Any]:
        """The study of this source, paths taken relative to ``page_dir``."""
        folder = page_dir / self.folder
        paths = {key: page_dir / value for key, value in self.options.items()}
        earlier = read_earlier(paths["earlier"]) if "earlier" in paths else None
        grid = load_study_grid(folder)
        return build_study(grid, folder, paths.get("twins"), earlier, paths.get("against"))


def parse_spec(spec: str) -> tuple[str, list[Source]]:
    """``"pairs A earlier=E + B against=A"`` -> ("pairs", [Source(A, ...), Source(B, ...)])."""
    kind, *words = spec.split()
    if kind not in KINDS:
        raise GridError(f"table kind {kind!r} is not one of {', '.join(KINDS)}: {spec!r}")
    sources: list[Source] = []
    for part in " ".join(words).split(" + "):
        folder, *options = part.split()
        if "=" in folder:
            raise GridError(f"a table source starts with its folder, not {folder!r}: {spec!r}")
        pairs = [o.split("=", 1) for o in options]
        unknown = sorted(key for key, _ in pairs if key not in OPTIONS)
        if unknown or any(len(p) != 2 for p in pairs):
            raise GridError(f"table options are {', '.join(OPTIONS)}=PATH; got {options}: {spec!r}")
        sources.append(Source(folder, dict(pairs)))
    if kind not in ("pairs", "cells", "loss") and len(sources) > 1:
        raise GridError(f"{kind} tables take one source, not several joined by '+': {spec!r}")
    return kind, sources


def render_table(spec: str, page_dir: Path) -> str:
    """The markdown between one pair of markers, generated from its sources."""
    kind, sources = parse_spec(spec)
    studies = [source.study(page_dir) for source in sources]
    if kind == "pairs":
        lines = headline_pairs(studies)
    elif kind == "loss":
        lines = loss_table(studies, [page_dir / source.folder for source in sources])
    elif kind == "cells":
        lines = cells_markdown(joined_cells(studies))
    elif kind == "gates":
        study = studies[0]
        names = {c["label"]: shown_name(study, c["label"]) for c in study["cells"]}
        lines = gates_markdown(study["gates"], names)
    else:
        lines = [*cells_markdown(studies[0]), "", *pairs_markdown(studies[0])]
    return "\n" + "\n".join(lines) + "\n\n"  # blank lines: a markdown block of its own


def joined_cells(studies: list[dict[str, Any]]) -> dict[str, Any]:
    """The first study with the cells of the others appended, each setting once (a control's
    study repeats the cells it pairs with)."""
    first, *others = studies
    cells = list(first["cells"])
    for study in others:
        cells += [c for c in study["cells"] if c["label"] not in {c["label"] for c in cells}]
    return first | {"cells": cells}


def headline_pairs(studies: list[dict[str, Any]]) -> list[str]:
    """One table of every pair of the studies: both sides' top-1, the per-seed differences,
    mean [95% CI] and verdict. A pair with a side whose runs were not kept is marked, and the
    header says what the mark means (the table stays one block: a page's first lines)."""
    rows, marked = [], False
    for study in studies:
        shown = {c["label"]: c["shown"] for c in study["cells"]}
        for p in study["pairs"]:
            arm, reference = shown_name(study, p["arm"]), shown_name(study, p["reference"])
            marked |= NOT_KEPT in arm + reference
            diffs = " / ".join(f"{v:+.2f}" for v in p["differences"].values()) or "—"
            rows.append(
                f"| {arm} - {reference} | {shown[p['arm']]} vs {shown[p['reference']]} | {diffs} "
                f"| {p['shown']} | {p['verdict']} |"
            )
    pair = f"pair ({NOT_KEPT} runs not kept: not recomputable)" if marked else "pair"
    header = (
        f"| {pair} | top-1 (%), mean ± std | per-seed difference | difference, mean [95% CI] "
        "| verdict |"
    )
    return [header, "|---|---|---|---:|---|", *rows]


def loss_table(studies: list[dict[str, Any]], folders: list[Path]) -> list[str]:
    """How each finished run trained, read from its metrics.csv: training loss after the first,
    middle and last epoch, and test top-1 after the first (where the seeds of a cell part)."""
    lines = []
    for study, folder in zip(studies, folders, strict=True):
        for point in load_study_grid(folder).points:
            run = folder / "runs" / point.run_id
            try:
                rows = read_metrics(run)
            except FileNotFoundError:
                continue
            if not lines:
                last = len(rows)
                lines = [
                    f"| run | seed | train loss, epoch 1 / {(last + 1) // 2} / {last} "
                    "| test top-1 after epoch 1 |",
                    "|---|---:|---|---:|",
                ]
            loss = " / ".join(
                f"{float(rows[i - 1]['train_loss']):.3f}" for i in (1, (len(rows) + 1) // 2)
            )
            loss += f" / {float(rows[-1]['train_loss']):.3f}"
            name = shown_name(study, point.label)
            lines.append(f"| {name} | {point.seed} | {loss} | {float(rows[0]['val_top1']):.2f} |")
    return lines


def update_page(path: str | Path, *, check: bool = False) -> bool:
    """Regenerate every marked table of the page at ``path``; True when one differed. With
    ``check``, the page is left as it is (a test, or CI, reports the stale tables)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise GridError(f"cannot read the results page {path}: {e}") from None
    opened, closed = text.count("<!-- senet:table "), text.count("<!-- /senet:table -->")
    if opened != closed:
        raise GridError(
            f"{path}: {opened} `<!-- senet:table ... -->` marker(s) but {closed} closing "
            "`<!-- /senet:table -->`: close each table"
        )

    def regenerate(match: re.Match[str]) -> str:
        try:
            table = render_table(match.group(2), path.parent)
        except GridError as e:
            raise GridError(f"{path}: table {match.group(2)!r}: {e}") from None
        return f"{match.group(1)}{table}{match.group(4)}"

    new = MARKED.sub(regenerate, text)
    if new != text and not check:
        try:
            path.write_text(new)
        except OSError as e:
            raise GridError(f"cannot write the results page {path}: {e}") from None
    return new != text


def update_pages(paths: list[str | Path], *, check: bool = False) -> list[Path]:
    """``update_page`` on each page; the pages whose tables differed (rewritten unless check)."""
    return [Path(p) for p in paths if update_page(p, check=check)]
