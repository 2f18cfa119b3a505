"""The M-sigma relation: velocity dispersions and the power-law fit.

Ho et al. 2019 (papers/001) eq. 5 and section 4.1:

    sigma_v = sigma_15 [h(z) M200c / 10^15 Msun]^alpha,

fitted by ordinary least squares in log space, log10 sigma = A log10(E(z) M / 10^15) + B, on
clusters above a mass cut (10^14.5 h^-1 Msun in papers/001), with M in h^-1 Msun (so that
h(z) M[Msun] = E(z) M[h^-1 Msun]). sigma_v is the unbiased standard deviation of the
line-of-sight velocities (papers/001 eq. 6). The log-normal scatter is the standard deviation
of log10(sigma / sigma_pred) above the cut (papers/001 eq. 7).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pyro_clusters.cosmology import get_cosmology
from pyro_clusters.data.clusters import ClusterSet

__all__ = ["MSigmaFit", "fit_msigma", "velocity_dispersion"]


def velocity_dispersion(clusters: ClusterSet, mask: np.ndarray | None = None) -> np.ndarray:
    """Unbiased standard deviation of v_los per cluster (papers/001 eq. 6) [km/s].

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


@dataclass(frozen=True)
class MSigmaFit:
    """A fitted M-sigma relation log10 sigma = slope * log10(E(z) M / 1e15) + intercept.

    Attributes:
        slope: alpha.
        intercept: log10 sigma_15 [km/s].
        scatter_dex: std of log10(sigma / sigma_pred) over the fitted clusters.
        z: redshift of E(z).
        mass_cut: log10 M cut above which the fit was made.
        n_fit: number of clusters fitted.
    """

    slope: float
    intercept: float
    scatter_dex: float
    z: float
    mass_cut: float
    n_fit: int

    @property
    def sigma15(self) -> float:
        """sigma_15 [km/s]."""
        return 10.0**self.intercept

    def predict_log_sigma(self, log_m: np.ndarray) -> np.ndarray:
        """log10 sigma [km/s] at log10(M200c / h^-1 Msun)."""
        e = np.log10(get_cosmology().Ez(self.z))
        return self.slope * (np.asarray(log_m) + e - 15.0) + self.intercept

    def predict_log_mass(self, sigma: np.ndarray) -> np.ndarray:
        """Inverse relation: log10(M200c / h^-1 Msun) from sigma [km/s]."""
        e = np.log10(get_cosmology().Ez(self.z))
        return (np.log10(sigma) - self.intercept) / self.slope + 15.0 - e


def fit_msigma(log_m: np.ndarray, sigma: np.ndarray, z: float, mass_cut: float = 14.5
               ) -> MSigmaFit:
    """Least-squares fit of log10 sigma on log10(E(z) M / 1e15) above ``mass_cut``.

    Args:
        log_m: true log10(M200c / h^-1 Msun), (n,).
        sigma: velocity dispersions [km/s], (n,); non-finite entries are skipped.
        z: redshift.
        mass_cut: only clusters with log_m >= mass_cut are fitted (papers/001: 14.5).

    Returns:
        The fit.
    """
    log_m, sigma = np.asarray(log_m, float), np.asarray(sigma, float)
    ok = (log_m >= mass_cut) & np.isfinite(sigma) & (sigma > 0)
    if ok.sum() < 3:
        raise ValueError(f"need at least 3 clusters above the mass cut {mass_cut}, got {ok.sum()}")
    x = log_m[ok] + np.log10(get_cosmology().Ez(z)) - 15.0
    y = np.log10(sigma[ok])
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    return MSigmaFit(float(slope), float(intercept), float(np.std(resid, ddof=2)), float(z),
                     float(mass_cut), int(ok.sum()))
