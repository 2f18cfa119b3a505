"""Line-of-sight velocity dispersions of clusters, in numpy and (for sbi's x) in torch.

sigma_v is the unbiased standard deviation of the line-of-sight velocities of a cluster's
galaxies (Ho et al. 2019, ApJ 887, 25, arXiv:1902.05950, eq. 6); the biweight scale (Beers,
Flynn & Gebhardt 1990, AJ 100, 32) is the robust alternative. The torch twin works on sbi's
padded x = (B, N, 4) and is tested equal to the numpy version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pyro_clusters.data.clusters import ClusterSet

if TYPE_CHECKING:
    import torch

__all__ = ["biweight_dispersion", "velocity_dispersion", "velocity_dispersion_torch"]


def velocity_dispersion(clusters: ClusterSet, mask: np.ndarray | None = None) -> np.ndarray:
    """Unbiased standard deviation of v_los per cluster (Ho et al. 2019 eq. 6) [km/s].

    Vectorised over the ragged set (one pass, no loop over clusters).

    Args:
        clusters: the clusters.
        mask: optional boolean galaxy mask (e.g. true members); galaxies outside it are ignored.

    Returns:
        sigma_v [km/s], shape (n_clusters,); NaN where fewer than two galaxies count.
    """
    v = clusters.galaxies["v_los"].astype(np.float64)
    w = np.ones_like(v) if mask is None else np.asarray(mask, dtype=np.float64)
    idx = clusters.cluster_index()
    # float(): bincount returns integers when there is no galaxy at all
    n = np.bincount(idx, weights=w, minlength=len(clusters)).astype(np.float64)
    s1 = np.bincount(idx, weights=w * v, minlength=len(clusters)).astype(np.float64)
    mean = np.divide(s1, n, out=np.zeros_like(s1), where=n > 0)
    d = v - mean[idx]
    s2 = np.bincount(idx, weights=w * d * d, minlength=len(clusters)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n >= 2, np.sqrt(s2 / (n - 1.0)), np.nan)


def velocity_dispersion_torch(x: torch.Tensor) -> torch.Tensor:
    """:func:`velocity_dispersion` of sbi's padded x, in torch.

    Args:
        x: (B, N, 4) [x_proj, y_proj, v_los, valid] (h^-1 Mpc, h^-1 Mpc, km/s, 0/1).

    Returns:
        sigma_v [km/s], (B,); 0 where fewer than two galaxies are valid.
    """
    import torch

    m = (x[..., 3] > 0.5).to(x.dtype)
    n = m.sum(1)
    mean = (x[..., 2] * m).sum(1) / n.clamp_min(1.0)
    var = (((x[..., 2] - mean[:, None]) * m) ** 2).sum(1) / (n - 1.0).clamp_min(1.0)
    return torch.sqrt(var)


def biweight_dispersion(clusters: ClusterSet, c: float = 9.0) -> np.ndarray:
    """Biweight scale of v_los per cluster [km/s] (Beers et al. 1990; astropy's estimator).

    NaN where a cluster has fewer than two galaxies.
    """
    from astropy.stats import biweight_scale

    out = np.full(len(clusters), np.nan)
    v = clusters.galaxies["v_los"].astype(np.float64)
    for i, (lo, hi) in enumerate(zip(clusters.offsets[:-1], clusters.offsets[1:], strict=True)):
        if hi - lo >= 2:
            out[i] = biweight_scale(v[lo:hi], c=c, modify_sample_size=True)
    return out
