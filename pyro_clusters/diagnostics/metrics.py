"""Residual metrics of posterior point estimates (the metrics.json contract of DESIGN.md).

epsilon = log M_pred - log M_true with M_pred the posterior median (Ho et al. 2019 eq. 8).
Reported: scatter (standard deviation), bias (mean), median and 16th/84th percentiles of
epsilon, skewness and excess kurtosis (Ho et al. 2019 section 5.2, the Edgeworth terms of eq. 9),
the mean posterior standard deviation, and the same per bin of true mass (Wang, Thiele & Ho
2026, Fig. 7 right: bias, empirical scatter and mean posterior std per bin).

The richness split (Kodi Ramanah et al. 2020 eq. 8; Wojtak et al. 2018) models the residuals as
epsilon_i ~ N(mu, sigma_N^2 (N_i / 100)^-1 + sigma_0^2), fitted by maximum likelihood.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.stats import kurtosis, skew

from pyro_clusters.diagnostics.posterior import validate_samples

__all__ = [
    "RichnessSplit",
    "by_mass_bin",
    "default_mass_edges",
    "residual_metrics",
    "richness_split",
]


def default_mass_edges(truth: np.ndarray, width: float = 0.1) -> np.ndarray:
    """Bin edges of ``width`` dex covering the truths, on a grid aligned to multiples of width."""
    lo = np.floor(truth.min() / width + 1e-9) * width
    hi = np.ceil(truth.max() / width - 1e-9) * width
    if hi <= lo:
        hi = lo + width
    return np.round(np.arange(lo, hi + 0.5 * width, width), 6)


def by_mass_bin(pred: np.ndarray, truth: np.ndarray, post_std: np.ndarray,
                edges: np.ndarray) -> list[dict]:
    """Per bin of true log M: n, bias, empirical scatter and mean posterior std [dex].

    Bins with fewer than two clusters report n and NaN statistics (JSON ``null`` after
    :func:`pyro_clusters.diagnostics.report.to_json_safe`).
    """
    out = []
    eps = pred - truth
    which = np.digitize(truth, edges) - 1
    which[truth == edges[-1]] = len(edges) - 2  # the last edge belongs to the last bin
    for k in range(len(edges) - 1):
        m = which == k
        n = int(m.sum())
        row = {"lo": float(edges[k]), "hi": float(edges[k + 1]), "n": n,
               "bias_dex": float("nan"), "scatter_dex": float("nan"),
               "mean_posterior_std_dex": float("nan")}
        if n >= 2:
            row.update(bias_dex=float(eps[m].mean()), scatter_dex=float(eps[m].std(ddof=1)),
                       mean_posterior_std_dex=float(post_std[m].mean()))
        out.append(row)
    return out


def residual_metrics(samples, truth, mass_edges: np.ndarray | None = None) -> dict:
    """Every residual metric of the contract, overall and by mass bin.

    Args:
        samples: (n_clusters, n_draws) posterior draws of log10 M.
        truth: (n_clusters,) true log10 M.
        mass_edges: bin edges in log10 M (default 0.1 dex bins over the truths).

    Returns:
        dict with ``scatter_dex``, ``bias_dex``, ``residual_median_dex``, ``residual_p16_dex``,
        ``residual_p84_dex``, ``skewness``, ``kurtosis`` (excess), ``mean_posterior_std_dex``,
        ``by_mass_bin``, ``n_clusters``.
    """
    s, t = validate_samples(samples, truth)
    pred = np.median(s, axis=1)
    post_std = s.std(axis=1, ddof=1)
    eps = pred - t
    p16, p50, p84 = np.percentile(eps, [16, 50, 84])
    n = eps.size
    edges = default_mass_edges(t) if mass_edges is None else np.asarray(mass_edges, float)
    return {
        "scatter_dex": float(eps.std(ddof=1)) if n > 1 else 0.0,
        "bias_dex": float(eps.mean()),
        "residual_median_dex": float(p50),
        "residual_p16_dex": float(p16),
        "residual_p84_dex": float(p84),
        "skewness": float(skew(eps)) if n > 2 else float("nan"),
        "kurtosis": float(kurtosis(eps, fisher=True)) if n > 3 else float("nan"),
        "mean_posterior_std_dex": float(post_std.mean()),
        "by_mass_bin": by_mass_bin(pred, t, post_std, edges),
        "n_clusters": n,
    }


@dataclass(frozen=True)
class RichnessSplit:
    """sigma^2 = sigma_N^2 (N / 100)^-1 + sigma_0^2 (Kodi Ramanah et al. 2020 eq. 8).

    Attributes:
        sigma_n_dex: richness-dependent scatter at N = 100 [dex].
        sigma_0_dex: richness-independent scatter [dex].
        mean_dex: fitted mean residual [dex].
        n_clusters: clusters fitted.
    """

    sigma_n_dex: float
    sigma_0_dex: float
    mean_dex: float
    n_clusters: int

    def to_dict(self) -> dict:
        """Plain dict for metrics.json."""
        return {"sigma_n_dex": self.sigma_n_dex, "sigma_0_dex": self.sigma_0_dex,
                "mean_dex": self.mean_dex, "n_clusters": self.n_clusters}

    def sigma(self, richness: np.ndarray) -> np.ndarray:
        """Model scatter [dex] at richness N."""
        return np.sqrt(self.sigma_n_dex**2 * 100.0 / np.asarray(richness, float)
                       + self.sigma_0_dex**2)


def richness_split(residuals: np.ndarray, richness: np.ndarray) -> RichnessSplit:
    """Maximum-likelihood fit of Kodi Ramanah et al. 2020 eq. 8 to the residuals.

    Args:
        residuals: epsilon per cluster [dex], (n,).
        richness: member count N per cluster, (n,), all > 0.

    Returns:
        :class:`RichnessSplit`.
    """
    eps = np.asarray(residuals, float)
    n_mem = np.asarray(richness, float)
    if eps.shape != n_mem.shape or eps.ndim != 1:
        raise ValueError("residuals and richness must be 1-D arrays of the same length")
    if eps.size < 3:
        raise ValueError("need at least 3 clusters to fit the richness split")
    if np.any(~np.isfinite(n_mem)) or np.any(n_mem <= 0):
        raise ValueError("richness must be positive and finite")
    x = 100.0 / n_mem

    def nll(p: np.ndarray) -> float:
        mu, log_sn, log_s0 = p
        var = np.exp(2 * log_sn) * x + np.exp(2 * log_s0)
        return 0.5 * np.sum(np.log(var) + (eps - mu) ** 2 / var)

    s0 = max(eps.std(), 1e-4) / np.sqrt(2.0)
    start = np.array([eps.mean(), np.log(s0 / np.sqrt(max(x.mean(), 1e-6))), np.log(s0)])
    res = minimize(nll, start, method="Nelder-Mead",
                   options={"xatol": 1e-7, "fatol": 1e-9, "maxiter": 4000})
    mu, log_sn, log_s0 = res.x
    return RichnessSplit(float(np.exp(log_sn)), float(np.exp(log_s0)), float(mu), int(eps.size))
