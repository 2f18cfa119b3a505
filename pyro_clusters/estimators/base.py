"""The estimator contract shared by every posterior estimator (shared/DESIGN.md).

An estimator is fitted on training clusters and returns posterior draws of
theta = log10(M200c / h^-1 Msun) for any clusters:

    est = SomeEstimator(...).fit(train, val)
    draws = est.sample(clusters, n=1000, rng=np.random.default_rng(0))   # (n_clusters, n)
    est.save(path); same = SomeEstimator.load(path)

``save`` writes the fitted state plus the configuration that built it; ``load`` restores an
estimator whose seeded ``sample`` gives the same values.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod

import numpy as np

from pyro_clusters.data.clusters import ClusterSet

__all__ = ["Estimator"]


class Estimator(ABC):
    """Base class of posterior estimators of log10 M200c.

    Attributes:
        name: the estimator's name in metrics.json (``msigma``, ``npe_deepsets``, ...).
    """

    name: str = "estimator"

    @abstractmethod
    def fit(self, train: ClusterSet, val: ClusterSet | None = None) -> Estimator:
        """Fit on training clusters (and validation clusters where the method uses them)."""

    @abstractmethod
    def sample(self, clusters: ClusterSet, n: int, rng: np.random.Generator) -> np.ndarray:
        """Posterior draws of log10(M200c / h^-1 Msun), shape (len(clusters), n)."""

    @abstractmethod
    def save(self, path: str | os.PathLike) -> None:
        """Write the fitted state and its configuration to ``path``."""

    @classmethod
    @abstractmethod
    def load(cls, path: str | os.PathLike) -> Estimator:
        """Restore an estimator written by :meth:`save`."""
