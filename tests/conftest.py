from functools import cache

import numpy as np
import pytest

from pyro_clusters.diagnostics.realism import MockSets
from pyro_clusters.simulator import (
    FlatLogMassPrior,
    HaloMassFunctionSampler,
    SimulatorConfig,
    simulate_selected,
)


@pytest.fixture(autouse=True)
def _seed_torch():
    """Library code takes explicit rngs; this only pins torch for sbi paths in tests."""
    import torch

    torch.manual_seed(0)


@cache
def _simulated(setup: str, sizes: tuple[int, ...], seed: int, lo: float, hi: float,
               config_json: str | None):
    rng = np.random.default_rng(seed)
    cfg = (SimulatorConfig.from_json(config_json) if config_json is not None
           else SimulatorConfig(setup=setup))
    return tuple(simulate_selected(n, FlatLogMassPrior(lo, hi), cfg, rng)[0] for n in sizes)


@pytest.fixture(scope="session")
def simulated():
    """``simulated(setup, sizes, seed, mass_range=(13.5, 15.5), config=None)``: sets of clusters
    from the flat prior, drawn one after the other from ``default_rng(seed)``; each distinct
    request is simulated once per session. Treat them as read-only (``select`` copies)."""

    def make(setup: str, sizes, seed: int, mass_range=(13.5, 15.5), config=None):
        return _simulated(setup, tuple(sizes), seed, *mass_range,
                          config.to_json() if config is not None else None)

    return make


@pytest.fixture(scope="session")
def mock_sets() -> MockSets:
    """Flat training and HMF test sets in both setups; sized for ~1 % precision on the bands."""
    rng = np.random.default_rng(12345)
    pure, cyl = SimulatorConfig(setup="idealized"), SimulatorConfig(setup="cylinder")
    flat, hmf = FlatLogMassPrior(), HaloMassFunctionSampler(14.0, 15.0)
    return MockSets(
        pure_train=simulate_selected(6000, flat, pure, rng)[0],
        cylinder_train=simulate_selected(6000, flat, cyl, rng)[0],
        pure_test=simulate_selected(3000, hmf, pure, rng)[0],
        cylinder_test=simulate_selected(3000, hmf, cyl, rng)[0],
        z=pure.z,
    )
