r"""KDE images of projected phase space, the input of the image-based estimators.

Ho et al. 2019, section 3.1: a bivariate Gaussian product-kernel estimate of each cluster's
{R_proj, v_los} distribution,

    f(R, v) = (1/n) sum_i K((R - R_i) / h_R) K((v - v_i) / h_v) / (h_R h_v),
    h_R = h0 sigma_R,  h_v = h0 sigma_v,  h0 = 0.25,

with sigma the cluster's own sample standard deviation along each axis, sampled on a 48 x 48
grid over R in [0, R_max] and v in [-v_max, v_max] and normalised to unit sum. Kodi Ramanah, Wojtak
& Arendse 2021, section 3.1 uses the 3D {x_proj, y_proj, v_los} estimate instead (50^3 voxels, kappa
= 0.175); ``kind="3d"`` builds it on ``bins``^3 voxels over [-R_max, R_max]^2 x [-v_max, v_max].

Vectorised: the product kernel is separable, so the image of a cluster is A^T B with
A[i, j] = K((R_j - R_i)/h_R) and B[i, k] = K((v_k - v_i)/h_v) over its galaxies i; clusters are
padded into batches and every image of a batch is one batched matrix product (padding rows are
zero). No Python loop over clusters or galaxies.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from pyro_clusters import defaults
from pyro_clusters.data.clusters import ClusterSet, ragged_to_padded

__all__ = ["KDEImageSpec", "kde_images"]


@dataclass(frozen=True)
class KDEImageSpec:
    """How images are made.

    Attributes:
        kind: ``"2d"`` ({R_proj, v_los}, Ho et al. 2019) or ``"3d"`` ({x, y, v_los}, Kodi Ramanah,
            Wojtak & Arendse 2021).
        bins: grid points per axis (48 in Ho et al. 2019; 3D default here 24, i.e. 13,824 voxels:
            20,000 training images take 1.1 GB in float32, where 50^3 would take 10 GB).
        h0: bandwidth factor, h = h0 x the cluster's standard deviation per axis (0.25 in
            Ho et al. 2019; Kodi Ramanah, Wojtak & Arendse 2021 uses 0.175 in 3D).
        r_max: outer projected radius of the grid [h^-1 Mpc] (the aperture in the cylinder).
        v_max: half-width of the velocity grid [km/s] (v_cut in the cylinder).
    """

    kind: str = "2d"
    bins: int = 48
    h0: float = 0.25
    r_max: float = defaults.APERTURE
    v_max: float = defaults.V_CUT

    def __post_init__(self) -> None:
        if self.kind not in ("2d", "3d"):
            raise ValueError(f"kind must be '2d' or '3d', got {self.kind!r}")
        if self.bins < 4 or self.h0 <= 0 or self.r_max <= 0 or self.v_max <= 0:
            raise ValueError("bins must be >= 4 and h0, r_max, v_max positive")

    @property
    def shape(self) -> tuple[int, ...]:
        """Image shape: (v, R) in 2D, (x, y, v) in 3D."""
        return (self.bins,) * (2 if self.kind == "2d" else 3)

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return asdict(self)

    @classmethod
    def for_clusters(cls, clusters: ClusterSet, kind: str = "2d", bins: int | None = None,
                     h0: float | None = None) -> KDEImageSpec:
        """The grid for a set of clusters.

        Its aperture and v_cut if it has them (cylinder), else the 99.5th percentiles of
        R_proj and |v_los| of its galaxies (idealized).
        """
        a = clusters.attrs
        g = clusters.galaxies
        r_max = a.get("aperture") if a.get("setup") == "cylinder" else None
        v_max = a.get("v_cut") if a.get("setup") == "cylinder" else None
        if r_max is None:
            r_max = float(np.percentile(np.hypot(g["x_proj"], g["y_proj"]), 99.5))
        if v_max is None:
            v_max = float(np.percentile(np.abs(g["v_los"]), 99.5))
        bins = bins or (48 if kind == "2d" else 24)
        h0 = h0 or (0.25 if kind == "2d" else 0.175)
        return cls(kind, bins, h0, float(r_max), float(v_max))


def _kernel(grid: np.ndarray, x: np.ndarray, h: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Gaussian kernel values (B, N, G) of padded samples x (B, N) with bandwidths h (B,)."""
    u = (grid[None, None, :] - x[:, :, None]) / h[:, None, None]
    return np.exp(-0.5 * u * u) * mask[:, :, None]


def _bandwidth(x: np.ndarray, mask: np.ndarray, h0: float, floor: float) -> np.ndarray:
    n = mask.sum(axis=1)
    mean = (x * mask).sum(axis=1) / np.maximum(n, 1)
    var = (((x - mean[:, None]) * mask) ** 2).sum(axis=1) / np.maximum(n - 1, 1)
    return np.maximum(h0 * np.sqrt(var), floor)


def kde_images(clusters: ClusterSet, spec: KDEImageSpec, batch_size: int = 256) -> np.ndarray:
    """KDE images of every cluster, normalised to unit sum.

    Args:
        clusters: the clusters (``x_proj``, ``y_proj`` [h^-1 Mpc], ``v_los`` [km/s]).
        spec: grid, bandwidth factor and kind.
        batch_size: clusters per batched matrix product (bounds memory).

    Returns:
        float32 images (n_clusters, *spec.shape); 2D images are indexed [v, R], 3D [x, y, v].
        A bandwidth is never below half a grid step (a cluster whose galaxies share one
        value would otherwise give a zero image).
    """
    g = clusters.galaxies
    x = g["x_proj"].astype(np.float32)
    y = g["y_proj"].astype(np.float32)
    v = g["v_los"].astype(np.float32)
    nb = spec.bins
    v_grid = np.linspace(-spec.v_max, spec.v_max, nb, dtype=np.float32)
    v_floor = 0.5 * (v_grid[1] - v_grid[0])
    if spec.kind == "2d":
        cols = np.column_stack([np.hypot(x, y), v])
        r_grid = np.linspace(0.0, spec.r_max, nb, dtype=np.float32)
    else:
        cols = np.column_stack([x, y, v])
        r_grid = np.linspace(-spec.r_max, spec.r_max, nb, dtype=np.float32)
    r_floor = 0.5 * (r_grid[1] - r_grid[0])
    out = np.empty((len(clusters), *spec.shape), dtype=np.float32)
    order = np.argsort(clusters.n_gal, kind="stable")  # similar sizes share a batch: less padding
    for lo in range(0, len(clusters), batch_size):
        index = order[lo:lo + batch_size]
        pad, mask = ragged_to_padded(cols, clusters.offsets, index)
        m = mask.astype(np.float32)
        kv = _kernel(v_grid, pad[..., -1], _bandwidth(pad[..., -1], m, spec.h0, v_floor), m)
        if spec.kind == "2d":
            kr = _kernel(r_grid, pad[..., 0], _bandwidth(pad[..., 0], m, spec.h0, r_floor), m)
            img = np.matmul(kv.transpose(0, 2, 1), kr)  # (B, v, R)
        else:
            kx = _kernel(r_grid, pad[..., 0], _bandwidth(pad[..., 0], m, spec.h0, r_floor), m)
            ky = _kernel(r_grid, pad[..., 1], _bandwidth(pad[..., 1], m, spec.h0, r_floor), m)
            kxy = (kx[:, :, :, None] * ky[:, :, None, :]).reshape(len(index), -1, nb * nb)
            img = np.matmul(kxy.transpose(0, 2, 1), kv).reshape(len(index), nb, nb, nb)
        total = img.reshape(len(index), -1).sum(axis=1)
        out[index] = img / np.maximum(total, 1e-30).reshape(-1, *([1] * len(spec.shape)))
    return out
