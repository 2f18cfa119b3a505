"""Classical interloper removal: the shifting gapper and iterative sigma clipping.

Both work on the observed projected phase space only (R_proj, v_los relative to the cluster
centre) and return a boolean "member" call per galaxy, in the ragged order of the set.

Shifting gapper (Fadda, Girardi, Giuricin, Mardirossian & Mezzetti 1996, ApJ 473, 670): galaxies
are binned in projected radius (bins of at least ``min_per_bin`` galaxies and at least
``min_bin_width`` h^-1 Mpc); within a bin, velocities are sorted and the main body is the run of
galaxies containing the one closest to v = 0 in which consecutive velocities differ by less than
``gap_kms``; galaxies outside it are rejected. The procedure repeats until no galaxy is removed.

Sigma clipping (e.g. Yahil & Vidal 1977): galaxies with |v - median| > ``n_sigma`` times the
standard deviation of the current members are rejected, repeated until nothing changes.
"""

from __future__ import annotations

import numpy as np

from pyro_clusters.data.clusters import ClusterSet

__all__ = ["shifting_gapper", "sigma_clipping"]


def _gapper_one(r: np.ndarray, v: np.ndarray, gap: float, min_per_bin: int,
                min_width: float) -> np.ndarray:
    keep = np.ones(r.size, dtype=bool)
    while True:
        idx = np.flatnonzero(keep)
        if idx.size < 2:
            return keep
        order = idx[np.argsort(r[idx], kind="stable")]
        removed = False
        start = 0
        while start < order.size:
            stop = min(start + min_per_bin, order.size)
            while stop < order.size and r[order[stop - 1]] - r[order[start]] < min_width:
                stop += 1
            if order.size - stop < min_per_bin:  # fold a short remainder into this bin
                stop = order.size
            members = order[start:stop]
            vs = np.argsort(v[members], kind="stable")
            sv = v[members][vs]
            centre = int(np.argmin(np.abs(sv)))
            breaks = np.flatnonzero(np.diff(sv) > gap)
            lo = breaks[breaks < centre].max() + 1 if np.any(breaks < centre) else 0
            hi = breaks[breaks >= centre].min() + 1 if np.any(breaks >= centre) else sv.size
            outside = np.r_[vs[:lo], vs[hi:]]
            if outside.size:
                keep[members[outside]] = False
                removed = True
            start = stop
        if not removed:
            return keep


def shifting_gapper(clusters: ClusterSet, gap_kms: float = 1000.0, min_per_bin: int = 15,
                    min_bin_width: float = 0.4) -> np.ndarray:
    """Member calls of the shifting gapper (Fadda et al. 1996), (n_galaxies_total,) bool.

    Args:
        clusters: observed clusters (v_los relative to the centre).
        gap_kms: velocity gap that separates the main body from interlopers [km/s] (1000 in
            Fadda et al.; papers often use 500-1000).
        min_per_bin: galaxies per radial bin at least (Fadda et al.: 15).
        min_bin_width: radial bin width at least [h^-1 Mpc] (Fadda et al.: 0.4 h^-1 Mpc).
    """
    if gap_kms <= 0 or min_per_bin < 2 or min_bin_width < 0:
        raise ValueError("gap_kms > 0, min_per_bin >= 2 and min_bin_width >= 0 are required")
    g = clusters.galaxies
    r = np.hypot(g["x_proj"], g["y_proj"]).astype(np.float64)
    v = g["v_los"].astype(np.float64)
    out = np.ones(r.size, dtype=bool)
    for lo, hi in zip(clusters.offsets[:-1], clusters.offsets[1:], strict=True):
        out[lo:hi] = _gapper_one(r[lo:hi], v[lo:hi], gap_kms, min_per_bin, min_bin_width)
    return out


def sigma_clipping(clusters: ClusterSet, n_sigma: float = 3.0, max_iter: int = 20) -> np.ndarray:
    """Member calls of iterative n-sigma clipping in v_los, all clusters at once.

    Args:
        clusters: observed clusters.
        n_sigma: clipping threshold in units of the members' standard deviation.
        max_iter: iterations at most (convergence is usually reached in a few).

    Returns:
        (n_galaxies_total,) bool; a cluster keeps at least its two galaxies closest to the
        median (a dispersion needs two).
    """
    if n_sigma <= 0:
        raise ValueError("n_sigma must be positive")
    v = clusters.galaxies["v_los"].astype(np.float64)
    idx = clusters.cluster_index()
    n = len(clusters)
    keep = np.ones(v.size, dtype=bool)
    for _ in range(max_iter):
        w = keep.astype(np.float64)
        cnt = np.bincount(idx, w, minlength=n).astype(np.float64)
        mean = np.bincount(idx, w * v, minlength=n) / np.maximum(cnt, 1)
        var = np.bincount(idx, w * (v - mean[idx]) ** 2, minlength=n) / np.maximum(cnt - 1, 1)
        # median of the current members per cluster: sort by (cluster, masked velocity)
        vm = np.where(keep, v, np.inf)
        order = np.lexsort((vm, idx))
        start = clusters.offsets[:-1]
        med_pos = start + np.maximum(cnt.astype(np.int64) - 1, 0) // 2
        med_pos2 = start + cnt.astype(np.int64) // 2
        med = 0.5 * (v[order[np.minimum(med_pos, v.size - 1)]]
                     + v[order[np.minimum(med_pos2, v.size - 1)]])
        new = np.abs(v - med[idx]) <= n_sigma * np.sqrt(var)[idx]
        new &= keep
        ok = np.bincount(idx, new, minlength=n) >= 2
        new = np.where(ok[idx], new, keep)
        if np.array_equal(new, keep):
            break
        keep = new
    return keep
