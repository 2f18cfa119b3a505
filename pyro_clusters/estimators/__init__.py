"""Posterior estimators of log10 M200c behind one interface, built and loaded by name.

- :mod:`~pyro_clusters.estimators.base` -- the contract (``Estimator``, ``Splits``);
- :mod:`~pyro_clusters.estimators.neural` -- the training skeleton of every network;
- :mod:`~pyro_clusters.estimators.registry` -- ``register``, ``build``, ``load`` by name;
- one module per estimator: ``msigma``, ``npe_deepsets``, ``kde_image`` (``cnn_kde_slice``,
  ``mc_dropout``, ``nf_kde2d``), ``sbi_npe``, ``jeans_exact``; ``reweighted`` (an
  estimator's posterior under another prior).

Which galaxies are members (the classifier, the gapper, the caustic method) is not a mass
estimator: :mod:`pyro_clusters.membership`, built on the same training skeleton.

The torch-based estimators are imported on first use.
"""

from pyro_clusters.estimators import registry
from pyro_clusters.estimators.base import Estimator, SampleResult, Splits
from pyro_clusters.estimators.msigma import MSigmaConfig, MSigmaEstimator
from pyro_clusters.estimators.reweighted import PriorReweighted, resample_weighted

__all__ = ["Estimator", "MSigmaConfig", "MSigmaEstimator", "NPEConfig", "NPEDeepSets",
           "PriorReweighted", "SampleResult", "Splits", "registry", "resample_weighted"]


def __getattr__(name: str):
    if name in ("NPEConfig", "NPEDeepSets"):
        from pyro_clusters.estimators import npe_deepsets

        return getattr(npe_deepsets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
