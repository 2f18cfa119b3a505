"""Cluster-by-cluster comparison of two posteriors of log10 M on the same clusters.

Used to measure how close an amortised estimator comes to a reference posterior (the exact
``jeans_exact`` posterior of the spherical simulator). For each cluster, with draws a (the
estimator) and b (the reference), all in dex:

    std ratio          sd(a) / sd(b)
    shift              (median(a) - median(b)) / sd(b)
    Gaussian KL        KL(N_b || N_a) = ln(s_a / s_b) + (s_b^2 + (m_b - m_a)^2) / (2 s_a^2) - 1/2
                       [nats], with N_x the normal of the draws' mean m_x and sd s_x
    Wasserstein-1      W1(a, b) / sd(b), the 1-D optimal-transport distance of the draws
                       (scipy), sensitive to shape differences the Gaussian KL misses
"""

from __future__ import annotations

import numpy as np
from scipy.stats import wasserstein_distance

__all__ = ["compare_posteriors", "per_cluster_comparison"]


def per_cluster_comparison(a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """Per-cluster statistics of draws ``a`` against reference draws ``b``.

    Args:
        a: draws of the estimator, (n_clusters, n_a) [dex].
        b: reference draws, (n_clusters, n_b) [dex].

    Returns:
        dict of (n_clusters,) arrays: ``std_a``, ``std_b``, ``std_ratio``, ``shift``,
        ``kl_gauss`` [nats], ``w1`` (in units of sd(b)).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(f"need (n_clusters, n_draws) arrays for the same clusters, got "
                         f"{a.shape} and {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("posterior draws must be finite")
    sa, sb = a.std(1, ddof=1), b.std(1, ddof=1)
    if np.any(sb <= 0) or np.any(sa <= 0):
        raise ValueError("every posterior needs a positive spread")
    ma, mb = a.mean(1), b.mean(1)
    kl = np.log(sa / sb) + (sb**2 + (mb - ma) ** 2) / (2.0 * sa**2) - 0.5
    w1 = np.array([wasserstein_distance(x, y) for x, y in zip(a, b, strict=True)]) / sb
    return {"std_a": sa, "std_b": sb, "std_ratio": sa / sb,
            "shift": (np.median(a, 1) - np.median(b, 1)) / sb, "kl_gauss": kl, "w1": w1}


def compare_posteriors(a: np.ndarray, b: np.ndarray, truth: np.ndarray | None = None) -> dict:
    """Summary of :func:`per_cluster_comparison` over clusters (JSON-safe floats).

    Args:
        a: draws of the estimator, (n_clusters, n_a) [dex].
        b: reference draws, (n_clusters, n_b) [dex].
        truth: true log10 M, (n_clusters,); adds both posteriors' residual scatter
            sigma_eps = std(median - truth) (``scatter_dex`` of the report) and its
            relative difference.

    Returns:
        ``std_ratio_mean`` (mean over clusters of the per-cluster ratio),
        ``std_ratio_median``, ``std_ratio_p16``, ``std_ratio_p84``, ``mean_std_ratio``
        (ratio of the mean widths), ``shift_median_abs``, ``shift_rms``, ``kl_gauss_mean``,
        ``kl_gauss_median``, ``w1_median``, and with ``truth`` ``sigma_eps_a``,
        ``sigma_eps_b``, ``sigma_eps_rel_diff`` = sigma_eps_a / sigma_eps_b - 1.
    """
    c = per_cluster_comparison(a, b)
    r = c["std_ratio"]
    out = {
        "n_clusters": int(r.size),
        "std_ratio_mean": float(np.mean(r)),
        "std_ratio_median": float(np.median(r)),
        "std_ratio_p16": float(np.percentile(r, 16)),
        "std_ratio_p84": float(np.percentile(r, 84)),
        "mean_std_ratio": float(np.mean(c["std_a"]) / np.mean(c["std_b"])),
        "shift_median_abs": float(np.median(np.abs(c["shift"]))),
        "shift_rms": float(np.sqrt(np.mean(c["shift"] ** 2))),
        "kl_gauss_mean": float(np.mean(c["kl_gauss"])),
        "kl_gauss_median": float(np.median(c["kl_gauss"])),
        "w1_median": float(np.median(c["w1"])),
    }
    if truth is not None:
        truth = np.asarray(truth, dtype=float)
        ea = float(np.std(np.median(a, 1) - truth, ddof=1))  # = residual_metrics' scatter_dex
        eb = float(np.std(np.median(b, 1) - truth, ddof=1))
        out.update({"sigma_eps_a": ea, "sigma_eps_b": eb, "sigma_eps_rel_diff": ea / eb - 1.0})
    return out
