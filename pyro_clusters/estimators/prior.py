"""Change the prior of a posterior estimator.

p_new(theta | x) ∝ p(theta | x) p_new(theta) / p(theta).

Estimators are trained on a flat prior in log M (papers/001 section 2.3: no abundance prior
imposed by the training set), so their posteriors answer "which mass, if every mass were equally
likely". A cluster drawn from the Universe (or from an HMF-distributed test set) has the halo
mass function as its prior, and its calibrated posterior is the flat-prior posterior times
HMF(theta) / flat(theta) -- Bayes' theorem, no retraining. Without it the flat-prior posterior
is Eddington-biased high on a steeply falling mass function and miscalibrated there.

:class:`PriorReweighted` does this by sampling-importance-resampling: it draws
``oversample x n`` posterior samples from the wrapped estimator, weights each by the density
ratio and resamples ``n`` of them with replacement. The effective sample size is reported per
call in ``last_ess`` (the ratio varies slowly across a posterior, so it stays close to the
number of draws).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from pyro_clusters.data.clusters import ClusterSet
from pyro_clusters.estimators.base import Estimator

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


class PriorReweighted(Estimator):
    """An estimator's posterior under another prior (see module docstring).

    Args:
        base: the fitted estimator (trained with prior ``old_density``).
        new_density: density of the new prior in log10 M (vectorised; 0 outside its support),
            e.g. ``HaloMassFunctionSampler(...).density``.
        old_density: density of the training prior (default: flat, i.e. constant).
        oversample: base draws per returned draw.
        name: estimator name (default: the base's).
    """

    def __init__(self, base: Estimator, new_density: Callable[[np.ndarray], np.ndarray],
                 old_density: Callable[[np.ndarray], np.ndarray] | None = None,
                 oversample: int = 4, name: str | None = None):
        if oversample < 1:
            raise ValueError("oversample must be >= 1")
        self.base, self.new_density, self.old_density = base, new_density, old_density
        self.oversample = oversample
        self.name = name or base.name
        self.last_ess: np.ndarray | None = None

    def fit(self, train: ClusterSet, val: ClusterSet | None = None) -> PriorReweighted:
        """Fit the wrapped estimator (the prior change itself has nothing to fit)."""
        self.base.fit(train, val)
        return self

    def _weights(self, draws: np.ndarray) -> np.ndarray:
        w = np.asarray(self.new_density(draws), dtype=np.float64)
        if self.old_density is not None:
            w = w / np.asarray(self.old_density(draws), dtype=np.float64)
        return w

    def sample(self, clusters: ClusterSet, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draws from the reweighted posterior, shape (n_clusters, n).

        Rows whose draws all fall outside the new prior's support (a posterior far in the tail
        of the new prior) are redrawn with 16x and then 256x more base samples before giving
        up with an error.
        """
        draws = self.base.sample(clusters, self.oversample * n, rng)
        w = self._weights(draws)
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
                self.last_ess = ess
                return out
        raise ValueError(f"{todo.size} cluster(s) (first: index {todo[0]}) have no posterior "
                         "mass inside the new prior's support even with 256x more draws")

    def save(self, path: str | os.PathLike) -> None:
        """Save the wrapped estimator (the prior is code, rebuilt by the caller)."""
        self.base.save(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> PriorReweighted:
        """Not available: load the base estimator and wrap it with the prior again."""
        raise NotImplementedError("load the base estimator and wrap it: PriorReweighted(base, "
                                  "HaloMassFunctionSampler(...).density)")
