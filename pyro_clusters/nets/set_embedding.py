r"""The masked Deep Sets encoder on sbi's fixed-shape x, for sbi's own estimators.

sbi hands networks the simulator's output as one tensor x of shape (B, N_max, 4) =
[x_proj, y_proj, v_los, valid] with zero padding (:mod:`pyro_clusters.simulator.sbi`). This
module computes the features of :mod:`pyro_clusters.features.galaxies` with their torch twin
:func:`~pyro_clusters.features.galaxies.set_features` (v_los / 1000, R_proj, folded angle psi /
(pi/2) to the second-moment ellipse's major axis; ellipticity as the global feature; tested
against the numpy version), standardises them with constants from training x, and runs the
:class:`~pyro_clusters.nets.deepsets.DeepSetsEncoder` (masked mean pooling).

sbi's built-in ``PermutationInvariantEmbedding`` is not used: it counts the set size from NaN
entries as ``isnan(x).sum(1).reshape(-1)[:B]``, which for more than one feature per element
interleaves the counts of different clusters and features (demonstrated in
tests/test_sbi_npe.py), and it needs NaN padding that sbi's training drops silently.
"""

from __future__ import annotations

import torch
from torch import nn

from pyro_clusters.features.galaxies import set_features
from pyro_clusters.nets.deepsets import DeepSetsEncoder
from pyro_clusters.nets.histogram import HistogramSetEncoder, phase_space_ranges

__all__ = ["DeepSetsEmbedding"]


class DeepSetsEmbedding(nn.Module):
    """sbi embedding net: x (B, N, 4) -> context (B, C) through masked Deep Sets.

    Args:
        x_train: training x, (n, N, 4), for the feature standardisation constants (and the
            histogram grid).
        hidden: width of the hidden layers.
        context: output width.
        blocks: Deep Sets blocks (Wang, Thiele & Ho 2026: 3).
        encoder: ``"deepsets"`` or ``"histogram"``
            (:class:`~pyro_clusters.nets.histogram.HistogramSetEncoder`), as ``npe_deepsets``.
        bins: histogram grid points per axis.
        units: the Deep Sets encoder also sees R and v in cluster units.
    """

    def __init__(self, x_train: torch.Tensor, hidden: int = 64, context: int = 32,
                 blocks: int = 3, encoder: str = "deepsets", bins: int = 32,
                 units: bool = False):
        super().__init__()
        with torch.no_grad():
            gal, mask, glob = set_features(x_train)
            sel = gal[mask]
            self.register_buffer("gal_mean", sel.mean(0))
            self.register_buffer("gal_std", sel.std(0) + 1e-6)
            self.register_buffer("glob_mean", glob.mean(0))
            self.register_buffer("glob_std", glob.std(0) + 1e-6)
        if encoder == "histogram":
            z = ((sel - self.gal_mean) / self.gal_std).double().numpy()
            cluster = torch.nonzero(mask)[:, 0].numpy()
            ranges = phase_space_ranges(z[:, 1], z[:, 0], cluster)
            self.encoder = HistogramSetEncoder(3, 1, hidden, context, blocks, bins,
                                               units=units, ranges=torch.as_tensor(ranges))
        else:
            self.encoder = DeepSetsEncoder(3, 1, hidden, context, blocks, units)
        self.output_dim = context

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Context vectors (B, C)."""
        gal, mask, glob = set_features(x)
        gal = (gal - self.gal_mean) / self.gal_std
        glob = (glob - self.glob_mean) / self.glob_std
        return self.encoder(gal, mask, glob)[0]
