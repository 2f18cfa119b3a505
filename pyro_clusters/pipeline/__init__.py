"""How a model is trained and evaluated: run sizes, the sets, the cylinder recipe, evaluation.

- :mod:`~pyro_clusters.pipeline.sizes` -- every run's sizes (clusters, epochs, patience,
  batch size) in one table;
- :mod:`~pyro_clusters.pipeline.sets` -- the training, validation and test clusters:
  simulated, read from a catalogue's datasets, or fresh every epoch;
- :mod:`~pyro_clusters.pipeline.cylinder` -- the cylinder recipe once: classifier ->
  members -> M-sigma -> NPE;
- :mod:`~pyro_clusters.pipeline.bundle` -- a model bundle for real clusters
  (``pyro-clusters train``);
- :mod:`~pyro_clusters.pipeline.evaluation` -- posteriors of a test set, robustness, the
  richness drift; :mod:`~pyro_clusters.pipeline.sections` -- their report sections;
- :mod:`~pyro_clusters.pipeline.options` -- the options every experiment takes.

Experiments (``python -m experiments.NAME``) and the ``train`` command are thin scripts over
these functions.
"""

from pyro_clusters.pipeline.bundle import train_bundle
from pyro_clusters.pipeline.cylinder import (
    CylinderFit,
    fit_member_baseline,
    npe_config,
    train_classifier,
    train_cylinder,
)
from pyro_clusters.pipeline.evaluation import (
    DRIFT_RATES,
    posterior_of,
    richness_drift,
    robustness,
)
from pyro_clusters.pipeline.sets import (
    TrainTestSets,
    fresh_clusters,
    get_sets,
    load_sets,
    simulate_sets,
)
from pyro_clusters.pipeline.sizes import SIZES, RunSize, run_size

__all__ = ["DRIFT_RATES", "SIZES", "CylinderFit", "TrainTestSets", "RunSize", "fit_member_baseline",
           "fresh_clusters", "get_sets", "load_sets", "npe_config", "posterior_of",
           "richness_drift", "robustness", "run_size", "simulate_sets", "train_bundle",
           "train_classifier", "train_cylinder"]
