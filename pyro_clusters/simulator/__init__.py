"""The cluster simulator: theta = log10(M200c / h^-1 Msun) -> one observed cluster.

Components (each switchable in :class:`SimulatorConfig`): the main halo
(:mod:`.halo`, :mod:`.profiles`), its environment (:mod:`.environment`), the observation
(:mod:`.observe`); :func:`simulate` ties them together, :mod:`.priors` holds the theta
distributions and :mod:`.sbi` the sbi wrappers.
"""

from pyro_clusters.simulator.config import (
    SUPPORTED_LOG_MASS_RANGE,
    EnvironmentConfig,
    HaloConfig,
    ObservationConfig,
    OccupationConfig,
    SimulatorConfig,
)
from pyro_clusters.simulator.core import simulate, simulate_selected
from pyro_clusters.simulator.priors import FlatLogMassPrior, HaloMassFunctionSampler, make_sampler

__all__ = [
    "SUPPORTED_LOG_MASS_RANGE",
    "ClusterSimulator",
    "EnvironmentConfig",
    "FlatLogMassPrior",
    "HaloConfig",
    "HaloMassFunctionSampler",
    "ObservationConfig",
    "OccupationConfig",
    "SimulatorConfig",
    "make_sampler",
    "make_sbi_simulator",
    "simulate",
    "simulate_selected",
]


def __getattr__(name: str):
    # The sbi wrappers import torch; simulation workers never need it (saves ~250 MB each).
    if name in ("ClusterSimulator", "make_sbi_simulator"):
        from pyro_clusters.simulator import sbi

        return getattr(sbi, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
