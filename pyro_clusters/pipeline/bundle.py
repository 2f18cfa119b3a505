r"""Training a model bundle for real clusters (``pyro-clusters train``).

:func:`train_bundle` simulates (or reads) flat-prior cylinder clusters, runs the cylinder
recipe (:func:`~pyro_clusters.pipeline.cylinder.train_cylinder`: classifier, M-sigma on its
members, NPE) and measures the NPE on held-out clusters; the result is a
:class:`~pyro_clusters.realfield.bundle.CylinderModel`, which ``save`` writes and ``infer``
loads. The shipped bundles and the commands that made them:
:mod:`pyro_clusters.realfield.bundle`.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pyro_clusters import __version__
from pyro_clusters.data.clusters import ClusterSet
from pyro_clusters.data.dataset_dir import read_datasets
from pyro_clusters.diagnostics.posterior import PosteriorSamples
from pyro_clusters.diagnostics.report import evaluate
from pyro_clusters.pipeline.cylinder import train_cylinder
from pyro_clusters.pipeline.sizes import RunSize, run_size
from pyro_clusters.realfield.bundle import (
    AMORTISED_GLOBALS,
    AMORTISED_NPE_GLOBALS,
    RICHNESS_PERCENTILES,
    CylinderModel,
)
from pyro_clusters.simulator.conditions import ObservingConditions, simulate_conditions
from pyro_clusters.simulator.config import SimulatorConfig
from pyro_clusters.simulator.core import simulate_selected
from pyro_clusters.simulator.priors import FlatLogMassPrior

if TYPE_CHECKING:
    from pyro_clusters.membership.classifier import MembershipClassifier

__all__ = ["train_bundle"]


def _bundle_sets(config: SimulatorConfig, run: RunSize, size: str, rng: np.random.Generator,
                 data: Path | None, conditions: ObservingConditions | None, workers: int
                 ) -> tuple[ClusterSet, ClusterSet, ClusterSet, SimulatorConfig]:
    """Training, validation and test clusters of a bundle (flat prior), and the config.

    Simulated at ``config`` (over ``conditions`` for an amortised bundle), or read from a
    catalogue's cylinder datasets, whose redshift, aperture, window and N_min then replace
    ``config``'s.
    """
    sizes = (run.n_train, run.n_val, run.n_test)
    prior = FlatLogMassPrior()
    if conditions is not None:
        train, val, test = (simulate_conditions(n, prior, config, conditions, rng, workers)
                            for n in sizes)
        return train, val, test, config
    if data is None:
        train, val, test = (simulate_selected(n, prior, config, rng)[0] for n in sizes)
        return train, val, test, config
    caps = None if size == "full" else dict(zip(("train", "val", "test_flat"), sizes,
                                                strict=True))
    sets = read_datasets(data, "cylinder", rng, caps, splits=("train", "val", "test_flat"))
    a = sets["train"].attrs
    config = config.replace(z=float(a["z"]), observation=replace(
        config.observation, aperture=float(a["aperture"]), v_cut=float(a["v_cut"]),
        n_min=int(a["n_min"])))
    return sets["train"], sets["val"], sets["test_flat"], config


def _richness(clusters: ClusterSet) -> dict[str, float]:
    return {str(q): float(np.percentile(clusters.n_gal, q)) for q in RICHNESS_PERCENTILES}


def train_bundle(config: SimulatorConfig, size: str = "full", seed: int = 0,
                 device: str = "cpu", progress: bool = True, command: str | None = None,
                 data: Path | None = None, max_seconds: float | None = None,
                 conditions: ObservingConditions | None = None,
                 fresh: bool = False, workers: int = 1,
                 classifier: MembershipClassifier | None = None) -> CylinderModel:
    """Simulate training data for ``config`` and train classifier, M-sigma baseline and NPE.

    Training, validation and test clusters are drawn from the flat prior 13.5-15.5 in
    log10 M (Ho et al. 2019 section 2.3); the test clusters only measure the bundle's quality
    (scatter, bias and coverage, stored in ``info["test_metrics"]``). With ``data`` they are
    read instead from cylinder datasets made from an N-body catalogue
    (``pyro-clusters catalog``: train, val and the flat test views of the test
    halos), and the redshift, aperture, velocity window and N_min are the data's.

    Args:
        config: a cylinder-setup simulator configuration (redshift, aperture, v_cut, ...).
        size: one of the ``bundle`` sizes of :data:`~pyro_clusters.pipeline.sizes.SIZES`.
        seed: seed of simulation, weight initialisation and batch order.
        device: torch device.
        progress: progress bars while training.
        command: the command line, recorded in the bundle.
        data: directory of catalogue datasets (cylinder setup); None simulates.
        max_seconds: wall-clock budget of each network's training [s]; None (default) stops
            by epochs and patience only, so that the seed reproduces the bundle.
        conditions: train one amortised model over these observing conditions (redshift,
            survey depth, redshift errors; :mod:`pyro_clusters.simulator.conditions`)
            instead of at ``config``'s: the networks get the cluster redshift, the galaxy
            count and the background density (:data:`AMORTISED_GLOBALS`) as inputs, the
            NPE also the expected member and interloper counts
            (:data:`AMORTISED_NPE_GLOBALS`).
        fresh: train both networks on newly simulated clusters every epoch (as many as
            the training set; simulator only), so that they cannot overfit a fixed set.
        workers: processes simulating an amortised bundle's clusters (the clusters do not
            depend on it).
        classifier: a fitted membership classifier to use as it is (e.g. another bundle's,
            ``CylinderModel.load(DIR).classifier``), so that only the M-sigma baseline and
            the NPE are trained; it must take the same global inputs (amortised or not).
            The clusters simulated are the same as without it, so with the classifier of a
            bundle made with the same arguments the NPE trains exactly as it did there.

    Returns:
        the trained :class:`CylinderModel` (not yet saved).
    """
    if config.setup != "cylinder":
        raise ValueError("a bundle for real fields needs the cylinder setup (interlopers "
                         f"included), got setup={config.setup!r}")
    run = run_size("bundle", size, max_seconds)
    if fresh and data is not None:
        raise ValueError("fresh training clusters come from the simulator, not from --data")
    if conditions is not None and data is not None:
        raise ValueError("an amortised bundle is trained on the simulator, not on --data")
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    prior = FlatLogMassPrior()
    train, val, test, config = _bundle_sets(config, run, size, rng, data, conditions, workers)
    sim_seconds = time.perf_counter() - t0

    def simulate(r: np.random.Generator) -> ClusterSet:
        if conditions is not None:
            return simulate_conditions(len(train), prior, config, conditions, r, workers)
        return simulate_selected(len(train), prior, config, r)[0]

    amortised = conditions is not None
    fit = train_cylinder(train, val, run.train_config(seed, device, progress), config.z,
                         others=(test,), classifier=classifier,
                         classifier_globals=AMORTISED_GLOBALS if amortised else (),
                         npe_globals=AMORTISED_NPE_GLOBALS if amortised else (),
                         fresh=simulate if fresh else None)
    clf, msigma, cuts, npe = fit.classifier, fit.msigma, fit.mass_cut, fit.npe
    train, val, test = fit.annotated

    t1 = time.perf_counter()
    draws = npe.sample(test, 1000, rng)
    infer_ms = 1e3 * (time.perf_counter() - t1) / len(test)
    ev = evaluate(PosteriorSamples(draws, test.log_m, {"n_gal": test.n_gal}, "npe_deepsets"),
                  rng, n_bootstrap=0).metrics
    test_metrics = {k: ev[k] for k in ("scatter_dex", "bias_dex", "hpd_max_abs_dev",
                                       "tarp_max_abs_dev", "mean_posterior_std_dex")}
    test_metrics.update(n_test=len(test), infer_ms_per_cluster=infer_ms,
                        msigma_scatter_dex=float(np.std(msigma.predict(test) - test.log_m)))
    trained_on = {**npe.trained_on, "prior_range": [prior.lo, prior.hi],
                  "n_min": config.observation.n_min,
                  "richness": _richness(train)}
    if conditions is not None:
        trained_on.update(z=float(np.mean(conditions.z_range)), amortised=True,
                          z_range=list(conditions.z_range),
                          log_mstar_range=list(conditions.log_mstar_range),
                          velocity_error_range=list(conditions.velocity_error_range))
    info = {"command": command, "size": size, "seed": seed, "package_version": __version__,
            "simulator": config.to_dict(), "n_train": len(train), "n_val": len(val),
            "conditions": conditions.to_dict() if conditions is not None else None,
            "fresh": fresh, "classifier": "trained" if classifier is None else "given",
            "data": str(data) if data is not None else "simulator",
            "msigma_mass_cut": cuts, "simulation_seconds": sim_seconds,
            "train_seconds": {"classifier": clf.train_seconds, "npe": npe.train_seconds},
            "test_metrics": test_metrics}
    return CylinderModel(clf, npe, trained_on, info)
