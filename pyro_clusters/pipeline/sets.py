"""The clusters a run trains and is tested on: simulated, read from a catalogue, or fresh.

:func:`get_sets` gives the four sets every experiment uses (training and validation on the
flat prior, the test set on the halo mass function, a flat test set), simulated or read from a
dataset directory (``pyro-clusters catalog``); :func:`fresh_clusters` gives new training
clusters every epoch (``Splits.fresh``). Masses are log10(M200c / h^-1 Msun).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pyro_clusters.data.clusters import ClusterSet
from pyro_clusters.defaults import TEST_RANGE, setup_of
from pyro_clusters.simulator import (
    FlatLogMassPrior,
    HaloMassFunctionSampler,
    SimulatorConfig,
    simulate_selected,
)
from pyro_clusters.simulator.conditions import ObservingConditions, simulate_conditions
from pyro_clusters.simulator.config import SUPPORTED_LOG_MASS_RANGE

__all__ = ["TrainTestSets", "fresh_clusters", "get_sets", "load_sets", "simulate_sets"]


@dataclass
class TrainTestSets:
    """Training and validation clusters (flat prior), the HMF test set and a flat test set.

    Attributes:
        train, val: flat prior over the training range.
        test: halo mass function over ``hmf.lo``-``hmf.hi`` (the papers' test sets).
        test_flat: flat prior (the calibration check with the training prior).
        hmf: the test set's theta distribution (its ``density`` is the test population's prior).
        seconds: simulation wall time.
    """

    train: ClusterSet
    val: ClusterSet
    test: ClusterSet
    test_flat: ClusterSet
    hmf: HaloMassFunctionSampler
    seconds: float


def simulate_sets(config: SimulatorConfig, n_train: int, n_val: int, n_test: int,
                  rng: np.random.Generator, test_range: tuple[float, float] = TEST_RANGE,
                  n_test_flat: int | None = None) -> TrainTestSets:
    """Simulate the four sets (``n_test_flat`` defaults to half of ``n_test``)."""
    t0 = time.perf_counter()
    flat = FlatLogMassPrior()
    hmf = HaloMassFunctionSampler(*test_range, z=config.z)
    train = simulate_selected(n_train, flat, config, rng)[0]
    val = simulate_selected(n_val, flat, config, rng)[0]
    test = simulate_selected(n_test, hmf, config, rng)[0]
    test_flat = simulate_selected(n_test_flat or max(n_test // 2, 2), flat, config, rng)[0]
    return TrainTestSets(train, val, test, test_flat, hmf, time.perf_counter() - t0)


def load_sets(data: Path, setup: str, rng: np.random.Generator,
              sizes: tuple[int, int, int] | None = None) -> TrainTestSets:
    """Read the four sets of a dataset directory instead of simulating them.

    ``python -m pyro_clusters catalog --out DIR`` writes DIR/train.h5, val.h5, test.h5 and
    test_flat.h5 (flat, flat, natural mass function, flat). ``data`` may be that directory or
    one holding ``idealized/`` and ``cylinder/`` such directories
    (:func:`pyro_clusters.data.dataset_dir.read_datasets`).

    Args:
        data: the directory.
        setup: the experiment's setup; every file must have been made for it.
        rng: draws the random subsets when ``sizes`` caps a set.
        sizes: at most (train, val, test) clusters (test_flat: half of test); None keeps all.

    Returns:
        The sets; ``hmf`` is the Tinker et al. 2008 mass function (package cosmology) over the
        test set's mass range, the population prior of the natural test set.
    """
    from pyro_clusters.data.dataset_dir import read_datasets

    t0 = time.perf_counter()
    caps = None
    if sizes is not None:
        caps = dict(zip(("train", "val", "test", "test_flat"),
                        (*sizes, max(sizes[2] // 2, 2)), strict=True))
    sets = read_datasets(data, setup, rng, caps)
    test = sets["test"]
    lo_ok, hi_ok = SUPPORTED_LOG_MASS_RANGE
    lo = max(float(test.log_m.min()), lo_ok)
    hi = min(max(float(test.log_m.max()), lo + 0.1), hi_ok)
    hmf = HaloMassFunctionSampler(lo, hi, z=setup_of(test.attrs)["z"])
    return TrainTestSets(sets["train"], sets["val"], test, sets["test_flat"], hmf,
                    time.perf_counter() - t0)


def get_sets(config: SimulatorConfig, n_train: int, n_val: int, n_test: int,
             rng: np.random.Generator, data: Path | None = None, cap: bool = True
             ) -> TrainTestSets:
    """Simulate the sets, or read them from ``data`` when given.

    Read sets are capped at the sizes if ``cap`` (full-size runs take every cluster).
    """
    if data is None:
        return simulate_sets(config, n_train, n_val, n_test, rng)
    return load_sets(data, config.setup, rng, (n_train, n_val, n_test) if cap else None)


def fresh_clusters(config: SimulatorConfig, n: int, data: Path | None = None,
                   depth_range: tuple[float, float] | None = None):
    """``Splits.fresh`` for a run: ``n`` new flat-prior clusters of ``config`` per epoch.

    ``depth_range``: survey depth, log10(M* / h^-1 Msun), drawn per chunk of clusters
    uniformly in this range (:func:`~pyro_clusters.simulator.conditions.simulate_conditions`,
    redshift and redshift errors those of ``config``) instead of ``config``'s: the
    richness-mass normalisation becomes a nuisance the network cannot read the mass from.

    Raises:
        ValueError: with ``data`` (catalogue sets): fresh clusters need the simulator.
    """
    if data is not None:
        raise ValueError("--fresh simulates new training clusters every epoch; it cannot be "
                         "combined with --data")
    prior = FlatLogMassPrior()
    if depth_range is not None:
        error = config.observation.velocity_error_kms
        conditions = ObservingConditions(z_range=(config.z, config.z),
                                         log_mstar_range=tuple(depth_range),
                                         velocity_error_range=(error, error))

        def fresh(rng: np.random.Generator) -> ClusterSet:
            return simulate_conditions(n, prior, config, conditions, rng)
    else:
        def fresh(rng: np.random.Generator) -> ClusterSet:
            return simulate_selected(n, prior, config, rng)[0]

    return fresh
