"""Every code block in README.md and docs/ runs as written, and the generated tables are current.

A page's blocks run in order, in a fresh folder, sharing one namespace (a page reads as one
session). Python blocks are executed; a line ``EXPR  # => TEXT`` also checks ``str(EXPR) == TEXT``.
Shell blocks run line by line: ``senet ...`` in-process, with quick-run overrides (synthetic data,
tiny images, one step), ``python -m MODULE`` and ``python SCRIPT`` likewise. YAML blocks must
parse; one under ``<!-- file: NAME -->`` is written to NAME for the blocks after it. Text blocks
and BibTeX blocks are not code. A block that cannot run here carries ``<!-- no-run: why -->`` on the line above.

docs/results/ is not run here: its commands reproduce studies of hours, and its tables are checked
against the committed records by their own tests.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import re
import runpy
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
GUIDES = [p for p in (ROOT / "docs").rglob("*.md") if RESULTS not in p.parents]
PAGES = [ROOT / "README.md", *sorted(GUIDES)]
LANGUAGES = ("python", "bash", "yaml", "text", "bibtex")
NOT_CODE = ("text", "bibtex")  # output and citations: shown, never run
FENCE = re.compile(r"^```(\S*)\s*$")
MARKER = re.compile(r"^<!-- (no-run|file): ?(.*?) ?-->$")
CHECK = re.compile(r"^(?P<expr>\S.*?)\s+# => (?P<want>.+)$")

# Quick-run overrides for `senet train` and `senet ablate`: synthetic 32x32 images, one step of
# 16, no plots or TensorBoard. They come last, so they win over the page's own key=value.
QUICK = [
    "data.name=synthetic",
    "data.root=null",
    "data.synthetic_train=16",
    "data.synthetic_val=16",
    "data.train_size=null",
    "data.val_size=null",
    "data.batch_size=16",
    "data.image_size=32",
    "data.eval_resize=null",
    "data.workers=0",
    "data.distort=null",
    "data.distort_canvas=null",
    "data.cutout=0",
    "train.epochs=1",
    "train.amp=none",
    "train.channels_last=false",
    "train.compile=false",
    "train.freeze_bn_epochs=0",
    "schedule.warmup_epochs=0",
    "log.progress=none",
    "log.tensorboard=false",
    "log.plots=false",
]


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    no_run: str | None = None  # why it cannot run here
    file: str | None = None  # a YAML block written to this file first

    @property
    def where(self) -> str:
        page = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page.name
        return f"{page}:{self.line}"


def code_blocks(page: Path) -> list[Block]:
    """The fenced blocks of ``page`` with the marker above each; a marker with no block under
    it, or a block without a known language, is an error."""
    lines = page.read_text().splitlines()
    blocks, marker, i = [], None, 0
    while i < len(lines):
        line = lines[i]
        found = MARKER.match(line.strip())
        fence = FENCE.match(line)
        if found:
            assert marker is None, f"{page.name}:{i + 1}: two markers in a row"
            kind, text = found.groups()
            assert text, f"{page.name}:{i + 1}: a {kind} marker needs its text (why / a file name)"
            marker = (kind, text, i + 1)
        elif fence:
            language = fence.group(1)
            assert language in LANGUAGES, (
                f"{page.name}:{i + 1}: label the block with one of {', '.join(LANGUAGES)} "
                f"(got {language!r}), so the tests know how to run it"
            )
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            block = Block(page, i + 1, language, "\n".join(lines[i + 1 : end]) + "\n")
            if marker:
                setattr(block, marker[0].replace("-", "_"), marker[1])
                marker = None
            blocks.append(block)
            i = end
        elif line.strip() and marker:
            raise AssertionError(f"{page.name}:{marker[2]}: the marker is not above a code block")
        i += 1
    assert marker is None, f"{page.name}:{marker[2]}: the marker is not above a code block"
    return blocks


# --- running blocks ----------------------------------------------------------------------------


def run_python(block: Block, namespace: dict) -> None:
    lines = []
    for line in block.code.splitlines():
        check = CHECK.match(line)
        if check:
            line = f"__check__(({check['expr']}), {check['want']!r})"
        lines.append(line)
    namespace["__check__"] = _check
    exec(compile("\n".join(lines), block.where, "exec"), namespace)


def _check(value: object, want: str) -> None:
    assert str(value) == want, f"the page says {want}, the code gives {value}"


def shell_commands(code: str) -> list[list[str]]:
    """The commands of a shell block: continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    return [argv for line in joined.splitlines() if (argv := shlex.split(line, comments=True))]


def quick(argv: list[str]) -> list[str]:
    """``senet`` arguments made quick: tiny data for training, few images for evaluation, few
    repeats for timing."""
    command = argv[0] if argv else ""
    if command in ("train", "ablate"):
        return [*argv, *QUICK]
    if command in ("evaluate", "analyze"):
        return [*argv, "--size", "16"]
    if command == "profile" and "--timing" in argv:
        return [*argv, "--warmup", "1", "--repeats", "2"]
    return argv


def run_senet(argv: list[str], where: str) -> None:
    from typer.testing import CliRunner

    from senet.cli import app

    result = CliRunner().invoke(app, quick(argv))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{where}: senet {shlex.join(argv)} raised") from result.exception
    assert result.exit_code == 0, f"{where}: senet {shlex.join(argv)}:\n{result.output}"


def run_python_main(argv: list[str], where: str) -> None:
    """``python -m MODULE ARGS`` (the module's ``main(args)``) or ``python SCRIPT ARGS``, in this
    process; a non-zero exit fails."""
    saved = sys.argv
    try:
        if argv[1] == "-m":
            code = importlib.import_module(argv[2]).main(argv[3:])
        else:
            script = argv[1] if Path(argv[1]).exists() else str(ROOT / argv[1])
            sys.argv = [script, *argv[2:]]
            runpy.run_path(script, run_name="__main__")
            code = 0
    except SystemExit as stop:
        code = stop.code
    finally:
        sys.argv = saved
    assert code in (0, None), f"{where}: {shlex.join(argv)} exited with {code}"


def run_shell(block: Block) -> None:
    for argv in shell_commands(block.code):
        if argv[0] == "senet":
            run_senet(argv[1:], block.where)
        elif argv[:3] == ["python", "-m", "senet"]:
            run_senet(argv[3:], block.where)
        elif argv[0] == "python" and len(argv) > 1:
            run_python_main(argv, block.where)
        else:
            raise AssertionError(
                f"{block.where}: the tests cannot run `{shlex.join(argv)}`; "
                "mark the block <!-- no-run: why --> or move the command to a block that has one"
            )


@contextlib.contextmanager
def quick_configs(monkeypatch: pytest.MonkeyPatch):
    """Python blocks that load a recipe get the quick-run overrides too."""
    import senet.config
    import senet.train

    original = senet.config.load_config

    def load_quick(path=None, overrides=None):
        return original(path, [*(overrides or []), *QUICK])

    monkeypatch.setattr(senet.config, "load_config", load_quick)
    monkeypatch.setattr(senet.train, "load_config", load_quick)
    yield


def run_page(page: Path, folder: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """Run every runnable block of ``page`` in ``folder``; the number run."""
    monkeypatch.chdir(folder)
    namespace: dict = {"__name__": "__docs__"}
    ran = 0
    with quick_configs(monkeypatch):
        for block in code_blocks(page):
            if block.language == "yaml":
                yaml.safe_load(block.code)  # every YAML block parses, run or not
                if block.file:
                    Path(block.file).write_text(block.code)
            if block.no_run or block.language in (*NOT_CODE, "yaml"):
                continue
            if block.language == "python":
                run_python(block, namespace)
            else:
                run_shell(block)
            ran += 1
    return ran


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_example_runs(page, tmp_path, monkeypatch):
    run_page(page, tmp_path, monkeypatch)


# --- the harness itself ------------------------------------------------------------------------


def _page(tmp_path: Path, text: str) -> Path:
    page = tmp_path / "page.md"
    page.write_text(text)
    return page


def test_a_failing_example_fails_the_page(tmp_path, monkeypatch):
    page = _page(tmp_path, "```python\nx = 1\nx + 1  # => 3\n```\n")
    with pytest.raises(AssertionError, match="the page says 3, the code gives 2"):
        run_page(page, tmp_path, monkeypatch)
    page = _page(tmp_path, "```bash\nsenet models no_such_model\n```\n")
    with pytest.raises(AssertionError, match="no_such_model"):
        run_page(page, tmp_path, monkeypatch)


def test_unlabelled_blocks_and_stray_markers_are_refused(tmp_path, monkeypatch):
    with pytest.raises(AssertionError, match="label the block"):
        run_page(_page(tmp_path, "```\nsenet models\n```\n"), tmp_path, monkeypatch)
    with pytest.raises(AssertionError, match="not above a code block"):
        code_blocks(_page(tmp_path, "<!-- no-run: slow -->\nprose\n```bash\nls\n```\n"))
    with pytest.raises(AssertionError, match="cannot run `make demo`"):
        run_page(_page(tmp_path, "```bash\nmake demo\n```\n"), tmp_path, monkeypatch)


def test_no_run_skips_only_its_block(tmp_path, monkeypatch):
    text = "<!-- no-run: needs ImageNet -->\n```bash\nmake demo\n```\n\n```python\ny = 2\n```\n"
    assert run_page(_page(tmp_path, text), tmp_path, monkeypatch) == 1


def test_shell_commands_join_continuations_and_drop_comments():
    code = "senet train R \\\n    a=1 b=2  # why\n# a comment\nsenet models 'se_*'\n"
    assert shell_commands(code) == [
        ["senet", "train", "R", "a=1", "b=2"],
        ["senet", "models", "se_*"],
    ]


# --- generated tables --------------------------------------------------------------------------


def _gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "tools" / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_tables_are_current():
    stale = _gen_docs().stale_pages()
    assert not stale, (
        f"stale: {[str(p.relative_to(ROOT)) for p in stale]}; run python tools/gen_docs.py"
    )


def test_a_hand_edited_table_is_stale(tmp_path):
    gen = _gen_docs()
    page = tmp_path / "layers.md"
    fresh = gen.render("<!-- generated: attention-modules -->\n<!-- /generated -->\n", {})
    page.write_text(fresh)
    assert gen.stale_pages(tmp_path) == []
    page.write_text(fresh.replace("SqueezeExcite", "SqueezeExcitation"))
    assert gen.stale_pages(tmp_path) == [page]
