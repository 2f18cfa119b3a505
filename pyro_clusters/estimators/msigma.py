"""The M-sigma relation as a posterior estimator (``msigma``).

Papers/001 section 4.1 and papers/002 eq. 1: sigma_v of each cluster (unbiased standard
deviation, papers/001 eq. 6, or the biweight scale of Beers, Flynn & Gebhardt 1990 as a robust
option), log10 sigma = A log10(E(z) M / 1e15) + B fitted by least squares on training clusters
above a mass cut (10^14.5 h^-1 Msun in papers/001; extrapolated below), inverted for log M.
The posterior is Gaussian about the inverted relation with the standard deviation of
log M_pred - log M_true over the whole training set (not only above the cut, so that its
coverage holds across the mass range).

Fallbacks: with a galaxy selection (``galaxies``), a cluster with fewer than two selected galaxies
uses all of its galaxies; a cluster with fewer than two galaxies at all has no dispersion and
its posterior is the training set's log-mass distribution, N(mean, std) of the training truths.
It never returns NaN.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from pyro_clusters.baselines.msigma import MSigmaFit, fit_msigma, velocity_dispersion
from pyro_clusters.data.clusters import ClusterSet
from pyro_clusters.estimators.base import Estimator

__all__ = ["MSigmaConfig", "MSigmaEstimator", "biweight_dispersion", "fit_on_validation"]


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


@dataclass(frozen=True)
class MSigmaConfig:
    """Configuration of the M-sigma estimator.

    Attributes:
        z: redshift of E(z) in the relation.
        mass_cut: fit only training clusters with log10 M >= mass_cut (papers/001: 14.5).
        dispersion: ``"std"`` (papers/001 eq. 6) or ``"biweight"`` (robust).
        galaxies: which galaxies measure sigma: ``"all"`` observed galaxies
            (``msigma_contaminated`` in the cylinder setup), ``"members"`` (true members, the
            oracle ``msigma_pure``), or the name of a galaxy column holding a selection -- a
            boolean, or a probability such as the classifier's ``p_member`` compared with
            ``select_threshold`` (papers/002 section 4.2: the baseline on ML-selected members).
            A cluster with fewer than two selected galaxies uses all of its galaxies.
        select_threshold: probability above which a galaxy counts as selected.
    """

    z: float = 0.117
    mass_cut: float = 14.5
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


class MSigmaEstimator(Estimator):
    """Gaussian posterior about the inverted M-sigma relation (see module docstring)."""

    name = "msigma"

    def __init__(self, config: MSigmaConfig | None = None):
        self.config = config or MSigmaConfig()
        self.fit_: MSigmaFit | None = None
        self.scatter_dex: float | None = None
        self.fallback_: tuple[float, float] | None = None

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

    def fit(self, train: ClusterSet, val: ClusterSet | None = None) -> MSigmaEstimator:
        """Fit the relation on ``train`` (``val`` is not needed)."""
        sigma = self._sigma(train)
        self.fit_ = fit_msigma(train.log_m, sigma, self.config.z, self.config.mass_cut)
        self.fallback_ = (float(train.log_m.mean()), float(train.log_m.std()))
        with np.errstate(divide="ignore", invalid="ignore"):
            pred = self.fit_.predict_log_mass(sigma)
        ok = np.isfinite(pred)
        self.scatter_dex = float(np.std(pred[ok] - train.log_m[ok], ddof=1))
        return self

    def sample(self, clusters: ClusterSet, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draws from N(log M_pred, scatter) per cluster, shape (len(clusters), n)."""
        pred, defined = self._predict(clusters)
        width = np.where(defined, self.scatter_dex, self.fallback_[1])
        return pred[:, None] + width[:, None] * rng.standard_normal((len(clusters), n))

    def save(self, path: str | os.PathLike) -> None:
        """Write config and fitted parameters as JSON."""
        if self.fit_ is None:
            raise RuntimeError("fit the estimator before saving it")
        Path(path).write_text(json.dumps({
            "estimator": self.name, "config": asdict(self.config), "fit": asdict(self.fit_),
            "scatter_dex": self.scatter_dex, "fallback": list(self.fallback_),
        }, indent=2))

    @classmethod
    def load(cls, path: str | os.PathLike) -> MSigmaEstimator:
        """Restore an estimator written by :meth:`save`."""
        data = json.loads(Path(path).read_text())
        if data.get("estimator") != cls.name:
            raise ValueError(f"{path} holds a {data.get('estimator')!r} model, not {cls.name!r}")
        est = cls(MSigmaConfig(**data["config"]))
        est.fit_ = MSigmaFit(**data["fit"])
        est.scatter_dex = float(data["scatter_dex"])
        est.fallback_ = tuple(data["fallback"])
        return est


def fit_on_validation(train: ClusterSet, val: ClusterSet, config: MSigmaConfig,
                      cuts: tuple[float, ...] = (13.5, 14.0, 14.5)
                      ) -> tuple[MSigmaEstimator, dict]:
    """Fit the relation with each mass cut and keep the one best on validation clusters.

    In the cylinder setup the +-v_cut window clips the velocity tails of massive clusters and
    flattens the relation, so fitting above 10^14.5 and extrapolating (papers/001) can be far
    off at low mass; the cut is a hyper-parameter, chosen here by the scatter of
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
