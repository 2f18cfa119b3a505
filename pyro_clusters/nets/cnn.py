"""Convolutional networks on KDE images.

After Ho et al. 2019 (section 3.2), Kodi Ramanah, Wojtak & Arendse 2021 and Ho et al. 2022.

``KDECNN2D`` is the CNN2D of Ho et al. 2019 (Fig. 4): a first convolution with 24 filters of shape
5 x 48 that spans the whole R axis and slides along v (stride 1, 'same' padding), a second
1D convolution, max pooling, dropout and three dense layers, ReLU throughout. ``KDECNN3D`` is a
small 3D CNN for {x, y, v} voxel images in the spirit of Kodi Ramanah, Wojtak & Arendse 2021
(three conv + pool stages, global average pooling, dense layers). Both end in ``n_out`` linear
outputs: one for a regression (``cnn_kde_slice``), two (mu, log sigma) for the Gaussian head of
the MC-dropout CNN (Ho et al. 2022, Methods). Dropout sits between all layers of the 2D CNN
(Ho et al. 2022, Fig. 1: "dropout connections exist in between all layers"), before every dense
layer of the 3D one.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["KDECNN2D", "KDECNN3D", "make_cnn"]


def _head(n_in: int, hidden: tuple[int, ...], n_out: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Dropout(dropout), nn.Linear(n_in, h), nn.ReLU()]
        n_in = h
    layers += [nn.Dropout(dropout), nn.Linear(n_in, n_out)]
    return nn.Sequential(*layers)


class KDECNN2D(nn.Module):
    """CNN2D of Ho et al. 2019 on (B, bins_v, bins_R) images.

    Args:
        bins: grid points per axis (48).
        n_out: outputs.
        filters: feature maps of both convolutions (24).
        hidden: dense layer widths.
        dropout: dropout probability.
    """

    def __init__(self, bins: int = 48, n_out: int = 1, filters: int = 24,
                 hidden: tuple[int, ...] = (128, 64), dropout: float = 0.2):
        super().__init__()
        self.conv1 = nn.Conv2d(1, filters, kernel_size=(5, bins), padding=(2, 0))
        self.conv2 = nn.Conv1d(filters, filters, kernel_size=5, padding=2)
        self.pool = nn.MaxPool1d(2)
        self.drop = nn.Dropout(dropout)
        self.head = _head(filters * (bins // 2), hidden, n_out, dropout)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """(B, bins, bins) images -> (B, n_out)."""
        h = self.drop(torch.relu(self.conv1(img[:, None])).squeeze(-1))  # (B, filters, v)
        h = self.pool(torch.relu(self.conv2(h)))
        return self.head(h.flatten(1))


class KDECNN3D(nn.Module):
    """3D CNN on (B, bins, bins, bins) voxel images.

    Args:
        bins: grid points per axis.
        n_out: outputs.
        channels: channels of the three convolution stages.
        hidden: dense layer widths.
        dropout: dropout probability.
    """

    def __init__(self, bins: int = 24, n_out: int = 1, channels: tuple[int, ...] = (8, 16, 32),
                 hidden: tuple[int, ...] = (64,), dropout: float = 0.2):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for c in channels:
            layers += [nn.Conv3d(c_in, c, 3, padding=1), nn.ReLU(), nn.MaxPool3d(2)]
            c_in = c
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool3d(1))
        self.head = _head(c_in, hidden, n_out, dropout)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """(B, bins, bins, bins) images -> (B, n_out)."""
        return self.head(self.features(img[:, None]).flatten(1))


def make_cnn(kind: str, bins: int, n_out: int, dropout: float) -> nn.Module:
    """The CNN for ``kind`` = "2d" or "3d" images."""
    if kind == "2d":
        return KDECNN2D(bins, n_out, dropout=dropout)
    return KDECNN3D(bins, n_out, dropout=dropout)
