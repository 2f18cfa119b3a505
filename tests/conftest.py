import numpy as np
import pytest

from pyro_clusters.simulator import (
    FlatLogMassPrior,
    HaloMassFunctionSampler,
    SimulatorConfig,
    simulate_selected,
)
from pyro_clusters.diagnostics.realism import MockSets


@pytest.fixture(autouse=True)
def _seed_torch():
    """Library code takes explicit rngs; this only pins torch for sbi paths in tests."""
    import torch

    torch.manual_seed(0)


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
