"""The golden complexity table against the models and against the paper (REFERENCE.md)."""

import pytest
import torch

import senet
from senet.models.complexity import load_golden, measure

GOLDEN = load_golden()
IMAGENET = [n for n in GOLDEN if not n.endswith("_cifar")]

# Paper Table 2: GFLOPs (= multiply-adds) at 224x224, without and with SE.
TABLE_2 = {
    "resnet50": 3.86, "se_resnet50": 3.87,
    "resnet101": 7.58, "se_resnet101": 7.60,
    "resnet152": 11.30, "se_resnet152": 11.32,
    "resnext50_32x4d": 4.24, "se_resnext50_32x4d": 4.25,
    "resnext101_32x4d": 7.99, "se_resnext101_32x4d": 8.00,
}  # fmt: skip


def test_table_covers_the_registry():
    assert sorted(GOLDEN) == senet.list_models()
    # Inception-ResNet-v2 is counted at its 299x299 input (paper Table 2), the others at 224.
    for n in IMAGENET:
        side = 299 if "inception_resnet_v2" in n else 224
        assert GOLDEN[n]["input_size"] == [3, side, side], n
    assert all(GOLDEN[n]["input_size"] == [3, 32, 32] for n in GOLDEN if n.endswith("_cifar"))


# Meta-device builds cost no memory and little time, so every model is re-measured.
@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_models_match_the_stored_table(name):
    now = measure(name)
    stored = {k: GOLDEN[name][k] for k in now}
    assert now == stored, "model changed: rerun `senet models --write`"


def test_se_resnet50_matches_the_caffe_ports_exactly():
    row = GOLDEN["se_resnet50"]
    assert row["params"] == 28_088_024
    assert round(row["conv_fc_macs"] / 1e9, 4) == 3.8605
    assert round(GOLDEN["resnet50"]["params"] / 1e6, 2) == 25.56
    assert round(GOLDEN["resnet50"]["conv_fc_macs"] / 1e9, 2) == 3.86  # paper: 3.86
    assert round(GOLDEN["senet154"]["params"] / 1e6, 2) == 115.09  # Cadene's senet154


@pytest.mark.parametrize("name", TABLE_2)
def test_table_2_gflops_to_the_papers_precision(name):
    # The paper prints 0.01 G (0.13% of 3.86 G) and counts the deeper and grouped nets a little
    # higher than their layer lists give (ResNeXt-101 0.25%): 0.3% holds every row. The SE
    # blocks' own cost (0.26-0.35%) is checked exactly below, not by this tolerance.
    macs = GOLDEN[name]["macs"] / 1e9
    assert abs(macs / TABLE_2[name] - 1) < 0.003, (name, macs, TABLE_2[name])


# Output channels and side of every residual block at 224: 56, 28, 14, 7 pixels per stage.
DEPTHS = {"resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3), "resnet152": (3, 8, 36, 3),
          "resnext50_32x4d": (3, 4, 6, 3), "resnext101_32x4d": (3, 4, 23, 3)}  # fmt: skip


@pytest.mark.parametrize("base", DEPTHS)
def test_se_row_exceeds_its_base_row_by_the_se_blocks_exactly(base):
    # SE at every block output (C channels, side s): FCs 2*C*C/16 multiply-adds; pool and scale
    # C*s*s each, the ReLU C/16 and the sigmoid C (one op per element). Zero tolerance: dropping
    # even one block's SE fails.
    fc = work = 0
    for stage, blocks in enumerate(DEPTHS[base]):
        c, side = 256 * 2**stage, 56 // 2**stage
        fc += blocks * 2 * c * (c // 16)
        work += blocks * (2 * c * side * side + c // 16 + c)
    se, plain = GOLDEN[f"se_{base}"], GOLDEN[base]
    assert se["conv_fc_macs"] - plain["conv_fc_macs"] == fc
    assert se["macs"] - plain["macs"] == se["attention_macs"] == fc + work
    assert 0.0026 < (fc + work) / plain["macs"] < 0.0036  # the paper's "slight" SE cost


def test_se_resnet50_reaches_3_87_in_the_paper_convention():
    # conv+FC alone gives 3.8605 G, "3.86". The paper's 3.87 also counts the SE block's own work:
    # one op per element for the squeeze (global average pool) and for the scale, C per gate.
    # senet.profile reports that convention as `macs`; here it is counted from the SE inputs.
    with torch.device("meta"):
        model = senet.create_model("se_resnet50").eval()
    shapes = []
    for block in (b for layer in (model.layer1, model.layer2, model.layer3, model.layer4)
                  for b in layer):  # fmt: skip
        block.attn.register_forward_hook(lambda m, args, out: shapes.append(args[0].shape))
    model(torch.zeros(1, 3, 224, 224, device="meta"))
    # Per block: pool and scale (C*H*W each), the sigmoid (C) and the ReLU between the FCs (C/16).
    se_work = sum(2 * s[1] * s[2] * s[3] + s[1] + s[1] // 16 for s in shapes)
    total = GOLDEN["se_resnet50"]["conv_fc_macs"] + se_work
    assert round(total / 1e9, 2) == 3.87
    # The profiler's paper-convention column agrees with this independent count.
    assert GOLDEN["se_resnet50"]["macs"] == total
    assert round(GOLDEN["resnet50"]["macs"] / 1e9, 2) == 3.86
    assert GOLDEN["resnet50"]["macs"] == GOLDEN["resnet50"]["conv_fc_macs"]


def test_senet_models_check_finds_a_changed_model_and_write_stores_it(tmp_path, monkeypatch):
    """`senet models --check` / `--write` on a copy of the table, with a model whose count moved
    (measurement faked: the real one is checked model by model above)."""
    from typer.testing import CliRunner

    from senet.cli import app
    from senet.models import complexity

    golden = tmp_path / "complexity.json"
    golden.write_text(complexity.GOLDEN_PATH.read_text())
    monkeypatch.setattr(complexity, "GOLDEN_PATH", golden)

    def measured(name):
        row = {k: GOLDEN[name][k] for k in complexity.MEASURED}
        return row | {"params": row["params"] + 1} if name == "se_resnet50" else row

    monkeypatch.setattr(complexity, "measure", measured)
    runner = CliRunner()
    result = runner.invoke(app, ["models", "--check"])
    assert result.exit_code == 1
    assert f"se_resnet50: params {GOLDEN['se_resnet50']['params']} -> " in result.output
    assert "1 model(s) differ" in result.output
    assert runner.invoke(app, ["models", "--write"]).exit_code == 0
    stored = load_golden(golden)
    assert stored["se_resnet50"]["params"] == GOLDEN["se_resnet50"]["params"] + 1
    assert stored["se_resnet50"]["paper"] == GOLDEN["se_resnet50"]["paper"]  # kept
    assert {k: v for k, v in stored.items() if k != "se_resnet50"} == {
        k: v for k, v in GOLDEN.items() if k != "se_resnet50"
    }
    result = runner.invoke(app, ["models", "--check"])
    assert result.exit_code == 0 and "every model counts as stored" in result.output
