"""Results pages whose tables are generated between markers (`senet study --pages`): a table
or record edited by hand is found, and bad markers say what is wrong."""

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from senet.ablation import GridError
from senet.ablation.pages import parse_spec, update_page
from senet.cli import app

REPO = Path(__file__).resolve().parents[1]
RECORDS = REPO / "experiments" / "fashion_mnist" / "records"


def _page(folder: Path, records: Path, body: str = "") -> Path:
    """A page in ``folder`` with the headline table of the depth record in ``records``."""
    where = os.path.relpath(records, folder)
    page = folder / "page.md"
    page.write_text(
        f"# Question\n\n<!-- senet:table pairs {where}/fashion_mnist_depth -->\n"
        f"<!-- /senet:table -->\n\nVerdict.\n{body}"
    )
    return page


def test_regenerating_fills_the_tables_and_then_changes_nothing(tmp_path):
    page = _page(tmp_path, RECORDS)
    assert update_page(page) is True
    text = page.read_text()
    assert "| SE-ResNet-110 - ResNet-110 | 94.35 ± 0.14 vs 93.51 ± 0.78 |" in text
    assert "+0.29 / +0.56 / +1.66 | +0.84 [-0.97, +2.64] | no difference |" in text
    # Depth 20 and 56 have no recorded run: shown missing, not filled from elsewhere.
    assert "| SE-ResNet-20 - ResNet-20 | missing (0/3 seeds; seed 0, 1, 2 not run) vs" in text
    assert text.startswith("# Question\n\n<!-- senet:table") and text.endswith("Verdict.\n")
    assert update_page(page, check=True) is False and update_page(page) is False


def test_a_table_edited_by_hand_is_found_and_restored(tmp_path):
    page = _page(tmp_path, RECORDS)
    update_page(page)
    generated = page.read_text()
    page.write_text(generated.replace("+0.84 [-0.97, +2.64]", "+0.84 [+0.01, +2.64]"))
    assert update_page(page, check=True) is True
    assert "+0.01" in page.read_text()  # check leaves the page as it is
    result = CliRunner().invoke(app, ["study", "--pages", str(page), "--check"])
    assert result.exit_code == 1 and f"out of date: {page}" in result.output
    assert update_page(page) is True and page.read_text() == generated


def test_a_record_edited_by_hand_changes_the_table(tmp_path):
    records = tmp_path / "records"
    shutil.copytree(RECORDS / "fashion_mnist_depth", records / "fashion_mnist_depth")
    page = _page(tmp_path, records)
    update_page(page)
    summary = records / "fashion_mnist_depth" / "runs" / "name=resnet110_cifar__seed=2"
    data = json.loads((summary / "summary.json").read_text())
    (summary / "summary.json").write_text(json.dumps(data | {"final_top1": 93.61}))
    assert update_page(page, check=True) is True
    update_page(page)
    assert "+0.29 / +0.56 / +0.66 |" in page.read_text()


def test_bad_markers_say_what_is_wrong(tmp_path):
    page = _page(tmp_path, RECORDS, body="<!-- senet:table cells x -->\n")
    with pytest.raises(
        GridError, match=r"2 `<!-- senet:table \.\.\. -->` marker\(s\) but 1 closing"
    ):
        update_page(page)
    with pytest.raises(GridError, match="table kind 'means' is not one of pairs, cells"):
        parse_spec("means folder")
    with pytest.raises(GridError, match="table options are earlier, twins, against"):
        parse_spec("pairs folder twin=other")
    with pytest.raises(GridError, match="gates tables take one source"):
        parse_spec("gates a + b")
    page.write_text("<!-- senet:table cells absent_folder -->\n<!-- /senet:table -->\n")
    result = CliRunner().invoke(app, ["study", "--pages", str(page)])
    assert result.exit_code == 2 and "absent_folder has no grid.yaml" in result.stderr
