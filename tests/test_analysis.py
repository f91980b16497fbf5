"""Gate analysis on models whose gates are forced to known values."""

import json
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torchvision.ops import SqueezeExcitation

from senet.analysis import (
    BlockGates,
    ConstantGate,
    collect_gates,
    plot_class_gates,
    plot_specificity,
    saturation_report,
    saturation_summary,
)
from senet.layers import CBAM, ECA, SqueezeExcite

K = 3  # classes == channels in the toy model


def forced_se(weight_scale: float) -> SqueezeExcite:
    """SE with identity FCs: gate_c = sigmoid(weight_scale * relu(mean_c))."""
    se = SqueezeExcite(K, hidden_channels=K)
    with torch.no_grad():
        se.fc1.weight.copy_(torch.eye(K)[:, :, None, None])
        se.fc2.weight.copy_(weight_scale * torch.eye(K)[:, :, None, None])
        se.fc1.bias.zero_()
        se.fc2.bias.zero_()
    return se


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.early = forced_se(0.0)  # gate fixed at sigmoid(0) = 0.5 for every image
        self.late = forced_se(4.0)  # gate depends on which channel is lit, i.e. on the class

    def forward(self, x):
        return self.late(self.early(x)).mean((2, 3))


def labelled_batches(n_per_class: int = 4):
    labels = torch.arange(K).repeat(n_per_class)
    images = torch.zeros(len(labels), K, 5, 5)
    images[torch.arange(len(labels)), labels] = 1.0  # class j lights channel j
    return [(images[i : i + 5], labels[i : i + 5]) for i in range(0, len(labels), 5)]


def test_forced_gates_are_reported_exactly():
    stats = collect_gates(Toy(), labelled_batches(), num_classes=K)
    early, late = stats.blocks
    assert (early.name, late.name) == ("early", "late")
    torch.testing.assert_close(early.class_mean(), torch.full((K, K), 0.5, dtype=torch.float64))
    assert early.specificity() == 0.0
    # Late gate: sigmoid(4 * 0.5) on the lit channel, sigmoid(0) elsewhere, the same within a class.
    lit = 1 / (1 + math.exp(-2.0))
    expected = torch.full((K, K), 0.5, dtype=torch.float64)
    expected.fill_diagonal_(lit)
    torch.testing.assert_close(late.class_mean(), expected)
    torch.testing.assert_close(late.class_std(), torch.zeros(K, K, dtype=torch.float64))
    assert late.specificity() == pytest.approx(1.0)
    assert late.count.tolist() == [4.0, 4.0, 4.0]
    overall_std = (lit - 0.5) * math.sqrt(2 / 9)  # one lit image in three per channel
    torch.testing.assert_close(late.std(), torch.full((K,), overall_std, dtype=torch.float64))


def test_specificity_is_the_between_class_share_of_variance():
    block = BlockGates("b", channels=1, num_classes=2)
    block.add(torch.tensor([[0.2], [0.4], [0.6], [0.8]]), torch.tensor([0, 0, 1, 1]))
    # SS_between = 2 * 0.2^2 * 2 = 0.16; SS_total = 0.09 + 0.01 + 0.01 + 0.09 = 0.2.
    assert block.specificity() == pytest.approx(0.8)


def test_saturation_report_replaces_constant_gates():
    model = Toy()
    batches = labelled_batches()
    stats = collect_gates(model, batches, num_classes=K)

    def top1(m):
        correct = sum((m(x).argmax(1) == y).sum().item() for x, y in batches)
        return 100.0 * correct / sum(len(y) for _, y in batches)

    report = saturation_report(model, stats, top1, threshold=0.02)
    assert report["replaced"] == ["early"]
    assert report["params_saved"] == 2 * (K * K + K)
    assert report["top1_before"] == report["top1_after"] == 100.0
    assert [b["saturated"] for b in report["blocks"]] == [True, False]
    assert isinstance(model.early, SqueezeExcite)  # the original model is untouched
    json.dumps(report)


class BiasedToy(Toy):
    """Toy plus a fixed logit of 0.4 for class 2: a lit channel beats it only while the late
    gate, which is high on the lit channel alone, still tells the classes apart."""

    BIAS = torch.tensor([0.0, 0.0, 0.4])

    def forward(self, x):
        return super().forward(x) + self.BIAS


def test_top1_after_is_the_frozen_models_score():
    model = BiasedToy()
    batches = labelled_batches()
    stats = collect_gates(model, batches, num_classes=K)

    def top1(m):
        correct = sum((m(x).argmax(1) == y).sum().item() for x, y in batches)
        return 100.0 * correct / sum(len(y) for _, y in batches)

    # A threshold above every spread freezes both blocks, the late one at its mean over classes.
    report = saturation_report(model, stats, top1, threshold=1.0)
    assert report["replaced"] == ["early", "late"]
    # Class j lights channel j: it reaches the head as 0.5 (early gate) * late gate of channel j.
    frozen_gate = stats.block("late").mean().float()
    logits = torch.diag(0.5 * frozen_gate) + BiasedToy.BIAS
    expected = 100.0 * (logits.argmax(1) == torch.arange(K)).double().mean().item()
    assert expected < 100.0  # freezing the late gate does change the answers
    assert report["top1_before"] == 100.0
    assert report["top1_after"] == pytest.approx(expected)


def test_constant_gate_scales_channels():
    gate = ConstantGate(torch.tensor([0.0, 0.5, 1.0]))
    x = torch.ones(1, 3, 2, 2)
    assert gate(x)[0, :, 0, 0].tolist() == [0.0, 0.5, 1.0]


def test_cbam_channel_gate_is_analysed():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), CBAM(8, 2))
    stats = collect_gates(
        model, [(torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 0, 1]))], num_classes=2
    )
    assert [b.name for b in stats.blocks] == ["1"] and stats.blocks[0].channels == 8


def test_dead_hidden_units_are_counted():
    model = Toy()
    with torch.no_grad():
        model.late.fc1.weight[0].neg_()  # unit 0 sees -mean_0 <= 0 for every image: never fires
    stats = collect_gates(model, labelled_batches(), num_classes=K)
    early, late = stats.blocks
    assert (early.hidden.units, early.hidden.dead()) == (K, 0)  # each unit fires for its class
    assert (late.hidden.units, late.hidden.dead()) == (K, 1)
    # The early gate halves every channel, so a lit channel reaches the late block as 0.5.
    torch.testing.assert_close(late.hidden.high, torch.tensor([0.0, 0.5, 0.5], dtype=torch.float64))
    torch.testing.assert_close(late.hidden.low, torch.zeros(K, dtype=torch.float64))
    assert [b["dead_units"] for b in stats.to_dict()["blocks"]] == [0, 1]


def test_a_block_with_no_live_hidden_unit_is_named_in_the_summary():
    model = Toy()
    with torch.no_grad():
        model.late.fc1.weight.neg_()  # no unit of the late block ever fires: its gate is fixed
    batches = labelled_batches()
    stats = collect_gates(model, batches, num_classes=K)
    report = saturation_report(model, stats, lambda m: 100.0, threshold=0.02)
    assert report["replaced"] == ["early", "late"]
    assert [(b["hidden_units"], b["dead_units"]) for b in report["blocks"]] == [(K, 0), (K, K)]
    line = saturation_summary(SimpleNamespace(saturation=report))
    assert line.endswith("; 1 with every hidden unit dead (late)")


def test_hidden_units_of_other_layouts():
    batch = [(torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 0, 1]))]
    cbam = collect_gates(nn.Sequential(nn.Conv2d(3, 8, 3), CBAM(8, 2)), batch, num_classes=2)
    assert cbam.blocks[0].hidden.units == 4  # its MLP's hidden layer, fed twice per image
    # torchvision's SqueezeExcitation names its hidden activation ``activation``.
    tv_se = SqueezeExcitation(8, 2)
    tv = collect_gates(nn.Sequential(nn.Conv2d(3, 8, 3), tv_se), batch, num_classes=2)
    assert tv.blocks[0].hidden.units == 2
    eca = collect_gates(nn.Sequential(nn.Conv2d(3, 8, 3), ECA(8)), batch, num_classes=2)
    assert eca.blocks[0].hidden is None  # a 1-D conv, no hidden layer
    assert eca.to_dict()["blocks"][0]["dead_units"] is None


def test_model_without_attention_is_refused():
    with pytest.raises(ValueError, match="no attention module with a channel gate"):
        collect_gates(nn.Conv2d(3, 3, 1), labelled_batches(), num_classes=K)


def test_plots_and_json(tmp_path):
    stats = collect_gates(Toy(), labelled_batches(), num_classes=K, class_names=["a", "b", "c"])
    for path in (
        plot_class_gates(stats, tmp_path / "gates.png"),
        plot_specificity(stats, tmp_path / "spec.png"),
    ):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads(json.dumps(stats.to_dict()))
    assert [b["specificity"] for b in summary["blocks"]] == pytest.approx([0.0, 1.0])
    assert set(summary["blocks"][1]["class_mean"]) == {"a", "b", "c"}
