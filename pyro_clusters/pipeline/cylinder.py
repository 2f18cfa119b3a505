r"""The cylinder recipe, written once: classifier -> members -> M-sigma -> NPE.

A cylinder (every galaxy within the aperture and the velocity window, interlopers included;
Ho et al. 2019, arXiv:1902.05136, section 2.2; Wang, Thiele & Ho 2026 section 4) is inferred
in three trained steps, each on the previous one's output:

1. the Deep Sets membership classifier gives each galaxy its membership probability
   ``p_member`` (:func:`train_classifier`);
2. the M-sigma relation is fitted on classifier-selected members (p_member > 0.5), its mass
   cut chosen on validation clusters among 13.5 / 14.0 / 14.5
   (:func:`~pyro_clusters.estimators.msigma.fit_on_validation`; the +-v_cut window flattens
   the relation of massive clusters, so the papers' cut at 14.5 can extrapolate badly);
3. the Deep Sets NPE learns the residual log M - log M_(M-sigma) with ``p_member`` as a galaxy
   feature (:func:`npe_config`).

:func:`train_cylinder` runs all three; ``python -m experiments.cylinder``, ``pyro-clusters
train`` and :func:`~pyro_clusters.pipeline.bundle.train_bundle` call it (the experiment adds the
baselines and the NPE without ``p_member`` it compares with).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pyro_clusters.data.clusters import ClusterSet
from pyro_clusters.estimators import registry
from pyro_clusters.estimators.base import Splits
from pyro_clusters.estimators.msigma import MSigmaConfig, MSigmaEstimator, fit_on_validation
from pyro_clusters.estimators.npe_deepsets import HISTOGRAM_ENCODER
from pyro_clusters.training import TrainConfig

if TYPE_CHECKING:
    from pyro_clusters.estimators.npe_deepsets import NPEConfig, NPEDeepSets
    from pyro_clusters.membership.classifier import MembershipClassifier

__all__ = ["CylinderFit", "fit_member_baseline", "npe_config", "train_classifier",
           "train_cylinder"]

Fresh = Callable[[np.random.Generator], ClusterSet]


@dataclass
class CylinderFit:
    """What :func:`train_cylinder` trained.

    Attributes:
        classifier: the membership classifier.
        annotated: the sets given, each with the classifier's ``p_member`` galaxy column, in
            the order given (train, val, then any others).
        msigma: the M-sigma baseline on classifier members.
        mass_cut: the validation scatter [dex] of each candidate mass cut and the one chosen.
        npe: the residual NPE with ``p_member`` as a galaxy feature.
        msigma_seconds: wall time of the baseline's fit [s].
    """

    classifier: MembershipClassifier
    annotated: list[ClusterSet]
    msigma: MSigmaEstimator
    mass_cut: dict
    npe: NPEDeepSets
    msigma_seconds: float = 0.0


def train_classifier(train: ClusterSet, val: ClusterSet, run: TrainConfig,
                     extra_globals: tuple[str, ...] = (), fresh: Fresh | None = None,
                     checkpoint: Path | None = None) -> MembershipClassifier:
    """Train the Deep Sets membership classifier (Wang, Thiele & Ho 2026 section 4.2).

    Args:
        train: cylinder-setup clusters with the ``member`` truth of every galaxy.
        val: validation clusters, likewise.
        run: epochs, patience, seed, device, batch size of the run.
        extra_globals: global inputs besides the galaxies (an amortised model's redshift,
            background density and galaxy count).
        fresh: new training clusters every epoch (``Splits.fresh``), or None.
        checkpoint: file of the per-epoch checkpoint, or None.
    """
    config = replace(registry.get("deepsets_membership").configure(run),
                     extra_globals=tuple(extra_globals))
    return registry.build("deepsets_membership", config).fit(
        Splits(train, val, None, fresh), checkpoint=checkpoint)


def fit_member_baseline(train: ClusterSet, val: ClusterSet, z: float,
                        galaxies: str = "p_member") -> tuple[MSigmaEstimator, dict]:
    """The M-sigma relation with its mass cut chosen on ``val`` (module docstring, step 2).

    Args:
        train: clusters the relation is fitted on (annotated with ``p_member`` for
            ``galaxies="p_member"``).
        val: clusters the mass cut is chosen on, likewise.
        z: the clusters' redshift (the relation is in E(z) M).
        galaxies: the dispersion's galaxies: ``p_member`` (classifier members), ``all`` or
            ``members`` (the true members, an oracle).

    Returns:
        (the fitted baseline, {str(cut): validation scatter [dex], "chosen": cut}).
    """
    return fit_on_validation(train, val, MSigmaConfig(z=z, galaxies=galaxies))


def npe_config(run: TrainConfig, msigma: MSigmaConfig, extra_features: tuple[str, ...] =
               ("p_member",), amortised_globals: tuple[str, ...] = ()) -> NPEConfig:
    """The NPE's config for a cylinder run.

    Args:
        run: the run's training settings.
        msigma: the baseline's config (the NPE fits the same baseline on its training set).
        extra_features: galaxy features besides the phase-space ones.
        amortised_globals: global inputs of an amortised model; with any, the encoder is the
            soft-histogram one, which over a range of survey depths does not read the mass
            off the galaxy count (docs/estimators.md).
    """
    config = replace(registry.get("npe_deepsets").configure(run, msigma),
                     extra_features=tuple(extra_features), extra_globals=tuple(amortised_globals))
    return replace(config, **HISTOGRAM_ENCODER) if amortised_globals else config


def train_cylinder(train: ClusterSet, val: ClusterSet, run: TrainConfig, z: float, *,
                   others: tuple[ClusterSet, ...] = (),
                   classifier: MembershipClassifier | None = None,
                   classifier_globals: tuple[str, ...] = (),
                   npe_globals: tuple[str, ...] = (), fresh: Fresh | None = None,
                   checkpoints: Path | None = None) -> CylinderFit:
    """Classifier, M-sigma on its members and the NPE, trained in order (module docstring).

    Args:
        train: cylinder-setup training clusters.
        val: validation clusters.
        run: the run's training settings (both networks).
        z: the clusters' redshift (an amortised model's mean redshift).
        others: more sets to annotate with the classifier (test sets).
        classifier: a fitted classifier to use as it is (another bundle's); it must take
            ``classifier_globals``.
        classifier_globals: the classifier's global inputs (amortised models).
        npe_globals: the NPE's global inputs (amortised models; :func:`npe_config`).
        fresh: new training clusters every epoch for both networks (the NPE's annotated by
            the classifier), or None.
        checkpoints: directory of the networks' per-epoch checkpoints, or None.

    Returns:
        :class:`CylinderFit`.

    Raises:
        ValueError: a given classifier with other global inputs.
    """
    def checkpoint(name: str) -> Path | None:
        return None if checkpoints is None else checkpoints / f"{name}_checkpoint.pt"

    if classifier is None:
        classifier = train_classifier(train, val, run, classifier_globals, fresh,
                                      checkpoint("classifier"))
    elif tuple(classifier.config.extra_globals) != tuple(classifier_globals):
        raise ValueError(f"the classifier takes the global inputs "
                         f"{tuple(classifier.config.extra_globals)}; this model needs "
                         f"{tuple(classifier_globals)}")
    annotated = [classifier.annotate(s) for s in (train, val, *others)]
    t0 = time.perf_counter()
    msigma, cuts = fit_member_baseline(annotated[0], annotated[1], z)
    seconds = time.perf_counter() - t0
    clf = classifier
    npe = registry.build("npe_deepsets", npe_config(run, msigma.config,
                                                    amortised_globals=npe_globals)).fit(
        Splits(annotated[0], annotated[1], None,
               (lambda r: clf.annotate(fresh(r))) if fresh is not None else None),
        checkpoint=checkpoint("npe_with_p"))
    return CylinderFit(classifier, annotated, msigma, cuts, npe, seconds)
