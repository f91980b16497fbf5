"""Imports flow one way through the pipeline (README, Development): no stage imports a later
one or a neighbour of the same rank, at module level, inside a function or through importlib,
and no package reads another's private names."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "senet"
ROOT = "senet"

# Each stage may import its own and earlier stages only (same rank: neither imports the other).
STAGES = [
    ("senet.version",),
    ("senet.configs", "senet.data", "senet.environment", "senet.layers"),
    ("senet.profiling",),
    ("senet.retrofitting",),
    ("senet.models",),  # create_model retrofits and profiles
    ("senet.config", "senet.plots"),  # config translates a model section onto create_model
    ("senet.train",),
    ("senet.evaluation",),
    ("senet.analysis",),
    ("senet.ablation",),  # its study reports the gates of analysed runs
    ("senet.demo",),
    ("senet.cli",),
    ("senet", "senet.__main__"),  # the package's face: hands names on
]


def owner(module: str) -> tuple[int, str] | None:
    """(rank, entry) of the longest STAGES entry that holds ``module``; None when none does.

    The root ``senet`` holds only itself: a new top-level module, private or not, must be
    given its own place in the table."""
    best = None
    for rank, names in enumerate(STAGES):
        for name in names:
            holds = module == name or (name != ROOT and module.startswith(name + "."))
            if holds and (best is None or len(name) > len(best[1])):
                best = (rank, name)
    return best


@dataclass(frozen=True)
class Import:
    """One senet import: the module it loads, and the name it takes from it (None: the module)."""

    line: int
    module: str
    name: str | None = None


def is_module(module: str) -> bool:
    """Whether ``module`` is a file or package of senet (so ``from X import it`` loads it)."""
    path = PACKAGE.parent.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _from_import(node: ast.ImportFrom, package: str) -> list[Import]:
    module = node.module or ""
    if node.level:  # relative: resolve against the importing file's package
        parts = package.split(".")
        base = parts[: len(parts) - node.level + 1]
        module = ".".join([*base, module] if module else base)
    if module.split(".")[0] != ROOT:
        return []
    found = []
    for alias in node.names:
        sub = f"{module}.{alias.name}"  # `from senet import cli` loads the module senet.cli
        found.append(
            Import(node.lineno, sub) if is_module(sub) else Import(node.lineno, module, alias.name)
        )
    return found


_IMPORT_FUNCTIONS = {"import_module", "__import__"}


def _dynamic_import(node: ast.Call, package: str) -> list[Import]:
    """``importlib.import_module("senet.x")``, ``import_module(".x", "senet")``, ``__import__``."""
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if called not in _IMPORT_FUNCTIONS or not node.args:
        return []
    literals = [a.value if isinstance(a, ast.Constant) else None for a in node.args[:2]]
    name = literals[0]
    if not isinstance(name, str):
        return []
    if name.startswith("."):  # relative to the package argument (or this file's package)
        anchor = literals[1] if len(literals) > 1 and isinstance(literals[1], str) else package
        level = len(name) - len(name.lstrip("."))
        parts = anchor.split(".")
        name = ".".join([*parts[: len(parts) - level + 1], name[level:]]).rstrip(".")
    return [Import(node.lineno, name)] if name.split(".")[0] == ROOT else []


def imports_in(source: str, here: str, *, is_package: bool = False) -> list[Import]:
    """Every senet import in ``source`` (the module ``here``), lazy and importlib ones included."""
    package = here if is_package else here.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [
                Import(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == ROOT
            ]
        elif isinstance(node, ast.ImportFrom):
            found += _from_import(node, package)
        elif isinstance(node, ast.Call):
            found += _dynamic_import(node, package)
    return found


def wrong_way_imports(source: str, here: str, *, is_package: bool = False) -> list[str]:
    """The imports of ``source`` that reach a later stage, a neighbour of the same rank, or a
    module in no stage."""
    rank, entry = owner(here) or (None, None)
    assert rank is not None, f"{here} is in no stage: add it to STAGES"
    problems = []
    for imp in imports_in(source, here, is_package=is_package):
        target = owner(imp.module)
        if target is None:
            problems.append(f"line {imp.line}: {imp.module} is in no stage: add it to STAGES")
        elif target[0] > rank:
            problems.append(f"line {imp.line}: {imp.module} (stage {target[0]} > {rank})")
        elif target[0] == rank and target[1] != entry:
            problems.append(f"line {imp.line}: {imp.module} (the same stage {rank} as {entry})")
    return problems


def package_of(module: str) -> str:
    """The package a module belongs to: a subpackage of senet, or the root for its top-level
    modules (``senet.cli``, ``senet._private``)."""
    parts = module.split(".")
    if len(parts) > 1 and (PACKAGE / parts[1] / "__init__.py").is_file():
        return ".".join(parts[:2])
    return ROOT


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_reads(source: str, here: str, *, is_package: bool = False) -> list[str]:
    """The imports of ``source`` that take a private name or module of another package."""
    mine = package_of(here)
    problems = []
    for imp in imports_in(source, here, is_package=is_package):
        theirs = package_of(imp.module)
        inner = imp.module.split(".")[len(theirs.split(".")) :]
        if theirs != mine and (any(map(_private, inner)) or _private(imp.name or "")):
            problems.append(f"line {imp.line}: {imp.module}: {imp.name or 'a private module'}")
    return problems


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


FILES = sorted(PACKAGE.rglob("*.py"))
_ID = {"ids": lambda p: str(p.relative_to(PACKAGE.parent))}


def _check(path: Path, checker) -> list[str]:
    return checker(path.read_text(), module_name(path), is_package=path.name == "__init__.py")


@pytest.mark.parametrize("path", FILES, **_ID)
def test_no_stage_imports_a_later_one_or_a_neighbour(path):
    wrong = _check(path, wrong_way_imports)
    assert not wrong, f"{module_name(path)} imports against the flow: {wrong}"


@pytest.mark.parametrize("path", FILES, **_ID)
def test_no_package_reads_another_packages_private_names(path):
    private = _check(path, private_reads)
    assert not private, f"{module_name(path)} reads private names of other packages: {private}"


def test_the_stage_table_catches_a_backward_import():
    # The check itself can fail: models importing train is a stage going backwards.
    rank = {m: owner(m)[0] for m in ("senet.train.job", "senet.models.factory", "senet.config")}
    rank.update({m: owner(m)[0] for m in ("senet.models", "senet.retrofitting.api")})
    assert rank["senet.train.job"] > rank["senet.models.factory"]
    assert rank["senet.config"] > rank["senet.models"] > rank["senet.retrofitting.api"]


# --- the checker catches each kind of wrong import -------------------------------------------


@pytest.mark.parametrize(
    ("here", "source"),
    [
        ("senet.models.specs", "from senet.train import job"),
        ("senet.models.specs", "def f():\n    import senet.cli\n"),  # lazy, inside a function
        ("senet.models.specs", "from .. import train"),  # a package taken by from-import
        ("senet.models.specs", "from ..train import fit"),
        ("senet.data.factory", "from senet import cli"),
        ("senet.data.factory", "from senet import create_model"),  # the package's face
        ("senet.data.factory", "from senet.layers import SqueezeExcite"),  # same rank
        ("senet.config", "import senet.plots"),  # same rank
        ("senet.plots.curves", "from ..config import Config"),  # same rank
        ("senet.models.specs", "import importlib\nimportlib.import_module('senet.train')"),
        ("senet.models.specs", "from importlib import import_module\nimport_module('senet.cli')"),
        ("senet.models.specs", "importlib.import_module('.train', 'senet')"),
        ("senet.models.specs", "importlib.import_module('..evaluation', __package__)"),
        ("senet.models.specs", "__import__('senet.ablation')"),
        ("senet.models.specs", "from senet._magic import swap"),  # a module in no stage
        ("senet", "import senet._magic"),  # even the root places each of its modules
    ],
)
def test_the_checker_catches_a_wrong_way_import(here, source):
    assert len(wrong_way_imports(source, here)) == 1


@pytest.mark.parametrize(
    ("here", "source"),
    [
        ("senet.train.job", "from senet.models import create_model"),
        ("senet.train.job", "from . import epoch\nfrom .epoch import Trainer"),
        ("senet.layers", "from .squeeze_excite import SqueezeExcite"),  # its own package
        ("senet.cli", "def f():\n    from senet.train import train\n"),
        ("senet.cli", "from senet import demo"),  # a module of an earlier stage, not the face
        ("senet", "from senet.cli import main\nimport importlib\nimportlib.import_module('timm')"),
    ],
)
def test_the_checker_lets_a_forward_import_pass(here, source):
    assert wrong_way_imports(source, here, is_package=here in ("senet", "senet.layers")) == []


@pytest.mark.parametrize(
    ("here", "source"),
    [
        ("senet.train.job", "from senet.models import _registry"),
        ("senet.train.job", "from senet.models._registry import register"),
        ("senet.train.job", "from senet.models.specs import _resolve"),
        ("senet.profiling.counter", "from senet._magic import swap"),  # top-level private
        ("senet.profiling.counter", "from .. import _magic"),
        ("senet.cli", "from senet.train.fit_loop import _train_epoch"),
    ],
)
def test_the_checker_catches_a_private_read(here, source):
    assert len(private_reads(source, here)) == 1


def test_private_names_stay_readable_inside_their_own_package():
    assert private_reads("from ._registry import _REGISTRY", "senet.models.specs") == []
    assert private_reads("from senet._magic import swap", "senet.cli") == []  # root's own
