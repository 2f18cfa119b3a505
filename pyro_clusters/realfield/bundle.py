r"""Trained model bundles for real clusters: train one, save and load it, the shipped default.

A real redshift survey is the cylinder setup (Ho et al. 2019 section 2.2, Wang, Thiele & Ho 2026
section 4): every galaxy within the aperture R_ap and the velocity window +-v_cut, interlopers
included. Inference on such a field needs three trained pieces, kept together in one directory:

- the Deep Sets membership classifier (Wang, Thiele & Ho 2026 section 4.2) that gives each galaxy
  its membership probability ``p_member``;
- the M-sigma baseline on classifier-selected members (p_member > 0.5), with its mass cut
  chosen on validation clusters (:func:`~pyro_clusters.estimators.msigma.fit_on_validation`);
- the Deep Sets NPE on the residual about that baseline, with ``p_member`` as a galaxy feature.

Layout of a bundle directory::

    bundle.json     format, trained_on (setup, z, aperture, v_cut, n_min, log-mass range,
                    richness percentiles), the command that made it, sizes, seed, training
                    seconds and the held-out test metrics
    classifier/     MembershipClassifier.save
    npe/            NPEDeepSets.save (its M-sigma baseline is npe/baseline/)

The package ships two bundles (``CylinderModel.load(NAME)``, ``--model NAME``). The default,
``pyro_clusters/models/cylinder_default`` (z = 0.117, R_ap = 1.6 h^-1 Mpc, v_cut = 2200 km/s,
depth 10^9.5 h^-1 Msun in stellar mass), made by::

    python -m pyro_clusters train --out pyro_clusters/models/cylinder_default

and ``amortised`` (``pyro_clusters/models/cylinder_amortised``: redshift 0.01-0.3, depth
10^7.5-10^11 -- 0.5 dex of margin beyond the validated 10^8-10^10.5 --, redshift errors
0-100 km/s, same aperture and window), made by::

    python -m experiments.amortised --fresh    # DIR/model is the bundle, validated on mocks

(the same call of :func:`train_bundle` as ``python -m pyro_clusters train --amortised --fresh``;
1 h 52 min on 2 CPU cores).

and a bundle for another redshift, aperture, velocity window or galaxy selection by, e.g.::

    python -m pyro_clusters train --z 0.03 --aperture 1.0 --v-cut 3000 --out models/z0.03
    python -m pyro_clusters train --config survey.json --incompleteness 0.3 --out models/mine

(``--config`` is a :class:`~pyro_clusters.simulator.config.SimulatorConfig` JSON, e.g. another
occupation for a deeper survey; about 20 minutes on 2 CPU cores at the default size.)
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pyro_clusters import __version__
from pyro_clusters.data.clusters import ClusterSet
from pyro_clusters.estimators import registry
from pyro_clusters.estimators.base import Splits
from pyro_clusters.estimators.msigma import MSigmaConfig, MSigmaEstimator, fit_on_validation
from pyro_clusters.estimators.npe_deepsets import HISTOGRAM_ENCODER
from pyro_clusters.simulator.conditions import ObservingConditions, simulate_conditions
from pyro_clusters.simulator.config import SimulatorConfig
from pyro_clusters.simulator.core import simulate_selected
from pyro_clusters.simulator.priors import FlatLogMassPrior
from pyro_clusters.training import RunSize

if TYPE_CHECKING:
    from pyro_clusters.estimators.membership.classifier import MembershipClassifier
    from pyro_clusters.estimators.npe_deepsets import NPEDeepSets

__all__ = ["AMORTISED_GLOBALS", "AMORTISED_NPE_GLOBALS", "FORMAT", "SHIPPED", "SIZES",
           "CylinderModel", "default_model_path", "shipped_model_path", "train_bundle"]

FORMAT = "pyro_clusters.cylinder_bundle/1"

#: "full" is what both shipped bundles were trained with; "tiny" is for the test suite; "gpu"
#: (twice the clusters per epoch in batches twice as large, to keep a GPU busy) is meant for
#: fresh training (``fresh=True``) on a GPU; no shipped bundle was made with it.
SIZES = {
    "tiny": RunSize(300, 100, 100, max_epochs=2, patience=2),
    "quick": RunSize(3000, 600, 600, max_epochs=12, patience=4),
    "full": RunSize(20000, 4000, 2000, max_epochs=60, patience=6),
    "gpu": RunSize(40000, 8000, 4000, max_epochs=300, patience=10, batch_size=64),
}

#: global inputs of an amortised bundle's networks: what the observer gives (the redshift) and
#: what the galaxies tell (their count, the background density that measures survey depth)
AMORTISED_GLOBALS = ("z", "log_background", "log_n_gal")
#: the NPE's global inputs: the classifier's, plus the expected member and interloper counts
#: from its p_member (the interlopers measure the depth; features.galaxies.membership_counts)
AMORTISED_NPE_GLOBALS = (*AMORTISED_GLOBALS, "log_n_members", "log_n_interlopers")

#: percentiles of the training richness (galaxies in the cylinder) stored with a bundle.
RICHNESS_PERCENTILES = (1, 5, 50, 95, 99)


#: bundles shipped with the package: name (``--model NAME``) -> directory under models/
SHIPPED = {"default": "cylinder_default", "amortised": "cylinder_amortised"}


def shipped_model_path(name: str = "default") -> Path:
    """Directory of a bundle shipped with the package (:data:`SHIPPED`)."""
    if name not in SHIPPED:
        raise ValueError(f"no shipped model {name!r}; shipped: {sorted(SHIPPED)}")
    return Path(str(files("pyro_clusters") / "models" / SHIPPED[name]))


def default_model_path() -> Path:
    """Directory of the default bundle shipped with the package."""
    return shipped_model_path("default")


@dataclass
class CylinderModel:
    """Classifier + NPE (+ its M-sigma baseline) trained on one cylinder setup.

    Attributes:
        classifier: membership classifier; annotates galaxies with ``p_member``.
        npe: the residual NPE using ``p_member`` as a galaxy feature.
        trained_on: what the networks were trained on: ``setup``, ``z``, ``aperture``
            [h^-1 Mpc], ``v_cut`` [km/s], ``n_min``, ``log_m_range`` (of the training
            clusters), ``prior_range`` (of the flat training prior) and ``richness``
            (percentile -> galaxies in the cylinder).
        info: how the bundle was made (command, sizes, seed, seconds, test metrics).
        path: the directory it was loaded from (None when built in memory).
    """

    classifier: MembershipClassifier
    npe: NPEDeepSets
    trained_on: dict
    info: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def msigma(self) -> MSigmaEstimator:
        """The M-sigma baseline the NPE's residual is about."""
        return self.npe.baseline

    @property
    def richness_range(self) -> tuple[float, float]:
        """1st and 99th percentile of the training richness (galaxies in the cylinder)."""
        r = self.trained_on["richness"]
        return float(r["1"]), float(r["99"])

    def annotate(self, clusters: ClusterSet) -> ClusterSet:
        """The clusters with the classifier's ``p_member`` galaxy column."""
        return self.classifier.annotate(clusters)

    def sample(self, clusters: ClusterSet, n: int, rng: np.random.Generator) -> np.ndarray:
        """Posterior draws of log10(M200c / h^-1 Msun), shape (n_clusters, n).

        ``clusters`` may already carry ``p_member``; otherwise the classifier adds it.
        """
        if "p_member" not in clusters.galaxies:
            clusters = self.annotate(clusters)
        return self.npe.sample(clusters, n, rng)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the bundle directory (replacing an existing bundle there)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        self.classifier.save(tmp / "classifier")
        self.npe.save(tmp / "npe")
        (tmp / "bundle.json").write_text(json.dumps(
            {"format": FORMAT, "trained_on": self.trained_on, **self.info}, indent=2))
        if path.exists():
            if not (path / "bundle.json").is_file():
                shutil.rmtree(tmp)
                raise FileExistsError(f"{path} exists and is not a model bundle; not replacing it")
            shutil.rmtree(path)
        os.replace(tmp, path)
        self.path = path
        return path

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, device: str | None = None
             ) -> CylinderModel:
        """Load a bundle without retraining.

        ``path`` is a bundle directory or the name of a shipped bundle (:data:`SHIPPED`:
        ``default``, ``amortised``); None loads the default.
        """
        if path is None:
            path = default_model_path()
        elif str(path) in SHIPPED and not Path(path).exists():
            path = shipped_model_path(str(path))
        path = Path(path)
        meta_file = path / "bundle.json"
        if not meta_file.is_file():
            raise FileNotFoundError(
                f"no model bundle at {path} (bundle.json missing); train one with "
                "`python -m pyro_clusters train --out DIR`")
        meta = json.loads(meta_file.read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not a model bundle (format {meta.get('format')!r})")
        trained_on = meta.pop("trained_on")
        meta.pop("format")
        return cls(registry.load(path / "classifier", device),
                   registry.load(path / "npe", device), trained_on, meta, path)


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
        size: one of :data:`SIZES`.
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
    from pyro_clusters.diagnostics.posterior import PosteriorSamples
    from pyro_clusters.diagnostics.report import evaluate

    if config.setup != "cylinder":
        raise ValueError("a bundle for real fields needs the cylinder setup (interlopers "
                         f"included), got setup={config.setup!r}")
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    run = replace(SIZES[size], max_seconds=max_seconds)
    n_train, n_val, n_test = run.n_train, run.n_val, run.n_test
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    prior = FlatLogMassPrior()
    if fresh and data is not None:
        raise ValueError("fresh training clusters come from the simulator, not from --data")
    if conditions is not None and data is not None:
        raise ValueError("an amortised bundle is trained on the simulator, not on --data")
    if conditions is not None:
        train, val, test = (simulate_conditions(n, prior, config, conditions, rng, workers)
                            for n in (n_train, n_val, n_test))
    elif data is None:
        train, val, test = (simulate_selected(n, prior, config, rng)[0]
                            for n in (n_train, n_val, n_test))
    else:
        from pyro_clusters.data.splits import read_datasets

        caps = None if size == "full" else {"train": n_train, "val": n_val, "test_flat": n_test}
        sets = read_datasets(data, "cylinder", rng, caps, splits=("train", "val", "test_flat"))
        train, val, test = sets["train"], sets["val"], sets["test_flat"]
        a = train.attrs
        config = config.replace(z=float(a["z"]), observation=replace(
            config.observation, aperture=float(a["aperture"]), v_cut=float(a["v_cut"]),
            n_min=int(a["n_min"])))
    sim_seconds = time.perf_counter() - t0
    tcfg = run.train_config(seed, device, progress)

    inputs = AMORTISED_GLOBALS if conditions is not None else ()
    clf_config = replace(registry.get("deepsets_membership").configure(tcfg),
                         extra_globals=inputs)

    def simulate(r: np.random.Generator) -> ClusterSet:
        if conditions is not None:
            return simulate_conditions(len(train), prior, config, conditions, r, workers)
        return simulate_selected(len(train), prior, config, r)[0]

    if classifier is None:
        clf = registry.build("deepsets_membership", clf_config).fit(
            Splits(train, val, None, simulate if fresh else None))
    elif tuple(classifier.config.extra_globals) != tuple(inputs):
        raise ValueError(f"the classifier takes the global inputs "
                         f"{tuple(classifier.config.extra_globals)}; this bundle needs "
                         f"{tuple(inputs)}")
    else:
        clf = classifier
    train, val, test = (clf.annotate(s) for s in (train, val, test))
    msigma, cuts = fit_on_validation(train, val, MSigmaConfig(z=config.z, galaxies="p_member"))
    npe_config = replace(registry.get("npe_deepsets").configure(tcfg, msigma.config),
                         extra_features=("p_member",),
                         extra_globals=AMORTISED_NPE_GLOBALS if conditions is not None else ())
    if conditions is not None:
        # over a range of depths, with the depth measured from the table, the histogram
        # encoder does not read the mass off the galaxy count (docs/estimators.md)
        npe_config = replace(npe_config, **HISTOGRAM_ENCODER)
    npe = registry.build("npe_deepsets", npe_config).fit(
        Splits(train, val, None, (lambda r: clf.annotate(simulate(r))) if fresh else None))

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
