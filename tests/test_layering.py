"""Imports flow one way through the pipeline (README, Development): no stage imports a later
one, at module level or inside a function, and no package reads another's private names."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "senet"

# Each stage may import its own and earlier stages only (same rank: neither imports the other).
STAGES = [
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


def stage_of(module: str) -> int:
    """Rank of the longest stage prefix of ``module``."""
    best, rank = "", None
    for i, names in enumerate(STAGES):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > len(best):
                best, rank = name, i
    assert rank is not None, f"{module} is in no stage: add it to STAGES"
    return rank


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every senet import in ``path``, lazy ones included."""
    found = []
    package = (
        module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    )
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, []) for a in node.names if a.name.startswith("senet")]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: resolve against this file's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            if module.startswith("senet"):
                found.append((node.lineno, module, [a.name for a in node.names]))
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _private_module(module: str) -> bool:
    return any(_private(part) for part in module.split(".")[2:])


FILES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_stage_imports_a_later_one(path):
    here = module_name(path)
    rank = stage_of(here)
    backwards = [
        f"line {line}: {module}"
        for line, module, _ in imports(path)
        if stage_of(module) > rank and module != "senet"
    ]
    assert not backwards, f"{here} (stage {rank}) imports later stages: {backwards}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_package_reads_another_packages_private_names(path):
    here = module_name(path)
    top = ".".join(here.split(".")[:2])
    private = [
        f"line {line}: {module}: {name or 'a private module'}"
        for line, module, names in imports(path)
        if ".".join(module.split(".")[:2]) != top
        for name in [n for n in names if _private(n)] or ([""] if _private_module(module) else [])
    ]
    assert not private, f"{here} reads private names of other packages: {private}"


def test_the_stage_table_catches_a_backward_import():
    # The check itself can fail: models importing train is a stage going backwards.
    assert stage_of("senet.train.job") > stage_of("senet.models.factory")
    assert stage_of("senet.config") > stage_of("senet.models") > stage_of("senet.retrofitting.api")
