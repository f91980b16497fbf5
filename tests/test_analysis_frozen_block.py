"""A frozen SE block (ConstantGate) inside a real residual block, whose add the gate fuses."""

import torch

import senet
from senet.analysis import ConstantGate


def test_constant_gate_stands_in_for_a_constant_se_block_in_a_resnet():
    torch.manual_seed(0)
    model = senet.create_model("se_resnet20_cifar", num_classes=10, in_chans=1).eval()
    se = model.get_submodule("layer1.0.attn")
    with torch.no_grad():  # excitation output 0 -> sigmoid gives the constant gate 0.5
        se.fc2.weight.zero_()
        se.fc2.bias.zero_()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        expected = model(x)
        model.set_submodule("layer1.0.attn", ConstantGate(torch.full((16,), 0.5)))
        frozen = model(x)
    torch.testing.assert_close(frozen, expected, rtol=1e-5, atol=1e-5)


def test_constant_gate_adds_the_residual_it_is_handed():
    gate = ConstantGate(torch.tensor([0.0, 0.5, 1.0]))
    x, residual = torch.ones(1, 3, 1, 1), torch.full((1, 3, 1, 1), 2.0)
    assert gate(x, residual).flatten().tolist() == [2.0, 2.5, 3.0]
