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

(the same call of :func:`pyro_clusters.pipeline.train_bundle` as ``python -m pyro_clusters
train --amortised --fresh``; 1 h 52 min on 2 CPU cores).

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
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pyro_clusters.data.clusters import ClusterSet
from pyro_clusters.estimators import registry
from pyro_clusters.estimators.msigma import MSigmaEstimator

if TYPE_CHECKING:
    from pyro_clusters.estimators.npe_deepsets import NPEDeepSets
    from pyro_clusters.membership.classifier import MembershipClassifier

__all__ = ["AMORTISED_GLOBALS", "AMORTISED_NPE_GLOBALS", "FORMAT", "RICHNESS_PERCENTILES",
           "SHIPPED", "CylinderModel", "default_model_path", "shipped_model_path"]

FORMAT = "pyro_clusters.cylinder_bundle/1"

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
    def name(self) -> str:
        """The shipped model's name (:data:`SHIPPED`), else the bundle's directory."""
        if self.path is not None:
            for name in SHIPPED:
                if Path(self.path).resolve() == shipped_model_path(name).resolve():
                    return name
        return str(self.path) if self.path is not None else "(in memory)"

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
                f"no model bundle at {path} (bundle.json missing); the shipped models are "
                + ", ".join(f"{k!r}" for k in SHIPPED)
                + ", or train one with `pyro-clusters train --out DIR`")
        meta = json.loads(meta_file.read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not a model bundle (format {meta.get('format')!r})")
        trained_on = meta.pop("trained_on")
        meta.pop("format")
        return cls(registry.load(path / "classifier", device),
                   registry.load(path / "npe", device), trained_on, meta, path)
