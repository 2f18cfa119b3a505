"""Posterior estimators of log10 M200c behind one interface (:class:`Estimator`)."""

from pyro_clusters.estimators.base import Estimator
from pyro_clusters.estimators.msigma import MSigmaConfig, MSigmaEstimator

__all__ = ["Estimator", "MSigmaConfig", "MSigmaEstimator"]
