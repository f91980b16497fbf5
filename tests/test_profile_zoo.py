"""senet.profile against the model zoo's golden complexity table (runs once the zoo is merged)."""

from __future__ import annotations

import pytest
import torch

from senet.profile import profile

complexity = pytest.importorskip(
    "senet.models.complexity", reason="senet's model zoo is not on this checkout yet"
)
GOLDEN = complexity.load_golden()


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_profile_reproduces_the_golden_table(name):
    from senet import create_model

    row = GOLDEN[name]
    with torch.device("meta"):  # no weights are allocated: the profiler only needs shapes
        model = create_model(name)
    r = profile(model, tuple(row["input_size"]))
    assert r.counted_on == "meta"
    assert (r.params, r.conv_fc_macs) == (row["params"], row["conv_fc_macs"])
    if "macs" in row:  # the paper-convention column, once stored
        assert r.macs == row["macs"]
    assert (r.attention_macs > 0) == any(m.attention for m in r.modules)
