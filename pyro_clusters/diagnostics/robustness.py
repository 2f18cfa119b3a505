"""Robustness of an estimator to galaxy sampling and velocity errors.

Subsampled mass drift (Ho et al. 2019 section 5.4, eq. 14, Table 4): each cluster's galaxies are
subsampled at rate r without replacement (round(r N) galaxies, at least one), the prediction
(posterior median of log10 M) is averaged over ``n_repeats`` subsamplings, and

    epsilon(r) = <log M_pred^(r)> - log M_pred^(1).

The average is taken in log M (Ho et al. 2019 averages the prediction; in log it is the geometric
mean, the natural average of a log-normal quantity). Summarised per r by the median and
16th-84th percentiles, and over 0.6 <= r <= 0.8 by the median, 16-84 range and width
Delta epsilon (the columns of Ho et al. 2019 Table 4).

Velocity errors (Kodi Ramanah et al. 2020 section 5): Gaussian errors of ``error_kms`` (100 km/s by
default) added to every v_los; reported as the shift of the posterior medians and the ratio of the
posterior standard deviations.

Centre and redshift taken as given: a real cluster's centre on the sky and its redshift are
estimates (a BCG, an X-ray peak, the mean of members), while the mocks are centred on the halo.
:func:`recentre` cuts the cylinder of each mock again about a displaced centre -- from clusters
simulated in a wider cylinder, so that galaxies enter as well as leave -- and
:func:`centre_shift` reports how far the posterior medians move.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pyro_clusters.data.clusters import ClusterSet

__all__ = ["DriftResult", "centre_shift", "recentre", "subsample", "subsampling_drift",
           "velocity_error_shift"]


def subsample(clusters: ClusterSet, rate: float, rng: np.random.Generator) -> ClusterSet:
    """Keep round(rate N) randomly chosen galaxies of each cluster (at least one).

    Args:
        clusters: the clusters.
        rate: sampling rate r in (0, 1].
        rng: random generator.
    """
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"sampling rate must be in (0, 1], got {rate}")
    n_gal = clusters.n_gal
    k = np.maximum(np.rint(rate * n_gal), np.minimum(n_gal, 1)).astype(np.int64)
    # Rank galaxies within each cluster by a random key; keep the k lowest ranks.
    key = rng.random(clusters.offsets[-1])
    idx = clusters.cluster_index()
    order = np.lexsort((key, idx))
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size) - np.repeat(clusters.offsets[:-1], n_gal)
    return clusters.filter_galaxies(rank < k[idx])


@dataclass(frozen=True)
class DriftResult:
    """Subsampled mass drift.

    Attributes:
        rates: sampling rates r, (R,).
        epsilon: per-cluster drift, (R, n_clusters) [dex].
        median, p16, p84: per-rate summaries, (R,) [dex].
        summary_0608: median, p16, p84 and width of all epsilon(r) with 0.6 <= r <= 0.8
            (Ho et al. 2019 Table 4), or None when no rate lies there.
    """

    rates: np.ndarray
    epsilon: np.ndarray
    median: np.ndarray
    p16: np.ndarray
    p84: np.ndarray
    summary_0608: dict | None

    def to_dict(self) -> dict:
        """Plain dict for metrics.json (per-rate summaries, not per-cluster values)."""
        return {"rates": self.rates.tolist(), "median_dex": self.median.tolist(),
                "p16_dex": self.p16.tolist(), "p84_dex": self.p84.tolist(),
                "summary_0608": self.summary_0608}


def _median_prediction(estimator, clusters: ClusterSet, n_draws: int, seed: int) -> np.ndarray:
    # Every prediction uses the same seed (common random numbers): the Monte-Carlo noise of the
    # posterior draws then largely cancels in the differences this module reports.
    return np.median(estimator.sample(clusters, n_draws, np.random.default_rng(seed)), axis=1)


def subsampling_drift(
    estimator,
    clusters: ClusterSet,
    rng: np.random.Generator,
    rates: np.ndarray | None = None,
    n_repeats: int = 10,
    n_draws: int = 200,
) -> DriftResult:
    """Drift of the prediction when galaxies are randomly removed (Ho et al. 2019 eq. 14).

    Args:
        estimator: any object with ``sample(clusters, n, rng) -> (n_clusters, n)``.
        clusters: test clusters.
        rng: random generator.
        rates: sampling rates (default 0.1, 0.2, ..., 1.0).
        n_repeats: subsamplings averaged per cluster and rate (Ho et al. 2019: 10).
        n_draws: posterior draws per prediction.

    Returns:
        :class:`DriftResult`.
    """
    rates = np.round(np.arange(0.1, 1.01, 0.1), 2) if rates is None else np.asarray(rates, float)
    if n_repeats < 1 or n_draws < 1:
        raise ValueError("n_repeats and n_draws must be >= 1")
    seed = int(rng.integers(2**63))
    base = _median_prediction(estimator, clusters, n_draws, seed)
    eps = np.empty((rates.size, len(clusters)))
    for j, r in enumerate(rates):
        pred = [_median_prediction(estimator, subsample(clusters, r, rng), n_draws, seed)
                for _ in range(n_repeats)]
        eps[j] = np.mean(pred, axis=0) - base
    p16, med, p84 = np.percentile(eps, [16, 50, 84], axis=1)
    window = (rates >= 0.6 - 1e-9) & (rates <= 0.8 + 1e-9)
    summary = None
    if window.any():
        q16, q50, q84 = np.percentile(eps[window].ravel(), [16, 50, 84])
        summary = {"median_dex": float(q50), "p16_dex": float(q16), "p84_dex": float(q84),
                   "width_dex": float(q84 - q16)}
    return DriftResult(rates, eps, med, p16, p84, summary)


def velocity_error_shift(
    estimator,
    clusters: ClusterSet,
    rng: np.random.Generator,
    error_kms: float = 100.0,
    n_draws: int = 500,
) -> dict:
    """Shift of the posterior under Gaussian velocity errors (Kodi Ramanah et al. 2020 section 5).

    Args:
        estimator: any object with ``sample(clusters, n, rng)``.
        clusters: test clusters.
        rng: random generator.
        error_kms: standard deviation of the added v_los errors [km/s].
        n_draws: posterior draws per cluster.

    Returns:
        dict: ``error_kms``, median and 16/84 percentiles of the shift of the posterior
        medians [dex], and the median ratio of posterior standard deviations (with / without).
    """
    if error_kms < 0:
        raise ValueError("error_kms must be >= 0")
    seed = int(rng.integers(2**63))  # common random numbers for both posteriors
    clean = estimator.sample(clusters, n_draws, np.random.default_rng(seed))
    galaxies = dict(clusters.galaxies)
    galaxies["v_los"] = (galaxies["v_los"] + error_kms * rng.standard_normal(
        galaxies["v_los"].shape)).astype(galaxies["v_los"].dtype)
    noisy = estimator.sample(ClusterSet(clusters.clusters, galaxies, clusters.offsets),
                             n_draws, np.random.default_rng(seed))
    shift = np.median(noisy, axis=1) - np.median(clean, axis=1)
    q16, q50, q84 = np.percentile(shift, [16, 50, 84])
    return {"error_kms": float(error_kms), "median_shift_dex": float(q50),
            "p16_shift_dex": float(q16), "p84_shift_dex": float(q84),
            "std_ratio": float(np.median(noisy.std(axis=1) / clean.std(axis=1)))}


def recentre(clusters: ClusterSet, offset: float, dv: float, aperture: float, v_cut: float,
             rng: np.random.Generator) -> ClusterSet:
    """The cylinders cut again about a centre displaced by ``offset`` and ``dv``.

    Each cluster's adopted centre is moved by ``offset`` on the sky in a random direction and
    its adopted velocity by ``dv`` with a random sign; the galaxies are re-expressed about it
    (x - dx, y - dy, v_los - dv) and those within ``aperture`` and ``|v_los| < v_cut`` kept.
    ``clusters`` must have been simulated in a wider cylinder (aperture + offset, v_cut + dv
    at least), otherwise galaxies that would enter the displaced cylinder are missing.

    Args:
        clusters: cylinder-setup clusters from a wide cylinder (attrs ``aperture``,
            ``v_cut``).
        offset: centre offset in projection [h^-1 Mpc], >= 0.
        dv: offset of the adopted cluster velocity [km/s] (a redshift error
            dz = dv (1 + z) / c), >= 0.
        aperture: the cylinder radius to cut [h^-1 Mpc].
        v_cut: the velocity window to cut [km/s].
        rng: random generator (directions and signs).

    Returns:
        the clusters with the new cylinders (``p_member`` dropped, to be recomputed;
        ``attrs`` with the new aperture and v_cut).

    Raises:
        ValueError: negative offsets, or a wide cylinder too narrow for them.
    """
    if offset < 0 or dv < 0:
        raise ValueError("offset and dv must be >= 0")
    wide_ap, wide_v = float(clusters.attrs["aperture"]), float(clusters.attrs["v_cut"])
    if aperture + offset > wide_ap + 1e-9 or v_cut + dv > wide_v + 1e-9:
        raise ValueError(f"the clusters' cylinder ({wide_ap} h^-1 Mpc, +-{wide_v} km/s) does "
                         f"not contain the displaced one ({aperture} + {offset} h^-1 Mpc, "
                         f"+-({v_cut} + {dv}) km/s): simulate with a wider aperture/v_cut")
    n = len(clusters)
    phi = rng.uniform(0.0, 2.0 * np.pi, n)
    sign = rng.choice([-1.0, 1.0], n)
    idx = clusters.cluster_index()
    g = {k: v for k, v in clusters.galaxies.items() if k != "p_member"}
    dtype = g["x_proj"].dtype
    g["x_proj"] = (g["x_proj"] - (offset * np.cos(phi))[idx]).astype(dtype)
    g["y_proj"] = (g["y_proj"] - (offset * np.sin(phi))[idx]).astype(dtype)
    g["v_los"] = (g["v_los"] - (sign * dv)[idx]).astype(g["v_los"].dtype)
    keep = (np.hypot(g["x_proj"], g["y_proj"]) < aperture) & (np.abs(g["v_los"]) < v_cut)
    out = ClusterSet(dict(clusters.clusters), g, clusters.offsets,
                     {**clusters.attrs, "aperture": aperture, "v_cut": v_cut})
    return out.filter_galaxies(keep)


def centre_shift(estimator, clusters: ClusterSet, rng: np.random.Generator,
                 aperture: float, v_cut: float, offsets: tuple[float, ...] = (0.1, 0.2, 0.3),
                 dvs: tuple[float, ...] = (150.0, 300.0), n_draws: int = 500) -> list[dict]:
    """Shift of the posterior medians when the centre or the cluster redshift is off.

    Args:
        estimator: any object with ``sample(clusters, n, rng)`` (a bundle annotates with
            its classifier itself).
        clusters: clusters simulated in a cylinder wider than (aperture, v_cut) by the
            largest offsets.
        rng: random generator.
        aperture: the estimator's aperture [h^-1 Mpc].
        v_cut: the estimator's velocity window [km/s].
        offsets: centre offsets on the sky [h^-1 Mpc], each alone.
        dvs: offsets of the cluster velocity [km/s], each alone.
        n_draws: posterior draws per cluster.

    Returns:
        one dict per displacement: ``offset_hinv_mpc``, ``dv_kms``, median and 16/84
        percentiles of the shift of the posterior medians [dex] against the cylinders cut
        about the true centre (same galaxies, same seed), and the mean galaxy count.
    """
    seed = int(rng.integers(2**63))
    true = recentre(clusters, 0.0, 0.0, aperture, v_cut, rng)
    base = _median_prediction(estimator, true, n_draws, seed)
    out = []
    for off, dv in [(o, 0.0) for o in offsets] + [(0.0, d) for d in dvs]:
        moved = recentre(clusters, off, dv, aperture, v_cut, rng)
        shift = _median_prediction(estimator, moved, n_draws, seed) - base
        q16, q50, q84 = np.percentile(shift, [16, 50, 84])
        out.append({"offset_hinv_mpc": off, "dv_kms": dv, "median_shift_dex": float(q50),
                    "p16_shift_dex": float(q16), "p84_shift_dex": float(q84),
                    "mean_n_gal": float(moved.n_gal.mean())})
    return out
