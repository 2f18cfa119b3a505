"""The simulator and prior as sbi objects."""

import numpy as np
import pytest
import torch
from sbi.inference import simulate_for_sbi

from pyro_clusters.simulator import (
    ClusterSimulator,
    FlatLogMassPrior,
    SimulatorConfig,
    make_sbi_simulator,
)

IDEAL = SimulatorConfig(setup="idealized")


def test_simulate_for_sbi_runs_and_is_reproducible():
    prior, sim = make_sbi_simulator(IDEAL, n_max=1024)
    t1, x1 = simulate_for_sbi(sim, prior, 40, simulation_batch_size=20, seed=3,
                              show_progress_bar=False)
    t2, x2 = simulate_for_sbi(sim, prior, 40, simulation_batch_size=20, seed=3,
                              show_progress_bar=False)
    assert t1.shape == (40, 1) and x1.shape == (40, 1024, 4)
    torch.testing.assert_close(t1, t2)
    torch.testing.assert_close(x1, x2, equal_nan=True)
    assert ((t1 >= 13.5) & (t1 <= 15.5)).all()


def test_padding_mask_and_rejected_clusters():
    sim = ClusterSimulator(IDEAL, n_max=1024, seed=0)
    theta = torch.tensor([[13.5], [13.5], [13.5], [13.5], [15.0]])
    x = sim(theta).numpy()
    valid = x[..., 3]
    ok = ~np.isnan(valid).any(axis=1)
    assert ok[-1] and not ok.all()  # some 10^13.5 clusters fall below N_min -> NaN rows
    assert np.isnan(x[~ok]).all()
    v = valid[ok]
    assert set(np.unique(v)) <= {0.0, 1.0}
    n = v.sum(axis=1)
    assert np.all(n >= 10)
    # valid galaxies first, zeros after: nothing but the mask marks padding
    for row, k in zip(x[ok], n.astype(int), strict=True):
        assert np.all(row[k:] == 0) and np.all(row[:k, 3] == 1)


def test_overflow_is_never_silent():
    sim = ClusterSimulator(IDEAL, n_max=64, seed=0)
    with pytest.raises(ValueError, match="n_max=64"):
        sim(torch.tensor([[15.3]]))
    sub = ClusterSimulator(IDEAL, n_max=64, overflow="subsample", seed=0)
    with pytest.warns(UserWarning, match="subsampled"):
        x = sub(torch.tensor([[15.3]]))
    assert x[0, :, 3].sum() == 64


def test_prior_is_sbi_compatible():
    prior = FlatLogMassPrior().to_sbi()
    s = prior.sample((1000,))
    assert s.shape == (1000, 1) and s.min() >= 13.5 and s.max() <= 15.5
    assert torch.isfinite(prior.log_prob(torch.tensor([[14.0]]))).all()
    assert torch.isinf(prior.log_prob(torch.tensor([[16.0]]))).all()
