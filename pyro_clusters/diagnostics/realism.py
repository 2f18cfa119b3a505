"""Is the simulator as hard as N-body mocks? Its numbers against the published ones.

The bands (``REALISM_BANDS``) come from published N-body mocks: pure-member M-sigma slope
0.30-0.37 (Evrard et al. 2008: 0.336; Ho et al. 2019, Table 1: 0.345) and
sigma_15 950-1150 km/s (1083 and 1078); scatter of log sigma at fixed mass 0.04-0.08 dex
(Ho et al. 2019: 0.056); median richness 30-50 at log M = 14.2 (members in the aperture);
interloper fraction falling with mass and >= 0.3 at log M = 14.0; contaminated / pure M-sigma
mass scatter 1.3-2.0 (Ho et al. 2019 Table 2: 0.316 / 0.193).

Definitions (Ho et al. 2019 section 4.1): sigma is the unbiased standard deviation of v_los; the
M-sigma fit is least squares of log sigma on log(E(z) M / 1e15) above log M = 14.5 on a flat
training set; the log-sigma scatter is the residual standard deviation above the cut; the mass
scatter is the standard deviation of log M_pred - log M_true on an HMF-distributed test set over
14.0-15.0, M_pred the inverted fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pyro_clusters.data.clusters import ClusterSet
from pyro_clusters.estimators.msigma import MSigmaFit, fit_msigma
from pyro_clusters.features.dispersion import velocity_dispersion

__all__ = ["REALISM_BANDS", "MockSets", "interloper_fraction_by_mass", "realism_metrics"]

#: metric -> (low, high) band; None = unbounded on that side.
REALISM_BANDS: dict[str, tuple[float | None, float | None]] = {
    "msigma_pure_slope": (0.30, 0.37),
    "msigma_pure_sigma15_kms": (950.0, 1150.0),
    "log_sigma_scatter_dex": (0.04, 0.08),
    "median_richness_at_14p2": (30.0, 50.0),
    "interloper_fraction_at_14p0": (0.3, None),
    "msigma_contaminated_over_pure_scatter": (1.3, 2.0),
}


@dataclass
class MockSets:
    """The four cluster sets a realism check needs.

    Attributes:
        pure_train, cylinder_train: flat-prior sets (idealized and cylinder setups).
        pure_test, cylinder_test: HMF-distributed sets over 14.0-15.0.
        z: redshift.
    """

    pure_train: ClusterSet
    cylinder_train: ClusterSet
    pure_test: ClusterSet
    cylinder_test: ClusterSet
    z: float


def interloper_fraction_by_mass(clusters: ClusterSet, edges: np.ndarray) -> list[dict]:
    """Share of non-member galaxies among all observed galaxies, per log-mass bin.

    Returns:
        list of {lo, hi, n_clusters, fraction}; bins without clusters are left out.
    """
    out = []
    n_mem = clusters.clusters["n_members"]
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (clusters.log_m >= lo) & (clusters.log_m < hi)
        if m.sum() == 0:
            continue
        n_tot = clusters.n_gal[m].sum()
        out.append({"lo": float(lo), "hi": float(hi), "n_clusters": int(m.sum()),
                    "fraction": float(1.0 - n_mem[m].sum() / n_tot)})
    return out


def _mass_scatter(fit: MSigmaFit, test: ClusterSet) -> float:
    sigma = velocity_dispersion(test)
    pred = fit.predict_log_mass(sigma)
    ok = np.isfinite(pred)
    return float(np.std(pred[ok] - test.log_m[ok]))


def realism_metrics(sets: MockSets) -> tuple[dict, dict[str, MSigmaFit]]:
    """Compute every realism metric.

    Returns:
        (metrics dict with the names of the ``experiments.realism`` contract, the two M-sigma fits
        ``{"pure": ..., "contaminated": ...}``).
    """
    z = sets.z
    pure_fit = fit_msigma(sets.pure_train.log_m, velocity_dispersion(sets.pure_train), z)
    cont_fit = fit_msigma(sets.cylinder_train.log_m, velocity_dispersion(sets.cylinder_train), z)
    cyl = sets.cylinder_train
    near = np.abs(cyl.log_m - 14.2) < 0.1
    edges = np.round(np.arange(13.375, 15.626, 0.25), 3)
    fractions = interloper_fraction_by_mass(cyl, edges)
    at14 = next(f["fraction"] for f in fractions if f["lo"] <= 14.0 < f["hi"])
    pure_mass, cont_mass = _mass_scatter(pure_fit, sets.pure_test), _mass_scatter(
        cont_fit, sets.cylinder_test)
    metrics = {
        "msigma_pure_slope": pure_fit.slope,
        "msigma_pure_sigma15_kms": pure_fit.sigma15,
        "log_sigma_scatter_dex": pure_fit.scatter_dex,
        "median_richness_at_14p2": float(np.median(cyl.clusters["n_members"][near])),
        "interloper_fraction_by_mass": fractions,
        "interloper_fraction_at_14p0": at14,
        "msigma_contaminated_slope": cont_fit.slope,
        "msigma_contaminated_sigma15_kms": cont_fit.sigma15,
        "msigma_pure_mass_scatter_dex": pure_mass,
        "msigma_contaminated_mass_scatter_dex": cont_mass,
        "msigma_contaminated_over_pure_scatter": cont_mass / pure_mass,
    }
    return metrics, {"pure": pure_fit, "contaminated": cont_fit}


def in_band(name: str, value: float) -> bool:
    """Whether ``value`` lies in the band of metric ``name``."""
    lo, hi = REALISM_BANDS[name]
    return (lo is None or value >= lo) and (hi is None or value <= hi)
