r"""The masked Deep Sets encoder on sbi's fixed-shape x, for sbi's own estimators.

sbi hands networks the simulator's output as one tensor x of shape (B, N_max, 4) =
[x_proj, y_proj, v_los, valid] with zero padding (:mod:`pyro_clusters.simulator.sbi`). This
module computes, in torch and with the validity mask, exactly the features of
:mod:`pyro_clusters.features` (v_los / 1000, R_proj, folded angle to the second-moment
ellipse's major axis psi / (pi/2); ellipticity as the global feature; tested against the numpy
version), standardises them with constants from training x, and runs the
:class:`~pyro_clusters.nets.deepsets.DeepSetsEncoder` (masked mean pooling).

sbi's built-in ``PermutationInvariantEmbedding`` is not used: it counts the set size from NaN
entries as ``isnan(x).sum(1).reshape(-1)[:B]``, which for more than one feature per element
interleaves the counts of different clusters and features (shared/STACK.md; demonstrated in
tests/test_sbi_npe.py), and it needs NaN padding that sbi's training drops silently.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pyro_clusters.nets.deepsets import DeepSetsEncoder

__all__ = ["DeepSetsEmbedding", "set_features", "velocity_dispersion_torch"]


def set_features(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Raw features of padded clusters.

    Args:
        x: (B, N, 4) [x_proj, y_proj, v_los, valid] (h^-1 Mpc, h^-1 Mpc, km/s, 0/1).

    Returns:
        galaxy features (B, N, 3) [v_los/1000, R_proj, psi/(pi/2)] (zero at padding),
        mask (B, N) bool, global features (B, 1) [ellipticity].
    """
    mask = x[..., 3] > 0.5
    m = mask.to(x.dtype)
    px, py, v = x[..., 0] * m, x[..., 1] * m, x[..., 2] * m
    ixx, iyy, ixy = (px * px).sum(1), (py * py).sum(1), (px * py).sum(1)
    angle = 0.5 * torch.atan2(2.0 * ixy, ixx - iyy)
    half_trace = 0.5 * (ixx + iyy)
    disc = torch.sqrt((0.5 * (ixx - iyy)) ** 2 + ixy ** 2)
    lam1, lam2 = half_trace + disc, (half_trace - disc).clamp_min(0.0)
    ell = torch.where(lam1 > 0, 1.0 - torch.sqrt(lam2 / lam1.clamp_min(1e-30)),
                      torch.zeros_like(lam1))
    few = m.sum(1) < 2
    angle = torch.where(few, torch.zeros_like(angle), angle)
    ell = torch.where(few, torch.zeros_like(ell), ell)
    theta = torch.atan2(py, px) - angle[:, None]
    psi = torch.abs(torch.atan(torch.tan(theta)))
    feats = torch.stack([v / 1000.0, torch.sqrt(px * px + py * py), psi / (0.5 * math.pi)], -1)
    return feats * m[..., None], mask, ell[:, None]


def velocity_dispersion_torch(x: torch.Tensor) -> torch.Tensor:
    """Unbiased standard deviation of v_los over valid galaxies (papers/001 eq. 6), (B,) km/s."""
    m = (x[..., 3] > 0.5).to(x.dtype)
    n = m.sum(1)
    mean = (x[..., 2] * m).sum(1) / n.clamp_min(1.0)
    var = (((x[..., 2] - mean[:, None]) * m) ** 2).sum(1) / (n - 1.0).clamp_min(1.0)
    return torch.sqrt(var)


class DeepSetsEmbedding(nn.Module):
    """sbi embedding net: x (B, N, 4) -> context (B, C) through masked Deep Sets.

    Args:
        x_train: training x, (n, N, 4), for the feature standardisation constants.
        hidden: width of the hidden layers.
        context: output width.
        blocks: Deep Sets blocks (papers/002: 3).
    """

    def __init__(self, x_train: torch.Tensor, hidden: int = 64, context: int = 32,
                 blocks: int = 3):
        super().__init__()
        with torch.no_grad():
            gal, mask, glob = set_features(x_train)
            sel = gal[mask]
            self.register_buffer("gal_mean", sel.mean(0))
            self.register_buffer("gal_std", sel.std(0) + 1e-6)
            self.register_buffer("glob_mean", glob.mean(0))
            self.register_buffer("glob_std", glob.std(0) + 1e-6)
        self.encoder = DeepSetsEncoder(3, 1, hidden, context, blocks)
        self.output_dim = context

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Context vectors (B, C)."""
        gal, mask, glob = set_features(x)
        gal = (gal - self.gal_mean) / self.gal_std
        glob = (glob - self.glob_mean) / self.glob_std
        return self.encoder(gal, mask, glob)[0]
