"""Change the prior of a posterior estimator.

p_new(theta | x) ∝ p(theta | x) p_new(theta) / p(theta).

Estimators are trained on a flat prior in log M (Ho et al. 2019 section 2.3: no abundance prior
imposed by the training set), so their posteriors answer "which mass, if every mass were equally
likely". A cluster drawn from the Universe (or from an HMF-distributed test set) has the halo
mass function as its prior, and its calibrated posterior is the flat-prior posterior times
HMF(theta) / flat(theta) -- Bayes' theorem, no retraining. Without it the flat-prior posterior
is Eddington-biased high on a steeply falling mass function and miscalibrated there.

:class:`PriorReweighted` does this by sampling-importance-resampling: it draws
``oversample x n`` posterior samples from the wrapped estimator, weights each by the density
ratio and resamples ``n`` of them with replacement. The effective sample size of each cluster
is returned by :meth:`PriorReweighted.sample_with_info` (the ratio varies slowly across a
posterior, so it stays close to the number of draws).

Saved, it is the base estimator's directory under ``base/`` plus the priors in ``model.json``
(the package's flat and HMF priors; a prior given as a bare function cannot be saved).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pyro_clusters.data.clusters import ClusterSet
from pyro_clusters.estimators.base import Estimator, SampleResult, Splits

__all__ = ["PriorReweighted", "resample_weighted"]


def resample_weighted(draws: np.ndarray, weights: np.ndarray, n: int,
                      rng: np.random.Generator) -> np.ndarray:
    """Resample ``n`` draws per row with probability ∝ weights (vectorised over rows).

    Args:
        draws: (n_rows, m) samples.
        weights: (n_rows, m) non-negative weights; each row needs a positive sum.
        n: draws to return per row.
        rng: random generator.

    Returns:
        (n_rows, n) resampled draws.
    """
    total = weights.sum(axis=1, keepdims=True)
    if np.any(total <= 0) or not np.all(np.isfinite(total)):
        bad = int(np.flatnonzero(~(total[:, 0] > 0))[0]) if np.any(~(total[:, 0] > 0)) else -1
        raise ValueError(f"row {bad}: the new prior gives zero weight to every posterior draw "
                         "(the posterior lies outside the new prior's support)")
    rows, m = draws.shape
    # One searchsorted over all rows: row k's normalised CDF is offset by k.
    cdf = np.cumsum(weights / total, axis=1) + np.arange(rows)[:, None]
    cdf[:, -1] = np.arange(rows) + 1.0
    u = rng.random((rows, n)) + np.arange(rows)[:, None]
    idx = np.searchsorted(cdf.ravel(), u.ravel()).reshape(rows, n)
    idx = np.minimum(idx, (np.arange(rows)[:, None] + 1) * m - 1)
    return draws.ravel()[idx]


def _density(prior: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    """A prior object's ``density`` method, or the callable itself."""
    if prior is None:
        return None
    return prior.density if hasattr(prior, "density") else prior


def _prior_dict(prior: Any) -> dict | None:
    if prior is None:
        return None
    if not hasattr(prior, "to_dict"):
        raise ValueError("a prior given as a bare function cannot be saved; pass a "
                         "FlatLogMassPrior or HaloMassFunctionSampler")
    return prior.to_dict()


def _prior_from_dict(d: dict | None):
    from pyro_clusters.simulator.priors import make_sampler

    return None if d is None else make_sampler(d["kind"], d["lo"], d["hi"],
                                               *([d["z"]] if "z" in d else []))


class PriorReweighted(Estimator):
    """An estimator's posterior under another prior (see module docstring).

    Args:
        base: the fitted estimator (trained with prior ``old_prior``).
        new_prior: the new prior: an object with a vectorised ``density(log10 M)`` that is 0
            outside its support (``HaloMassFunctionSampler(...)``), or such a function.
        old_prior: the training prior, likewise (default: flat, i.e. constant).
        oversample: base draws per returned draw.
        name: estimator name in reports (default: the base's).
    """

    name = "prior_reweighted"

    def __init__(self, base: Estimator, new_prior: Any, old_prior: Any = None,
                 oversample: int = 4, name: str | None = None):
        if oversample < 1:
            raise ValueError("oversample must be >= 1")
        self.base, self.new_prior, self.old_prior = base, new_prior, old_prior
        self.new_density, self.old_density = _density(new_prior), _density(old_prior)
        self.oversample = oversample
        self.display_name = name or base.name

    @property
    def label(self) -> str:
        """The name in reports (default: the base estimator's)."""
        return self.display_name

    def _fit(self, splits: Splits) -> None:
        """Fit the wrapped estimator (the prior change itself has nothing to fit)."""
        self.base.fit(splits)

    def _weights(self, draws: np.ndarray) -> np.ndarray:
        w = np.asarray(self.new_density(draws), dtype=np.float64)
        if self.old_density is not None:
            w = w / np.asarray(self.old_density(draws), dtype=np.float64)
        return w

    def sample(self, clusters: ClusterSet, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draws from the reweighted posterior, shape (n_clusters, n)."""
        return self.sample_with_info(clusters, n, rng).draws

    def sample_with_info(self, clusters: ClusterSet, n: int, rng: np.random.Generator
                         ) -> SampleResult:
        """Draws (n_clusters, n) and what the resampling learned.

        ``info["ess"]`` is the effective sample size per cluster, ``"zero_weight_fraction"``
        the share of the base's first draws that the new prior rejects (outside its support),
        over all clusters, and ``"zero_weight_fraction_per_cluster"`` the same share for
        each cluster, (n_clusters,).

        Rows whose draws all fall outside the new prior's support (a posterior far in the tail
        of the new prior) are redrawn with 16x and then 256x more base samples before giving
        up with an error.
        """
        draws = self.base.sample(clusters, self.oversample * n, rng)
        w = self._weights(draws)
        zero_each = np.mean(w <= 0, axis=1)
        zero = float(np.mean(w <= 0))
        out = np.empty((len(clusters), n))
        ess = np.empty(len(clusters))
        todo = np.arange(len(clusters))
        for factor in (1, 16, 256):
            if factor > 1:
                draws = self.base.sample(clusters.select(todo), factor * self.oversample * n, rng)
                w = self._weights(draws)
            ok = w.sum(axis=1) > 0
            if ok.any():
                out[todo[ok]] = resample_weighted(draws[ok], w[ok], n, rng)
                ess[todo[ok]] = w[ok].sum(1) ** 2 / (w[ok] ** 2).sum(1)
            todo = todo[~ok]
            if todo.size == 0:
                return SampleResult(out, {"ess": ess, "zero_weight_fraction": zero,
                                          "zero_weight_fraction_per_cluster": zero_each})
        raise ValueError(f"{todo.size} cluster(s) (first: index {todo[0]}) have no posterior "
                         "mass inside the new prior's support even with 256x more draws")

    # -- persistence: model.json (the priors) + base/ -------------------------------------
    def _state(self) -> dict:
        return {"new_prior": _prior_dict(self.new_prior),
                "old_prior": _prior_dict(self.old_prior), "oversample": self.oversample,
                "display_name": self.display_name}

    def _write_files(self, path: Path) -> None:
        self.base.save(path / "base")

    @classmethod
    def _from_config(cls, config, meta: dict, path: Path, device: str | None
                     ) -> PriorReweighted:
        from pyro_clusters.estimators.registry import load

        return cls(load(path / "base", device), _prior_from_dict(meta["new_prior"]),
                   _prior_from_dict(meta["old_prior"]), meta["oversample"],
                   meta["display_name"])
