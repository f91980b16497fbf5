"""Every generated number on a results page is what the committed records give.

The tables between `<!-- senet:table ... -->` markers in docs/results/ and the summary the demo
ships (senet/demo_summary.json) are rebuilt here from experiments/*/records. A table or summary
edited by hand, or a record changed without regenerating them (`senet study --pages
docs/results/*.md`, and the --summary command in experiments/fashion_mnist/README.md), fails.
Cells whose runs were not kept come from experiments/fashion_mnist/not_kept and are marked.
"""

import json
from pathlib import Path

import pytest

from senet.ablation.pages import update_page
from senet.ablation.study import build_study, demo_summary, load_study_grid, read_earlier
from senet.demo import STUDY_SUMMARY

REPO = Path(__file__).resolve().parents[1]
PAGES = sorted((REPO / "docs" / "results").glob("*.md"))
STUDY = REPO / "experiments" / "fashion_mnist"
RECORD = STUDY / "records" / "fashion_mnist_depth"
NOT_KEPT = STUDY / "not_kept" / "fashion_mnist_depth.json"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_each_results_page_has_the_tables_its_records_give(page):
    assert not update_page(page, check=True), (
        f"{page.relative_to(REPO)}: a generated table differs from its records; "
        "run `senet study --pages docs/results/*.md`"
    )


def test_the_depth_page_generates_its_tables_from_the_records():
    text = (REPO / "docs" / "results" / "fashion_mnist.md").read_text()
    assert text.count("<!-- senet:table ") >= 4
    # The page's first table is generated: the question, then the answer's table.
    assert text.splitlines()[2].startswith("<!-- senet:table pairs ")


def test_the_demo_summary_is_what_the_records_give():
    study = build_study(load_study_grid(RECORD), RECORD, earlier=read_earlier(NOT_KEPT))
    assert json.loads(STUDY_SUMMARY.read_text()) == demo_summary(study), (
        "senet/demo_summary.json differs from the records: regenerate it with the --summary "
        "command in experiments/fashion_mnist/README.md"
    )


def test_recorded_cells_come_from_the_records_and_only_lost_runs_from_the_kept_summary():
    alone = build_study(load_study_grid(RECORD), RECORD)
    recorded = {c["label"] for c in alone["cells"] if c["top1"]}
    assert recorded == {"name=resnet110_cifar", "name=se_resnet110_cifar"}
    assert all(len(c["top1"]) == 3 for c in alone["cells"] if c["label"] in recorded)
    # The kept summary holds only cells with no recorded run: nothing there can shadow a record.
    not_kept = {c["label"] for c in read_earlier(NOT_KEPT)["cells"]}
    assert not_kept and not not_kept & recorded
    both = build_study(load_study_grid(RECORD), RECORD, earlier=read_earlier(NOT_KEPT))
    assert set(both["from_earlier"]) == not_kept
    assert [c for c in both["cells"] if c["label"] in recorded] == [
        c for c in alone["cells"] if c["label"] in recorded
    ]
