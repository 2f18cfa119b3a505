r"""A set encoder that learns the density of projected phase space: soft histograms + a CNN.

The CNN of Ho et al. 2019 (arXiv:1902.05950) sees each cluster as a normalised KDE image of its
{R_proj, v_los} distribution and is hard to beat; a Deep Sets MLP with mean pooling can in
principle represent such a density (the mean of per-galaxy features is a kernel mean
embedding) but has to learn localised bumps from smooth units first. This encoder gives the set
network that inductive bias directly and stays a set function of the galaxies:

    H_c[j, k] = (1 / n) sum_{i valid} K_r((r_i - a_j) / w_r) K_v((u_i - b_k) / w_v),

a soft two-dimensional histogram on a fixed grid (a_j, b_k) with Gaussian kernels K of
learnable widths w, computed as one batched matrix product per channel (separable kernels, as
:mod:`pyro_clusters.features.kde`). Two channels: (standardised R_proj, standardised v_los) --
the physical-units image of the CNN -- and (R_proj, v_los) each in the cluster's own units
(centred on the cluster mean and divided by its own standard deviation), the shape of the
phase-space distribution whatever its scale. The average over valid galaxies keeps the galaxy
count out (no richness), padding never enters it and the result is invariant to permutations.

A small CNN reads the two-channel image; its output and the context of the hierarchical Deep
Sets encoder (:class:`~pyro_clusters.nets.deepsets.DeepSetsEncoder`, which also sees the angle
psi, the global features and any extra galaxy columns) are joined by an MLP into the context.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from pyro_clusters.nets.deepsets import DeepSetsEncoder, cluster_units, mlp

__all__ = ["HistogramSetEncoder", "SoftHistogram", "phase_space_ranges"]


def phase_space_ranges(r: np.ndarray, v: np.ndarray, cluster: np.ndarray,
                       q: float = 0.5) -> np.ndarray:
    """Histogram grid ranges covering the training galaxies (the q-th to 100-q-th percentile).

    Args:
        r: standardised R_proj of every training galaxy, (n_galaxies,).
        v: standardised v_los of every training galaxy, (n_galaxies,).
        cluster: each galaxy's cluster index, (n_galaxies,).
        q: percentile cut [per cent] at each end.

    Returns:
        (2, 2, 2): channel (standardised, cluster units) x axis (R, v) x [lo, hi].
    """
    out = np.empty((2, 2, 2))
    n = np.bincount(cluster).astype(np.float64)
    for a, x in enumerate((r, v)):
        mean = np.bincount(cluster, x) / np.maximum(n, 1)
        d = x - mean[cluster]
        var = np.bincount(cluster, d * d) / np.maximum(n, 1)
        units = d / np.sqrt(var[cluster] + 1e-4)
        for c, y in enumerate((x, units)):
            out[c, a] = np.percentile(y, [q, 100 - q])
    return out


class SoftHistogram(nn.Module):
    """Normalised soft 2D histograms of two per-galaxy coordinates.

    Args:
        bins: grid points per axis.
        channels: independent histograms (each with its own grid and learnable widths).
        ranges: (channels, 2, 2) grid range [lo, hi] of each channel's two coordinates
            (default [-3, 3]); a buffer, so a saved network restores its own grid.
    """

    def __init__(self, bins: int = 16, channels: int = 2, ranges: torch.Tensor | None = None):
        super().__init__()
        if ranges is None:
            ranges = torch.tensor([-3.0, 3.0]).expand(channels, 2, 2)
        ranges = torch.as_tensor(ranges, dtype=torch.float32)
        t = torch.linspace(0.0, 1.0, bins)
        self.register_buffer("grid", ranges[..., :1] + (ranges[..., 1:] - ranges[..., :1]) * t)
        step = (ranges[..., 1] - ranges[..., 0]) / (bins - 1)  # (C, 2)
        # Gaussian widths per channel and axis, learned; they start at one grid step
        self.log_width = nn.Parameter(torch.log(step))

    def forward(self, coords: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Histograms (B, C, bins, bins) of coords (B, C, N, 2) over valid galaxies (B, N)."""
        w = torch.exp(self.log_width)  # (C, 2)
        m = mask.to(coords.dtype)[:, None, :, None]  # (B, 1, N, 1)
        # distances in kernel widths: scale the (small) coordinates and grid, not their
        # (B, C, N, 2, bins) differences; the kernels' normalisation 1 / (2 pi w_R w_v) is one
        # number per channel, applied to the (bins, bins) image
        d = (coords / w[:, None])[..., None] - (self.grid / w[..., None])[None, :, None]
        k = torch.exp(-0.5 * d.square())  # (B, C, N, 2, bins)
        kr, kv = k[..., 0, :] * m, k[..., 1, :]  # (B, C, N, bins)
        count = mask.to(coords.dtype).sum(1).clamp_min(1.0)[:, None, None, None]
        norm = 1.0 / (2 * math.pi * w.prod(-1))[None, :, None, None]  # (1, C, 1, 1)
        return kr.transpose(-1, -2) @ kv * (norm / count)  # (B, C, bins, bins)


class HistogramSetEncoder(nn.Module):
    """Soft phase-space histograms + CNN, joined with a Deep Sets context (module docstring).

    Args:
        galaxy_features: F, features per galaxy; columns ``v_col`` and ``r_col`` are the
            standardised v_los and R_proj.
        global_features: G.
        hidden: the Deep Sets encoder's hidden width.
        context: the Deep Sets encoder's context width.
        blocks: the Deep Sets encoder's depth.
        units: the Deep Sets encoder also sees R and v in cluster units.
        bins: histogram grid points per axis.
        channels: CNN feature maps.
        v_col: column of v_los among the galaxy features.
        r_col: column of R_proj among the galaxy features.
        ranges: (2, 2, 2) histogram grid ranges: channel (standardised, cluster units) x
            axis (R, v) x [lo, hi]; :func:`phase_space_ranges` of the training galaxies.
    """

    def __init__(self, galaxy_features: int, global_features: int, hidden: int = 64,
                 context: int = 32, blocks: int = 3, bins: int = 16, channels: int = 16,
                 v_col: int = 0, r_col: int = 1, units: bool = False,
                 ranges: torch.Tensor | None = None):
        super().__init__()
        self.v_col, self.r_col = v_col, r_col
        self.deepsets = DeepSetsEncoder(galaxy_features, global_features, hidden, context,
                                        blocks, units, v_col, r_col)
        self.histogram = SoftHistogram(bins, channels=2, ranges=ranges)
        c = channels
        self.cnn = nn.Sequential(
            nn.Conv2d(2, c, 3, padding=1), nn.SiLU(),
            nn.Conv2d(c, 2 * c, 3, padding=1, stride=2), nn.SiLU(),
            nn.Conv2d(2 * c, 2 * c, 3, padding=1, stride=2), nn.SiLU(),
            nn.Flatten())
        n_flat = 2 * c * math.ceil(math.ceil(bins / 2) / 2) ** 2
        self.join = mlp([n_flat + context, hidden, context])
        self.context_dim, self.latent_dim = context, hidden

    def image(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The two-channel phase-space image (B, 2, bins, bins) of a padded batch."""
        rv = x[..., [self.r_col, self.v_col]]  # (B, N, 2): standardised R, v
        m = mask.unsqueeze(-1).to(x.dtype)
        coords = torch.stack([rv, cluster_units(rv, m)], dim=1)  # (B, 2, N, 2)
        return self.histogram(coords, mask)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(context (B, C), per-galaxy latents (B, N, H)) as the Deep Sets encoder's."""
        c, h = self.deepsets(x, mask, g)
        img = self.cnn(self.image(x, mask))
        return self.join(torch.cat([img, c], dim=-1)), h
