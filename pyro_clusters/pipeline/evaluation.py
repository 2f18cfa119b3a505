"""Evaluation of a trained estimator on test clusters: posteriors, robustness, drift.

:func:`posterior_of` samples an estimator on a test set into
:class:`~pyro_clusters.diagnostics.PosteriorSamples` (timed per cluster) for
:func:`~pyro_clusters.diagnostics.report.write_report`; :func:`robustness` measures the
subsampled mass drift (Ho et al. 2019, arXiv:1902.05136, eq. 14) and the shift under 100 km/s
velocity errors; :func:`richness_drift` the one drift protocol every experiment quotes (does
the estimator read the galaxy count?). The report sections that present them are in
:mod:`~pyro_clusters.pipeline.sections`.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from pyro_clusters.data.clusters import ClusterSet
from pyro_clusters.diagnostics import (
    PosteriorSamples,
    subsampling_drift,
    velocity_error_shift,
)

__all__ = ["DRIFT_RATES", "announce", "posterior_of", "richness_drift", "robustness"]

#: galaxy sampling rates of the richness check (:func:`richness_drift`)
DRIFT_RATES = (0.5, 0.7)


def announce(message: str, enabled: bool = True) -> None:
    """A one-line note of what a run does next, on stderr beside the progress bars.

    For the steps that have no progress bar (evaluation, reports), so that a run is never
    silent for long. ``enabled``: the run's ``progress`` setting.
    """
    if enabled:
        print(message, file=sys.stderr, flush=True)


def posterior_of(estimator, test: ClusterSet, n_draws: int, rng: np.random.Generator,
                 train_seconds: float | None, name: str | None = None,
                 info: dict | None = None) -> PosteriorSamples:
    """Sample an estimator on the test set, timing inference per cluster.

    ``info``, if given, receives what the call learned besides the draws
    (:meth:`~pyro_clusters.estimators.base.Estimator.sample_with_info`).
    """
    t0 = time.perf_counter()
    result = estimator.sample_with_info(test, n_draws, rng)
    ms = 1e3 * (time.perf_counter() - t0) / len(test)
    draws = result.draws
    if info is not None:
        info.update(result.info)
    meta = {"n_gal": test.n_gal}
    if "n_members" in test.clusters:
        meta["n_members"] = test.clusters["n_members"]
    return PosteriorSamples(draws, test.log_m, meta, name or estimator.label,
                            {"train_seconds": train_seconds, "infer_ms_per_cluster": ms})


def robustness(estimator, test: ClusterSet, rng: np.random.Generator, n_clusters: int,
               n_repeats: int) -> dict:
    """Subsampling drift (Ho et al. 2019 eq. 14) and 100 km/s velocity-error shift on a subset."""
    sub = test.select(np.sort(rng.choice(len(test), min(n_clusters, len(test)), replace=False)))
    drift = subsampling_drift(estimator, sub, rng, rates=np.round(np.arange(0.2, 1.01, 0.1), 2),
                              n_repeats=n_repeats)
    return {"n_clusters": len(sub), "subsampling": drift.to_dict(),
            "velocity_error_100kms": velocity_error_shift(estimator, sub, rng, 100.0)}


def richness_drift(estimator, test: ClusterSet, seed: int, n_clusters: int) -> dict:
    """How much an estimator reads the galaxy count: its subsampled mass drift.

    Measured on the first ``n_clusters`` of ``test`` (one rule, so that the ablation, the
    comparison and ``experiments.richness`` judge the same clusters): the mean change of the
    posterior median (Ho et al. 2019 eq. 14) when every cluster keeps a random fraction r of
    its galaxies, r in :data:`DRIFT_RATES`, two subsamplings per cluster, 200 draws, the
    generator ``[seed, 2]`` (the same numbers for the same model and clusters in every
    experiment). Blind to the count: about zero (an M-sigma fit: a few 0.01 dex, from the
    noisier dispersion); reading the mass off the count alone (N proportional to M):
    log10(r), -0.30 at r = 0.5.
    """
    clusters = test.select(np.arange(min(n_clusters, len(test))))
    d = subsampling_drift(estimator, clusters, np.random.default_rng([seed, 2]),
                          rates=np.array(DRIFT_RATES), n_repeats=2, n_draws=200)
    return {"n_clusters": len(clusters), "rates": list(DRIFT_RATES),
            "mean_dex": d.epsilon.mean(axis=1).tolist(), "median_dex": d.median.tolist()}
