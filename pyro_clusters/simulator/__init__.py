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
from pyro_clusters.simulator.sbi import ClusterSimulator, make_sbi_simulator

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
