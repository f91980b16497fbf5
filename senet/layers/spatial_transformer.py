"""Spatial Transformer Network: learn where to look, then resample (Jaderberg et al., 2015)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from senet.layers.validate import check_choice, check_feature_map, check_positive_int

# The affine transform [[1, 0, 0], [0, 1, 0]]: sample the input where it is.
_IDENTITY_THETA = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def default_localization(in_channels: int, pooled_size: int = 3) -> nn.Sequential:
    """A small conv net, (N, C, H, W) -> (N, F); adaptive pooling lets it take any input size."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 8, kernel_size=7, padding=3),
        nn.MaxPool2d(2, ceil_mode=True),
        nn.ReLU(inplace=True),
        nn.Conv2d(8, 10, kernel_size=5, padding=2),
        nn.MaxPool2d(2, ceil_mode=True),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(pooled_size),
        nn.Flatten(),
    )


class SpatialTransformer(nn.Module):
    """Spatial Transformer (Jaderberg et al., 2015): Localisation net, Affine grid, Sampler.

    The localisation net regresses theta (N, 2, 3); its last layer starts at zero weight and the
    identity bias, so at initialisation the module returns its input (up to interpolation).

    Args:
        in_channels: channels of the input (1 for grey images, 3 for RGB).
        localization: a module mapping (N, C, H, W) to (N, loc_features); default: a small conv net.
        loc_features: output width of a custom ``localization`` (needed only with one).
        hidden: width of the FC layer that regresses theta.
        output_size: (H_out, W_out) of the resampled map; default: the input's size.
        mode: passed to ``F.grid_sample``.
        padding_mode: passed to ``F.grid_sample``.
        align_corners: passed to ``F.grid_sample`` and ``F.affine_grid``.
    """

    def __init__(
        self,
        in_channels: int,
        *,
        localization: nn.Module | None = None,
        loc_features: int | None = None,
        hidden: int = 32,
        output_size: tuple[int, int] | None = None,
        mode: str = "bilinear",
        padding_mode: str = "zeros",
        align_corners: bool = False,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.in_channels = check_positive_int(owner, "in_channels", in_channels)
        if localization is None:
            localization, loc_features = default_localization(in_channels), 10 * 3 * 3
        elif loc_features is None:
            raise ValueError(
                f"{owner}: a custom localization needs loc_features (its output width)"
            )
        self.localization = localization
        self.regressor = nn.Sequential(
            nn.Linear(check_positive_int(owner, "loc_features", loc_features), hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, 6),
        )
        nn.init.zeros_(self.regressor[-1].weight)
        with torch.no_grad():
            self.regressor[-1].bias.copy_(torch.tensor(_IDENTITY_THETA))
        self.output_size = tuple(output_size) if output_size is not None else None
        self.mode = check_choice(owner, "mode", mode, ("bilinear", "nearest", "bicubic"))
        self.padding_mode = check_choice(
            owner, "padding_mode", padding_mode, ("zeros", "border", "reflection")
        )
        self.align_corners = align_corners

    def theta(self, x: torch.Tensor) -> torch.Tensor:
        """The affine transforms (N, 2, 3) in normalised [-1, 1] coordinates."""
        check_feature_map(type(self).__name__, self.in_channels, x)
        return self.regressor(self.localization(x)).view(-1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        theta = self.theta(x)
        height, width = self.output_size or x.shape[-2:]
        grid = F.affine_grid(
            theta.to(x.dtype), [x.shape[0], x.shape[1], height, width], self.align_corners
        )
        return F.grid_sample(
            x, grid, self.mode, self.padding_mode, align_corners=self.align_corners
        )
