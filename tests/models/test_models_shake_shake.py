"""Shake-Shake: random mixing in training (forward alpha, backward beta), the mean at eval; and
the Table 4 recipe's Cutout and config."""

from pathlib import Path

import pytest
import torch

import senet
from senet.config import load_config
from senet.data import create_dataset
from senet.data.transforms import cutout
from senet.models.shake_shake import shake

ROOT = Path(__file__).resolve().parents[2]


def test_eval_mixes_the_branches_by_their_mean():
    b1, b2 = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    torch.testing.assert_close(shake(b1, b2, training=False), (b1 + b2) / 2, rtol=0, atol=0)


def test_training_mixes_per_image_with_alpha_and_backpropagates_beta():
    torch.manual_seed(0)
    b1 = torch.randn(4, 2, 3, 3, requires_grad=True)
    b2 = torch.randn(4, 2, 3, 3, requires_grad=True)
    out = shake(b1, b2, training=True)
    # Forward: out = alpha * b1 + (1 - alpha) * b2 with one alpha per image, in [0, 1].
    alpha = ((out - b2) / (b1 - b2)).detach()
    per_image = alpha.flatten(1)
    torch.testing.assert_close(per_image, per_image[:, :1].expand_as(per_image))
    assert ((per_image >= 0) & (per_image <= 1)).all()
    out.sum().backward()
    # Backward: b1 gets beta, b2 gets 1 - beta; beta is drawn independently of alpha.
    beta = b1.grad.flatten(1)[:, 0]
    torch.testing.assert_close(b1.grad + b2.grad, torch.ones_like(b1.grad))
    assert not torch.allclose(beta, per_image[:, 0])


def test_model_is_random_in_training_and_deterministic_at_eval():
    torch.manual_seed(0)
    model = senet.create_model("se_shake_shake26_2x96d_cifar", base_width=8, depth=8)
    x = torch.randn(2, 3, 16, 16)
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))
        model.eval()
        torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)


def test_cutout_zeroes_one_clipped_square():
    torch.manual_seed(0)
    sizes = set()
    for _ in range(50):
        x = cutout(torch.ones(3, 32, 32), 16)
        zeros = (x == 0).all(0)
        rows, cols = zeros.any(1).sum().item(), zeros.any(0).sum().item()
        assert zeros.sum().item() == rows * cols  # one rectangle, the same in every channel
        assert 8 <= rows <= 16 and 8 <= cols <= 16  # clipped at the border, never smaller than half
        sizes.add((rows, cols))
    assert (16, 16) in sizes and len(sizes) > 1


def test_data_cutout_reaches_the_training_images_only():
    train, _ = create_dataset("synthetic", "train", size=8, augment=True, cutout=8)
    assert train.cutout == 8
    torch.manual_seed(0)
    x, _ = train[0]
    assert ((x == 0).all(0)).sum() >= 16  # at least a 4x4 corner of the 8x8 square
    val, _ = create_dataset("synthetic", "val", size=8)
    assert val.cutout == 0


def test_cutout_without_augmentation_or_on_image_folders_is_refused():
    with pytest.raises(ValueError, match="augment"):
        create_dataset("synthetic", "train", size=8, augment=False, cutout=8)
    with pytest.raises(ValueError, match="cutout must be"):
        create_dataset("synthetic", "train", size=8, augment=True, cutout=-1)


def test_table_4_recipe_loads():
    config = load_config(ROOT / "senet" / "configs" / "cifar10_se_shake_shake26.yaml")
    assert config.model.name == "se_shake_shake26_2x96d_cifar"
    assert config.data.cutout == 16 and config.data.name == "cifar10"
    assert (config.optim.lr, config.schedule.name, config.train.epochs) == (0.2, "cosine", 1800)
    assert config.data.batch_size == 128
