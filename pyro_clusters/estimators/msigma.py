"""The M-sigma relation and the ``msigma`` estimator built on it.

Ho et al. 2019 (ApJ 887, 25; arXiv:1902.05950) eq. 5 and section 4.1, Wang, Thiele & Ho 2026
(arXiv:2606.12938) eq. 1:

    sigma_v = sigma_15 [h(z) M200c / 10^15 Msun]^alpha,

fitted by ordinary least squares in log space, log10 sigma = A log10(E(z) M / 10^15) + B, on
clusters above a mass cut (10^14.5 h^-1 Msun in Ho et al. 2019; extrapolated below), with M in
h^-1 Msun (so that h(z) M[Msun] = E(z) M[h^-1 Msun]); sigma_v is the unbiased standard
deviation of the line-of-sight velocities (eq. 6) or the biweight scale (Beers, Flynn &
Gebhardt 1990) as a robust option (:mod:`pyro_clusters.features.dispersion`). The log-normal
scatter of the relation is the standard deviation of log10(sigma / sigma_pred) above the cut
(eq. 7). :func:`invert_msigma` gives log M from sigma in numpy or torch.

The ``msigma`` estimator inverts the relation for log M; its posterior is Gaussian about that
point with the standard deviation of log M_pred - log M_true over the whole training set (not
only above the cut, so that its coverage holds across the mass range). With
``mass_cut="auto"`` the cut is chosen among (13.5, 14.0, 14.5) by the scatter on validation
clusters (:func:`fit_on_validation`): in the cylinder setup the +-v_cut window clips the
velocity tails of massive clusters and flattens the relation, so a fixed cut can be far off.

Fallbacks: with a galaxy selection (``galaxies``), a cluster with fewer than two selected galaxies
uses all of its galaxies; a cluster with fewer than two galaxies at all has no dispersion and
its posterior is the training set's log-mass distribution, N(mean, std) of the training truths.
It never returns NaN.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from pyro_clusters import defaults
from pyro_clusters.cosmology import get_cosmology
from pyro_clusters.data.clusters import ClusterSet
from pyro_clusters.estimators.base import Estimator, Splits
from pyro_clusters.features.dispersion import biweight_dispersion, velocity_dispersion

__all__ = ["AUTO_CUTS", "MSigmaConfig", "MSigmaEstimator", "MSigmaFit", "fit_msigma",
           "fit_on_validation", "invert_msigma"]

#: candidate mass cuts of ``mass_cut="auto"``, log10(M200c / h^-1 Msun).
AUTO_CUTS = (13.5, 14.0, 14.5)


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

    @property
    def log_ez(self) -> float:
        """log10 E(z) at the relation's redshift (package cosmology)."""
        return float(np.log10(get_cosmology().Ez(self.z)))

    def predict_log_sigma(self, log_m: np.ndarray) -> np.ndarray:
        """log10 sigma [km/s] at log10(M200c / h^-1 Msun)."""
        return self.slope * (np.asarray(log_m) + self.log_ez - 15.0) + self.intercept

    def predict_log_mass(self, sigma: np.ndarray) -> np.ndarray:
        """Inverse relation: log10(M200c / h^-1 Msun) from sigma [km/s] (numpy)."""
        return invert_msigma(np.log10(sigma), self.slope, self.intercept, self.log_ez)


def invert_msigma(log_sigma, slope, intercept, log_ez):
    """log10(M200c / h^-1 Msun) = (log10 sigma - B) / A + 15 - log10 E(z).

    The one inversion of the relation for both backends: numpy arrays (:class:`MSigmaFit`)
    and torch tensors (the sbi density estimator of ``npe_deepsets_builder``) alike.
    """
    return (log_sigma - intercept) / slope + 15.0 - log_ez


def fit_msigma(log_m: np.ndarray, sigma: np.ndarray, z: float, mass_cut: float = 14.5
               ) -> MSigmaFit:
    """Least-squares fit of log10 sigma on log10(E(z) M / 1e15) above ``mass_cut``.

    Args:
        log_m: true log10(M200c / h^-1 Msun), (n,).
        sigma: velocity dispersions [km/s], (n,); non-finite entries are skipped.
        z: redshift.
        mass_cut: only clusters with log_m >= mass_cut are fitted (Ho et al. 2019: 14.5).

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


@dataclass(frozen=True)
class MSigmaConfig:
    """Configuration of the M-sigma estimator.

    Attributes:
        z: redshift of E(z) in the relation.
        mass_cut: fit only training clusters with log10 M >= mass_cut (Ho et al. 2019: 14.5),
            or ``"auto"``: the cut of :data:`AUTO_CUTS` with the smallest scatter on the
            validation clusters.
        dispersion: ``"std"`` (Ho et al. 2019 eq. 6) or ``"biweight"`` (robust).
        galaxies: which galaxies measure sigma: ``"all"`` observed galaxies
            (``msigma_contaminated`` in the cylinder setup), ``"members"`` (true members, the
            oracle ``msigma_pure``), or the name of a galaxy column holding a selection -- a
            boolean, or a probability such as the classifier's ``p_member`` compared with
            ``select_threshold`` (Wang, Thiele & Ho 2026 section 4.2: the baseline on ML-selected
            members). A cluster with fewer than two selected galaxies uses all of its galaxies.
        select_threshold: probability above which a galaxy counts as selected.
    """

    z: float = defaults.Z
    mass_cut: float | Literal["auto"] = 14.5
    dispersion: Literal["std", "biweight"] = "std"
    galaxies: str = "all"
    select_threshold: float = 0.5

    def __post_init__(self) -> None:
        if self.dispersion not in ("std", "biweight"):
            raise ValueError(f"dispersion must be 'std' or 'biweight', got {self.dispersion!r}")
        if not self.galaxies:
            raise ValueError("galaxies must be 'all', 'members' or a galaxy column name")
        if not 0.0 < self.select_threshold < 1.0:
            raise ValueError("select_threshold must be in (0, 1)")
        if isinstance(self.mass_cut, str) and self.mass_cut != "auto":
            raise ValueError(f"mass_cut must be a log10 mass or 'auto', got {self.mass_cut!r}")


class MSigmaEstimator(Estimator):
    """Gaussian posterior about the inverted M-sigma relation (see module docstring).

    Attributes (fitted):
        fit_: the relation.
        scatter_dex: posterior standard deviation [dex].
        fallback_: (mean, std) of the training log M, the posterior without a dispersion.
        cut_scores: with ``mass_cut="auto"``: validation scatter [dex] per candidate cut and
            the ``"chosen"`` cut; else None.
    """

    name = "msigma"
    config_class = MSigmaConfig
    format = "pyro_clusters.msigma/2"

    def __init__(self, config: MSigmaConfig | None = None):
        self.config = config or MSigmaConfig()
        self.fit_: MSigmaFit | None = None
        self.scatter_dex: float | None = None
        self.fallback_: tuple[float, float] | None = None
        self.cut_scores: dict | None = None

    @classmethod
    def configure(cls, train=None, msigma: MSigmaConfig | None = None) -> MSigmaConfig:
        """``msigma`` if given, else the default (nothing to train)."""
        return msigma if msigma is not None else MSigmaConfig()

    def _selection(self, clusters: ClusterSet) -> np.ndarray | None:
        """Boolean galaxy mask of the configured selection (None: all galaxies)."""
        name = self.config.galaxies
        if name == "all":
            return None
        column = "member" if name == "members" else name
        if column not in clusters.galaxies:
            raise ValueError(f"the M-sigma baseline selects galaxies by the column {column!r}, "
                             "which these clusters do not have (for classifier probabilities: "
                             "MembershipClassifier.annotate)")
        col = clusters.galaxies[column]
        return col > self.config.select_threshold if col.dtype.kind == "f" else col.astype(bool)

    def _sigma(self, clusters: ClusterSet) -> np.ndarray:
        sel = self._selection(clusters)
        if self.config.dispersion == "biweight":
            sigma_all = biweight_dispersion(clusters)
            sigma = sigma_all if sel is None else biweight_dispersion(clusters.filter_galaxies(sel))
        else:
            sigma_all = velocity_dispersion(clusters)
            sigma = sigma_all if sel is None else velocity_dispersion(clusters, sel)
        return np.where(np.isfinite(sigma), sigma, sigma_all)  # < 2 selected: all galaxies

    def _predict(self, clusters: ClusterSet) -> tuple[np.ndarray, np.ndarray]:
        """(point estimates with the fallback filled in, mask of clusters with a dispersion)."""
        if self.fit_ is None:
            raise RuntimeError("fit the estimator first")
        with np.errstate(divide="ignore", invalid="ignore"):
            pred = self.fit_.predict_log_mass(self._sigma(clusters))
        defined = np.isfinite(pred)
        return np.where(defined, pred, self.fallback_[0]), defined

    def predict(self, clusters: ClusterSet) -> np.ndarray:
        """Point estimate log10 M from the inverted relation (fallback mean where undefined)."""
        return self._predict(clusters)[0]

    def _fit(self, splits: Splits) -> None:
        """Fit the relation on the training clusters (validation: only for ``"auto"``)."""
        if self.config.mass_cut == "auto":
            best, self.cut_scores = fit_on_validation(
                splits.train, splits.require_val("msigma with mass_cut='auto'"), self.config)
            self.fit_, self.scatter_dex = best.fit_, best.scatter_dex
            self.fallback_ = best.fallback_
            return
        train = splits.train
        sigma = self._sigma(train)
        self.fit_ = fit_msigma(train.log_m, sigma, self.config.z, self.config.mass_cut)
        self.fallback_ = (float(train.log_m.mean()), float(train.log_m.std()))
        with np.errstate(divide="ignore", invalid="ignore"):
            pred = self.fit_.predict_log_mass(sigma)
        ok = np.isfinite(pred)
        self.scatter_dex = float(np.std(pred[ok] - train.log_m[ok], ddof=1))

    def sample(self, clusters: ClusterSet, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draws from N(log M_pred, scatter) per cluster, shape (len(clusters), n)."""
        pred, defined = self._predict(clusters)
        width = np.where(defined, self.scatter_dex, self.fallback_[1])
        return pred[:, None] + width[:, None] * rng.standard_normal((len(clusters), n))

    def log_prob(self, clusters: ClusterSet, grid: np.ndarray) -> np.ndarray:
        """Gaussian log-density of log10 M on a grid, (n_clusters, len(grid)) [per dex]."""
        pred, defined = self._predict(clusters)
        width = np.where(defined, self.scatter_dex, self.fallback_[1])[:, None]
        z = (np.asarray(grid, dtype=np.float64)[None, :] - pred[:, None]) / width
        return -0.5 * z * z - np.log(width * np.sqrt(2.0 * np.pi))

    def _require_fitted(self) -> None:
        if self.fit_ is None:
            raise RuntimeError("fit the estimator first")

    def _state(self) -> dict:
        return {"fit": asdict(self.fit_), "scatter_dex": self.scatter_dex,
                "fallback": list(self.fallback_), "cut_scores": self.cut_scores}

    def _restore(self, meta: dict, path: Path, device: str | None) -> None:
        self.fit_ = MSigmaFit(**meta["fit"])
        self.scatter_dex = float(meta["scatter_dex"])
        self.fallback_ = tuple(meta["fallback"])
        self.cut_scores = meta.get("cut_scores")


def fit_on_validation(train: ClusterSet, val: ClusterSet, config: MSigmaConfig,
                      cuts: tuple[float, ...] = AUTO_CUTS
                      ) -> tuple[MSigmaEstimator, dict]:
    """Fit the relation with each mass cut and keep the one best on validation clusters.

    In the cylinder setup the +-v_cut window clips the velocity tails of massive clusters and
    flattens the relation, so fitting above 10^14.5 and extrapolating (Ho et al. 2019) can be
    far off at low mass; the cut is a hyper-parameter, chosen here by the scatter of
    log M_pred - log M_true on ``val``.

    Args:
        train: clusters the relation is fitted on.
        val: clusters the cut is chosen on.
        config: everything but the mass cut.
        cuts: candidate mass cuts, log10(M200c / h^-1 Msun).

    Returns:
        (the estimator with the smallest validation scatter, {str(cut): scatter [dex],
        "chosen": cut}).
    """
    scores, fits = {}, {}
    for cut in cuts:
        est = MSigmaEstimator(replace(config, mass_cut=cut)).fit(train)
        fits[cut] = est
        scores[cut] = float(np.std(est.predict(val) - val.log_m))
    chosen = min(scores, key=scores.get)
    return fits[chosen], {**{str(k): v for k, v in scores.items()}, "chosen": chosen}
