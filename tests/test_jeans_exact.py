"""jeans_exact: the Pyro model, its hand-written potential, NUTS on simulated clusters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pyro_clusters.data.clusters import GALAXY_SOURCES
from pyro_clusters.estimators.jeans_exact import (
    JeansExact,
    JeansExactConfig,
    _likelihood,
    _Potential,
    cluster_model,
    satellites,
)
from pyro_clusters.simulator import SimulatorConfig

CFG = SimulatorConfig.spherical()
FAST = JeansExactConfig(warmup=100, samples=150)


@pytest.fixture(scope="module")
def clusters(simulated):
    return simulated("idealized", (4,), seed=5, mass_range=(13.8, 15.0), config=CFG)[0]


def test_satellites_drop_the_central(clusters):
    r, v = satellites(clusters, 0)
    g = clusters.galaxies_of(0)
    assert r.size == clusters.n_gal[0] - 1 == np.sum(g["source"] != GALAXY_SOURCES["central"])
    assert np.all(r > 0)


@pytest.mark.parametrize("richness", ["ancillary", "poisson"])
def test_hand_potential_equals_pyros(clusters, richness):
    from pyro.infer.mcmc.util import initialize_model

    lik = _likelihood(CFG.to_json(), 32)
    r, v = (torch.as_tensor(a) for a in satellites(clusters, 1))
    lo, hi = 13.9, 15.5
    _, pyro_potential, _, _ = initialize_model(cluster_model,
                                               model_args=(lik, r, v, richness, lo, hi))
    ours = _Potential(lik, r, v, richness, lo, hi)
    rng = np.random.default_rng(0)
    for _ in range(5):
        z = {k: torch.tensor(x, dtype=torch.float64)
             for k, x in zip(("log_m", "log10_c", "beta_inf"), rng.normal(0, 1, 3) + [0, .6, 0],
                             strict=True)}
        assert float(ours(z)) == pytest.approx(float(pyro_potential(z)), rel=1e-10, abs=1e-8)


@pytest.mark.integration
def test_nuts_recovers_the_mass_with_clean_diagnostics(clusters):
    est = JeansExact(FAST, model=CFG).fit(clusters)
    res = est.sample_with_info(clusters, 200, np.random.default_rng(1))
    draws = res.draws
    assert draws.shape == (4, 200) and np.all(np.isfinite(draws))
    z = (draws.mean(1) - clusters.log_m) / draws.std(1)
    assert np.all(np.abs(z) < 3.5), z
    d = res.info["nuts"]
    assert d.rhat.shape == (4,) and np.all(d.rhat < 1.1)
    assert np.all(d.ess_bulk > 30) and d.divergences.sum() == 0
    s = d.summary()
    assert s["n_clusters"] == 4 and s["divergences_total"] == 0


def test_same_seed_same_draws_and_save_load(clusters, tmp_path):
    one = clusters.select(np.array([2]))
    est = JeansExact(JeansExactConfig(warmup=30, samples=30, num_chains=2), model=CFG)
    a = est.sample(one, 50, np.random.default_rng(3))
    est.save(tmp_path / "jeans")
    back = JeansExact.load(tmp_path / "jeans")
    assert back.config == est.config and back.model == est.model
    np.testing.assert_array_equal(a, back.sample(one, 50, np.random.default_rng(3)))


def test_bad_input_is_refused(clusters):
    with pytest.raises(ValueError, match="spherical"):
        JeansExact(model=SimulatorConfig(setup="idealized"))
    with pytest.raises(ValueError, match="richness"):
        JeansExactConfig(richness="full")
    far = clusters.select(np.array([0]))
    far.galaxies["x_proj"][:] = 50.0  # beyond u_max R200c of any mass in the prior
    with pytest.raises(ValueError, match="outside every halo"):
        JeansExact(FAST, model=CFG).sample(far, 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="unreachable"):
        JeansExactConfig(unreachable="ignore")


@pytest.mark.integration
def test_unreachable_galaxies_are_dropped_and_counted(clusters):
    """Misspecified data: a galaxy beyond every halo of the prior is dropped, not fatal.

    Under the model it has probability zero for every parameter value, so the posterior of
    the others is the same as without it: same seed, same draws.
    """
    one = clusters.select(np.array([1]))
    cfg = JeansExactConfig(warmup=30, samples=30, unreachable="drop")
    clean = JeansExact(cfg, model=CFG).sample(one, 40, np.random.default_rng(2))
    far = clusters.select(np.array([1]))
    sat = np.flatnonzero(far.galaxies["source"] != GALAXY_SOURCES["central"])[:2]
    far.galaxies["x_proj"][sat] = 40.0
    res = JeansExact(cfg, model=CFG).sample_with_info(far, 40, np.random.default_rng(2))
    dropped, nuts = res.draws, res.info["nuts"]
    assert nuts.n_dropped.tolist() == [2]
    assert nuts.summary()["galaxies_dropped_total"] == 2
    kept = clusters.select(np.array([1])).filter_galaxies(
        ~np.isin(np.arange(far.offsets[-1]), sat))
    np.testing.assert_array_equal(dropped, JeansExact(cfg, model=CFG).sample(
        kept, 40, np.random.default_rng(2)))
    assert clean.shape == dropped.shape
