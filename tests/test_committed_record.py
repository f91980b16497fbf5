"""The committed study's numbers are what its committed record makes of them.

`docs/results/fashion_mnist.json` is rebuilt by `python -m senet.ablation.study RUNS --earlier
... --record docs/results/records/fashion_mnist_depth` ("What runs next" in the results page).
The cells whose runs are in the record must come out of the record exactly as committed, and the
rest must be adopted whole from the committed JSON: a hand edit of a number, or a record left
behind by a rebuild, fails here.
"""

import json
from pathlib import Path

from senet.ablation.study import build_study, load_study_grid
from senet.demo import STUDY_RESULTS

RECORD = Path(__file__).resolve().parents[1] / "docs/results/records/fashion_mnist_depth"


def test_the_committed_study_is_rebuilt_exactly_from_its_record_and_earlier_cells():
    committed = json.loads(Path(STUDY_RESULTS).read_text())
    rebuilt = build_study(load_study_grid(RECORD), RECORD, earlier=committed)
    recorded = {run.name.split("__seed=")[0] for run in (RECORD / "runs").iterdir()}
    assert recorded, f"{RECORD} holds no runs"
    # The recorded cells come from the record, not from the committed JSON being adopted.
    assert not recorded & set(rebuilt["from_earlier"])
    assert rebuilt == committed
