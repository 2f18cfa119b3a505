"""Posterior estimators of log10 M200c behind one interface (:class:`Estimator`).

``NPEDeepSets`` (torch, Pyro) is imported from :mod:`.npe_deepsets` on first use.
"""

from pyro_clusters.estimators.base import Estimator
from pyro_clusters.estimators.msigma import MSigmaConfig, MSigmaEstimator
from pyro_clusters.estimators.prior import PriorReweighted, resample_weighted

__all__ = ["Estimator", "MSigmaConfig", "MSigmaEstimator", "NPEConfig", "NPEDeepSets",
           "PriorReweighted", "resample_weighted"]


def __getattr__(name: str):
    if name in ("NPEConfig", "NPEDeepSets"):
        from pyro_clusters.estimators import npe_deepsets

        return getattr(npe_deepsets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
