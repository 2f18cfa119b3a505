"""Run sizes of every training run and experiment, in one place.

A run size fixes how many clusters are simulated (or read, at most) per set and how long each
network trains: an epoch limit and an early-stopping patience, never a wall-clock budget
(``max_seconds`` is an explicit option of a run, so that a seed reproduces it). ``tiny`` is for
the test suite (seconds), ``quick`` for a smoke check (a few minutes on 2 CPU cores), ``full``
for publishable numbers; ``gpu`` (bundles and the amortised experiment only) doubles the
clusters per epoch and the batch, for fresh training on a GPU.

The batch size is decided here: :attr:`RunSize.batch_size` (None: each estimator's own, 32
clusters for the set networks, 100 for the image networks) goes into the run's
:class:`~pyro_clusters.training.TrainConfig`, which every estimator's ``configure`` honours.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from pyro_clusters.training import TrainConfig

__all__ = ["SIZES", "AblationSize", "AmortisedSize", "CompareSize", "CylinderSize",
           "IdealizedSize", "LimitSize", "MocksSize", "RunSize", "run_size"]


@dataclass(frozen=True)
class RunSize:
    """Cluster counts and training limits of one run size.

    Attributes:
        n_train, n_val, n_test: clusters simulated (or read, at most) per set.
        max_epochs: epoch limit of each network.
        patience: early-stopping patience [epochs].
        max_seconds: wall-time budget of each network [s] (None: none).
        batch_size: clusters per training batch (None: each estimator's own default).
    """

    n_train: int
    n_val: int
    n_test: int
    max_epochs: int
    patience: int
    max_seconds: float | None = None
    batch_size: int | None = None

    def train_config(self, seed: int = 0, device: str = "cpu", progress: bool = True,
                     **changes) -> TrainConfig:
        """The :class:`TrainConfig` of this size (``changes`` override its fields)."""
        fields = {"batch_size": self.batch_size, "max_epochs": self.max_epochs,
                  "patience": self.patience, "max_seconds": self.max_seconds, "seed": seed,
                  "device": device, "progress": progress, **changes}
        return TrainConfig(**fields)


@dataclass(frozen=True)
class IdealizedSize(RunSize):
    """A run size of the idealized experiment (``n_robust``: robustness test clusters)."""

    n_robust: int = 50


@dataclass(frozen=True)
class CylinderSize(RunSize):
    """A run size of the cylinder experiment.

    Attributes:
        n_caustic: test clusters (mass-stratified) of the slow caustic-method comparison.
        n_robust: test clusters of the robustness checks.
    """

    n_caustic: int = 3
    n_robust: int = 40


@dataclass(frozen=True)
class CompareSize(RunSize):
    """A run size of the comparison (``n_val`` clusters also make the calibration set).

    Attributes:
        max_epochs_by: epoch limit of named estimators instead of ``max_epochs``.
        patience_by: early-stopping patience of named estimators instead of ``patience``.
        n_drift: HMF test clusters of the richness check
            (:func:`~pyro_clusters.pipeline.evaluation.richness_drift`).
    """

    max_epochs_by: dict = field(default_factory=dict)
    patience_by: dict = field(default_factory=dict)
    n_drift: int = 20

    def train_config_for(self, name: str, seed: int, device: str, progress: bool
                         ) -> TrainConfig:
        """Run settings of estimator ``name`` (its own epoch limit and patience if any)."""
        return self.train_config(seed, device, progress,
                                 max_epochs=self.max_epochs_by.get(name, self.max_epochs),
                                 patience=self.patience_by.get(name, self.patience))


@dataclass(frozen=True)
class AblationSize(RunSize):
    """A run size of the ablation and of the richness check.

    Attributes:
        n_drift: HMF test clusters of the subsampled-drift (richness) check.
    """

    n_drift: int = 20


@dataclass(frozen=True)
class AmortisedSize(RunSize):
    """A run size of the amortised experiment: the bundle's size and validation clusters.

    Attributes:
        bundle_size: the size name of the bundle trained (:data:`SIZES` ``["bundle"]``).
        n_cell: clusters per grid cell.
        n_case: realisations per named case.
    """

    bundle_size: str = "tiny"
    n_cell: int = 40
    n_case: int = 20


@dataclass(frozen=True)
class LimitSize(RunSize):
    """A run size of the information-limit experiment.

    Attributes:
        n_sbc: clusters of the simulation-based calibration of the exact posterior.
        n_misspecified: clusters of the misspecified comparison.
        n_hmf: spherical clusters drawn from the halo mass function (the population the
            estimator comparisons quote sigma_eps on).
        n_drift: the first of those on which both posteriors' subsampled mass drift is
            measured.
        warmup, draws: NUTS warm-up steps and kept draws per chain.
        compile: evaluate the likelihood through ``torch.compile``.
    """

    n_sbc: int = 3
    n_misspecified: int = 2
    n_hmf: int = 3
    n_drift: int = 2
    warmup: int = 20
    draws: int = 20
    compile: bool = False


@dataclass(frozen=True)
class MocksSize:
    """A run size of the simulator-realism report (nothing is trained).

    Attributes:
        n_train: flat-prior clusters per setup.
        n_test: halo-mass-function clusters per setup.
    """

    n_train: int
    n_test: int
    max_seconds: None = None


#: every run's sizes: run name -> size name -> size
SIZES: dict[str, dict[str, RunSize | MocksSize]] = {
    # pyro-clusters train / pipeline.train_bundle; "full" made both shipped bundles
    "bundle": {
        "tiny": RunSize(300, 100, 100, max_epochs=2, patience=2),
        "quick": RunSize(3000, 600, 600, max_epochs=12, patience=4),
        "full": RunSize(20000, 4000, 2000, max_epochs=60, patience=6),
        "gpu": RunSize(40000, 8000, 4000, max_epochs=300, patience=10, batch_size=64),
    },
    "idealized": {
        "tiny": IdealizedSize(300, 100, 200, max_epochs=2, patience=2, n_robust=50),
        "quick": IdealizedSize(3000, 600, 1500, max_epochs=15, patience=5, n_robust=300),
        "full": IdealizedSize(20000, 4000, 5000, max_epochs=80, patience=8, n_robust=1000),
    },
    "cylinder": {
        "tiny": CylinderSize(300, 100, 200, max_epochs=2, patience=2, n_caustic=3,
                             n_robust=40),
        "quick": CylinderSize(3000, 600, 1500, max_epochs=12, patience=4, n_caustic=6,
                              n_robust=200),
        "full": CylinderSize(20000, 4000, 5000, max_epochs=60, patience=6, n_caustic=60,
                             n_robust=800),
    },
    "compare": {
        "tiny": CompareSize(300, 100, 200, max_epochs=2, patience=2),
        "quick": CompareSize(3000, 600, 1500, max_epochs=8, patience=3,
                             max_epochs_by={"sbi_npe": 25, "npe_deepsets": 15}, n_drift=500),
        # the set NPE's validation loss is noisy and it learns late in the cylinder (its
        # ablation run still improved at epoch 39 of 40): patience 6 stopped it at epoch 18
        "full": CompareSize(20000, 4000, 5000, max_epochs=60, patience=6,
                            max_epochs_by={"sbi_npe": 30}, patience_by={"npe_deepsets": 12},
                            n_drift=1000),
    },
    # also the richness check's (python -m experiments.richness)
    "ablation": {
        "tiny": AblationSize(300, 100, 200, max_epochs=2, patience=2, n_drift=20),
        "quick": AblationSize(3000, 600, 1500, max_epochs=30, patience=6, n_drift=500),
        "full": AblationSize(20000, 4000, 5000, max_epochs=60, patience=8, n_drift=1000),
    },
    "amortised": {
        "tiny": AmortisedSize(300, 100, 100, max_epochs=2, patience=2, bundle_size="tiny",
                              n_cell=40, n_case=20),
        "quick": AmortisedSize(3000, 600, 600, max_epochs=12, patience=4, bundle_size="quick",
                               n_cell=200, n_case=200),
        "full": AmortisedSize(20000, 4000, 2000, max_epochs=60, patience=6, bundle_size="full",
                              n_cell=500, n_case=200),
        "gpu": AmortisedSize(40000, 8000, 4000, max_epochs=300, patience=10, bundle_size="gpu",
                             n_cell=500, n_case=200, batch_size=64),
    },
    "information_limit": {
        "tiny": LimitSize(300, 100, 3, max_epochs=2, patience=2, n_sbc=3, n_misspecified=2,
                          n_hmf=3, n_drift=2, warmup=20, draws=20, compile=False),
        "quick": LimitSize(3000, 600, 24, max_epochs=15, patience=5, n_sbc=24,
                           n_misspecified=16, n_hmf=24, n_drift=8, warmup=150, draws=250,
                           compile=True),
        "full": LimitSize(20000, 4000, 200, max_epochs=80, patience=8, n_sbc=150,
                          n_misspecified=100, n_hmf=300, n_drift=100, warmup=150, draws=250,
                          compile=True),
    },
    "realism": {
        "tiny": MocksSize(600, 300),
        "quick": MocksSize(4000, 2000),
        "full": MocksSize(40000, 10000),
    },
}


def run_size(run: str, size: str, max_seconds: float | None = None) -> RunSize:
    """The size ``size`` of run ``run``, with an explicit wall-clock budget if given.

    Args:
        run: a key of :data:`SIZES` (``bundle``, ``idealized``, ``cylinder``, ...).
        size: one of that run's sizes (``tiny``, ``quick``, ``full``, ...).
        max_seconds: wall-clock budget of each network's training [s]; None keeps epochs and
            patience the only limits.

    Raises:
        ValueError: an unknown run or size.
    """
    if run not in SIZES:
        raise ValueError(f"no run {run!r}; runs: {sorted(SIZES)}")
    if size not in SIZES[run]:
        raise ValueError(f"size must be one of {sorted(SIZES[run])} for {run}, got {size!r}")
    chosen = SIZES[run][size]
    return chosen if max_seconds is None else replace(chosen, max_seconds=max_seconds)
