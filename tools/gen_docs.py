"""Write the docs tables that come from the code, between markers in the pages.

    python tools/gen_docs.py          # rewrite every generated section
    python tools/gen_docs.py --check  # exit 1 naming each stale section (the tests run this)

A section is ``<!-- generated: NAME -->`` ... ``<!-- /generated -->`` in a page under ``docs/``;
everything between the markers is replaced, the rest of the page is left as written. The pages
stay plain Markdown, so they also read on a code host.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import re
import sys
import tokenize
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Union

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a clone: the senet beside this file
    sys.path.insert(0, str(ROOT))

MARKER = re.compile(r"(<!-- generated: ([a-z-]+) -->\n)(.*?)(<!-- /generated -->)", re.S)


class DocsError(Exception):
    """The code cannot be documented as it stands (e.g. a config field without a comment)."""


# --- model zoo ---------------------------------------------------------------------------------


def model_zoo() -> str:
    """Every registered model: input, params, MACs (both conventions), the paper's figure and
    the public weights ``pretrained=True`` loads."""
    import torch

    import senet
    from senet.models.complexity import model_table

    rows = [
        "| model | input | params (M) | conv+FC GMACs | GFLOPs (paper convention) "
        "| paper GFLOPs / params (M) | `pretrained=True` |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for row in model_table("*"):
        with torch.device("meta"):  # only the pretrained_cfg is read: no memory, no weights
            cfg = getattr(senet.create_model(row["name"]), "pretrained_cfg", {})
        paper = row.get("paper", {})
        printed = f"{paper['gflops']}" if paper else ""
        if "params_m" in paper:
            printed += f" / {paper['params_m']}"
        cells = [
            f"`{row['name']}`",
            "x".join(map(str, row["input_size"][1:])),
            f"{row['params'] / 1e6:.2f}",
            f"{row['conv_fc_macs'] / 1e9:.3f}",
            f"{row['macs'] / 1e9:.3f}",
            printed,
            cfg.get("weights_origin") or "",
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


# --- attention modules -------------------------------------------------------------------------


def attention_modules() -> str:
    """Each name ``attn=`` takes, the class it builds and that class's one-line summary."""
    from senet.layers import attention_names, create_attn

    rows = ["| `attn=` | module | what it computes |", "|---|---|---|"]
    for name in attention_names():
        module = create_attn(name, 64)
        summary = _first_line(type(module).__doc__)
        rows.append(f"| `{name}` | `{type(module).__name__}` | {_cell(summary)} |")
    return "\n".join(rows)


def _first_line(doc: str | None) -> str:
    if not doc or not doc.strip():
        raise DocsError("a documented object has no docstring")
    return doc.strip().split("\n\n")[0].replace("\n", " ").strip()


# --- recipes, grids, datasets ------------------------------------------------------------------


def _yaml_summary(path: Path) -> str:
    """What a shipped YAML file is: the first sentence of its opening comment, up to a colon
    that starts the details."""
    lines = []
    for line in path.read_text().splitlines():
        text = line.lstrip("#").strip()
        if not line.startswith("#") or not text or line.startswith("#  "):
            break  # the comment ends, or its indented command examples start
        lines.append(text)
    if not lines:
        raise DocsError(f"{path} does not start with a comment saying what it is")
    sentence = re.split(r"(?<=\.)\s+(?=[A-Z])", " ".join(lines))[0]
    head, colon, _ = sentence.partition("): ")
    return _cell(f"{head})" if colon else sentence)


def recipes() -> str:
    """The shipped training recipes: model, data, epochs and what each is for."""
    from senet.config import load_config
    from senet.configs import names, packaged

    rows = ["| recipe | model | data | epochs | what it is |", "|---|---|---|---:|---|"]
    for name in names():
        config = load_config(name)
        summary = _yaml_summary(packaged(name))
        rows.append(
            f"| `{name}` | `{config.model.name}` | {config.data.name} | {config.train.epochs} "
            f"| {summary} |"
        )
    return "\n".join(rows)


def grids() -> str:
    """The shipped ablation grids: what each varies and how many runs it holds."""
    from senet.ablation import grid_from_dict
    from senet.configs import names, packaged

    rows = ["| grid | what it compares | varies | seeds | runs |", "|---|---|---|---:|---:|"]
    for name in names("ablations"):
        path = packaged(name, "ablations")
        grid = grid_from_dict(yaml.safe_load(path.read_text()), source=path)
        varies = ", ".join(f"`{key}`" for key in grid.axes)
        rows.append(
            f"| `{name}` | {_cell(grid.title)} | {varies} | {len(grid.seeds)} | {len(grid.points)} |"
        )
    return "\n".join(rows)


def datasets() -> str:
    """The registered datasets and the options each takes (``data.*`` keys)."""
    from senet.data import dataset_options, list_datasets

    rows = ["| `data.name` | options |", "|---|---|"]
    for name in list_datasets():
        options = ", ".join(f"`{option}`" for option in dataset_options(name))
        rows.append(f"| `{name}` | {options} |")
    return "\n".join(rows)


# --- config reference --------------------------------------------------------------------------


def config_reference() -> str:
    """Every config key: its type, default and meaning (the field's comment in senet/config.py)."""
    from senet import config

    comments = _field_comments(Path(config.__file__))
    blocks = []
    for section in dataclasses.fields(config.Config):
        cls = _dataclass_of(typing.get_type_hints(config.Config)[section.name])
        if cls is None:  # a top-level key (output_dir)
            table = _key_table([(section, config.Config)], "", comments)
            blocks.append(f"### `{section.name}`\n\n{table}")
            continue
        blocks.append(_section_block(cls, f"{section.name}.", comments))
    return "\n\n".join(blocks)


def _section_block(cls: type, prefix: str, comments: dict[tuple[str, str], str]) -> str:
    plain, nested = [], []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        inner = _dataclass_of(hints[f.name])
        if inner is not None:
            nested.append(_section_block(inner, f"{prefix}{f.name}.", comments))
        else:
            plain.append((f, cls))
    heading = f"### `{prefix.rstrip('.')}`"
    written = cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}(")  # not dataclass's
    summary = _first_line(cls.__doc__) if written else ""
    parts = [heading, summary, _key_table(plain, prefix, comments)]
    return "\n\n".join([p for p in parts if p] + nested)


def _key_table(
    fields: list[tuple[dataclasses.Field, type]], prefix: str, comments: dict[tuple[str, str], str]
) -> str:
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for f, cls in fields:
        meaning = comments.get((cls.__name__, f.name))
        if not meaning:
            raise DocsError(
                f"senet/config.py: {cls.__name__}.{f.name} has no comment; the config reference "
                "takes each key's meaning from its comment (on the line, or just above it)"
            )
        tp = typing.get_type_hints(cls)[f.name]
        rows.append(
            f"| `{prefix}{f.name}` | {_type_text(tp)} | {_default_text(f)} | {_cell(meaning)} |"
        )
    return "\n".join(rows)


def _cell(text: str) -> str:
    """Prose for a table cell: no cell breaks, no HTML tags or emphasis read into it."""
    for char, escaped in (("|", "/"), ("<", "&lt;"), ("*", "\\*")):
        text = text.replace(char, escaped)
    return text


def _dataclass_of(tp: Any) -> type | None:
    """The dataclass of a section field typed ``X`` or ``X | None``."""
    if dataclasses.is_dataclass(tp):
        return tp
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and dataclasses.is_dataclass(args[0]):
            return args[0]
    return None


def _type_text(tp: Any) -> str:
    """A type as the YAML reader takes it: ``int or null``, ``sgd`` or ``adamw``."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(f"`{_yaml_text(a)}`" for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_text(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if tp is Any:
        return "any"
    if origin in (list, dict):
        args = ", ".join(_type_text(a) for a in typing.get_args(tp))
        return f"{origin.__name__}[{args}]"
    return tp.__name__


def _default_text(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "required"
    return f"`{_yaml_text(value)}`"


def _yaml_text(value: Any) -> str:
    """A value as it is written in a recipe or on the command line."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return text.removesuffix("\n...").removesuffix(" ...").strip()


def _field_comments(path: Path) -> dict[tuple[str, str], str]:
    """``{(class, field): comment}``: the comment on a field's line, else the comment lines
    just above it, joined into one line."""
    source = path.read_text()
    lines = source.splitlines()
    inline = {
        tok.start[0]: tok.string.lstrip("#").strip()
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.COMMENT and lines[tok.start[0] - 1].split("#")[0].strip()
    }
    found = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        for stmt in node.body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            text = inline.get(stmt.end_lineno)
            if text is None:
                above, i = [], stmt.lineno - 2
                while i >= 0 and lines[i].strip().startswith("#"):
                    above.insert(0, lines[i].strip().lstrip("#").strip())
                    i -= 1
                text = " ".join(above)
            found[(node.name, stmt.target.id)] = text
    return found


# --- command line ------------------------------------------------------------------------------


def cli_commands() -> str:
    """Every ``senet`` command with the first line of its help."""
    import typer

    from senet.cli import app

    group = typer.main.get_command(app)
    rows = ["| command | what it does |", "|---|---|"]
    for name in sorted(group.commands):
        command = group.commands[name]
        rows.append(f"| `senet {name}` | {_cell(_first_line(command.help))} |")
    return "\n".join(rows)


def cli_options() -> str:
    """Each command's help, usage, arguments and options, with their defaults."""
    import typer

    from senet.cli import app

    group = typer.main.get_command(app)
    blocks = []
    for name in sorted(group.commands):
        command = group.commands[name]
        summary, _, rest = (command.help or "").strip().partition("\n\n")
        parts = [f"### senet {name}", _cell(" ".join(summary.split()))]
        if rest.strip():
            parts.append(f"```text\n{inspect.cleandoc(rest)}\n```")
        usage = f"senet {name} {_usage(command)}".strip()
        parts.append(f"`{usage}`")
        rows = ["| argument or option | default | meaning |", "|---|---|---|"]
        for param in command.params:
            if param.param_type_name == "argument":
                label = f"`{param.name.upper()}`"
            else:
                label = ", ".join(f"`{opt}`" for opt in [*param.opts, *param.secondary_opts])
            default = "" if param.default in (None, (), []) else f"`{_cli_default(param)}`"
            rows.append(f"| {label} | {default} | {_cell(getattr(param, 'help', None) or '')} |")
        if len(rows) > 2:
            parts.append("\n".join(rows))
        blocks.append("\n\n".join(parts))
    return "\n\n".join(blocks)


def _usage(command: Any) -> str:
    """``[OPTIONS] GRID [OVERRIDES]...``: the command line's shape."""
    kinds = {param.param_type_name for param in command.params}
    pieces = ["[OPTIONS]"] if "option" in kinds else []
    for param in command.params:
        if param.param_type_name == "argument":
            text = param.name.upper() + ("..." if param.nargs == -1 else "")
            pieces.append(text if param.required else f"[{text}]")
    return " ".join(pieces)


def _cli_default(param: Any) -> str:
    value = param.default
    if hasattr(value, "value"):  # an Enum choice
        value = value.value
    if isinstance(value, tuple | list):
        return " ".join(map(str, value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- layering ----------------------------------------------------------------------------------


def layering() -> str:
    """The pipeline's stages, earliest first, from tests/test_layering.py (which enforces them)."""
    path = ROOT / "tests" / "test_layering.py"
    source = path.read_text()
    tree = ast.parse(source)
    stages = next(
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "STAGES"
    )
    lines = source.splitlines()
    rows = ["| stage | packages (imports only from its own and earlier stages) |", "|---:|---|"]
    for rank, element in enumerate(stages.elts):
        packages = ", ".join(f"`{name}`" for name in ast.literal_eval(element))
        _, _, note = lines[element.end_lineno - 1].partition("#")
        rows.append(f"| {rank} | {packages}{f': {_cell(note.strip())}' if note else ''} |")
    return "\n".join(rows)


# --- the pages ---------------------------------------------------------------------------------

SECTIONS: dict[str, Callable[[], str]] = {
    "attention-modules": attention_modules,
    "cli-commands": cli_commands,
    "cli-options": cli_options,
    "config-reference": config_reference,
    "datasets": datasets,
    "grids": grids,
    "layering": layering,
    "model-zoo": model_zoo,
    "recipes": recipes,
}


def render(text: str, cache: dict[str, str]) -> str:
    """``text`` with every generated section rewritten (``cache`` holds sections made once)."""

    def fill(match: re.Match) -> str:
        name = match.group(2)
        if name not in SECTIONS:
            raise DocsError(f"unknown generated section {name!r}; known: {', '.join(SECTIONS)}")
        if name not in cache:
            cache[name] = SECTIONS[name]()
        return f"{match.group(1)}\n{cache[name]}\n\n{match.group(4)}"

    return MARKER.sub(fill, text)


def pages(docs: Path = ROOT / "docs") -> list[Path]:
    return sorted(p for p in docs.rglob("*.md") if MARKER.search(p.read_text()))


def stale_pages(docs: Path = ROOT / "docs") -> list[Path]:
    """The pages whose generated sections differ from what the code gives now."""
    cache: dict[str, str] = {}
    return [p for p in pages(docs) if render(p.read_text(), cache) != p.read_text()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_pages()
        for page in stale:
            print(f"{page.relative_to(ROOT)} is stale: run python tools/gen_docs.py")
        return 1 if stale else 0
    cache: dict[str, str] = {}
    for page in pages():
        text = page.read_text()
        new = render(text, cache)
        if new != text:
            page.write_text(new)
            print(f"wrote {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
