"""The Spatial Transformer: identity at start, and it learns a known translation."""

import pytest
import torch
import torch.nn.functional as F

from senet.layers import SpatialTransformer


def test_identity_at_initialisation():
    stn = SpatialTransformer(3)
    x = torch.randn(4, 3, 20, 28)
    theta = stn.theta(x)
    torch.testing.assert_close(theta, torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).expand(4, 2, 3))
    # Identity theta samples each pixel centre exactly: only rounding error remains.
    torch.testing.assert_close(stn(x), x, rtol=0, atol=1e-5)


def test_output_size():
    stn = SpatialTransformer(1, output_size=(12, 10))
    assert stn(torch.randn(2, 1, 28, 28)).shape == (2, 1, 12, 10)


def smooth_images(n: int, size: int = 24) -> torch.Tensor:
    # Low-frequency images, so a translation is recoverable from the pixels.
    return F.interpolate(torch.randn(n, 1, 6, 6), size=(size, size), mode="bicubic")


def test_learns_a_known_translation():
    true_shift = torch.tensor([0.3, -0.2])  # (x, y) in normalised coordinates
    true_theta = torch.tensor([[1.0, 0.0, true_shift[0]], [0.0, 1.0, true_shift[1]]])
    stn = SpatialTransformer(1, padding_mode="border")
    optimizer = torch.optim.Adam(stn.parameters(), lr=3e-3)
    for _ in range(300):
        x = smooth_images(16)
        grid = F.affine_grid(true_theta.expand(16, 2, 3), list(x.shape), align_corners=False)
        target = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
        loss = F.mse_loss(stn(x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    learned = stn.theta(smooth_images(64)).mean(0)
    torch.testing.assert_close(learned[:, 2], true_shift, atol=0.05, rtol=0)
    torch.testing.assert_close(learned[:, :2], torch.eye(2), atol=0.1, rtol=0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="needs loc_features"):
        SpatialTransformer(3, localization=torch.nn.Flatten())
    with pytest.raises(
        ValueError, match=r"SpatialTransformer\(channels=3\) got input with 1 channels"
    ):
        SpatialTransformer(3)(torch.randn(1, 1, 8, 8))
