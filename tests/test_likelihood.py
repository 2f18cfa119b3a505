"""The spherical simulator's exact likelihood: numerics, and agreement with the simulator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import chi2, poisson

from pyro_clusters.cosmology import los_velocity
from pyro_clusters.simulator import SimulatorConfig, simulate
from pyro_clusters.simulator.halo import Halos, populate_satellites
from pyro_clusters.simulator.likelihood import SphericalLikelihood
from pyro_clusters.simulator.profiles import tracer_tables

CFG = SimulatorConfig.spherical()
T = lambda x: torch.as_tensor(x, dtype=torch.float64)  # noqa: E731


@pytest.fixture(scope="module")
def lik():
    return SphericalLikelihood(CFG)


def test_only_spherical_configurations_have_a_likelihood():
    with pytest.raises(ValueError, match="spherical"):
        SphericalLikelihood(SimulatorConfig(setup="idealized"))
    assert CFG.is_spherical and not SimulatorConfig().is_spherical


def test_hubble_flow_is_linear_across_the_cluster(lik):
    # v_los = v_pec + H_eff l to < 0.3 km/s for |l| < 6 h^-1 Mpc, |v| < 3000 km/s and a
    # cluster peculiar velocity of 900 km/s (curvature of the Hubble term ~0.008 l^2 km/s;
    # relativistic terms ~1e-5 of v).
    rng = np.random.default_rng(0)
    ell, v, vc = rng.uniform(-6, 6, 2000), rng.uniform(-3000, 3000, 2000), 900.0
    exact = los_velocity(CFG.z, ell, vc + v, vc)
    assert np.max(np.abs(exact - (v + lik.h_eff * ell))) < 0.3
    assert 100.0 < lik.h_eff < 115.0  # ~ H(z=0.117) in h km/s/Mpc


def test_tracer_normalisation_matches_scipy(lik):
    from scipy.integrate import quad

    def integrand(u, c):
        x = 0.6 * c * u
        return u * u / (x * (1 + x) ** 2) / (1 + (u / 1.5) ** 4)

    for c in (2.0, 6.0, 20.0):
        ref = quad(integrand, 0, 3.0, args=(c,), limit=200)[0]
        assert float(torch.exp(lik.log_norm(T(c)))) == pytest.approx(ref, rel=1e-8)


def test_jeans_dispersion_matches_the_simulator_table(lik):
    # The simulator interpolates a 6000-point Jeans integral; ours integrates 256 points
    # piecewise exactly for power laws: they agree to 0.1 % everywhere members live.
    tab = tracer_tables(0.6, 1.5, 3.0)
    u = np.geomspace(0.003, 2.99, 200)
    worst = 0.0
    for c in (2.0, 3.3, 5.0, 8.7, 15.0, 25.0):
        for b in (0.0, 0.13, 0.3, 0.47, 0.6):
            ours = lik.sigma_r(T(u), T(c), T(b)).numpy()
            theirs = tab.sigma_r(u, np.full(u.size, c), np.full(u.size, b))
            worst = max(worst, np.max(np.abs(ours / theirs - 1.0)))
    assert worst < 1e-3


def _satellites(log_m, c, b, n, seed):
    """n satellites of one halo through the simulator's own code path: (R, v_los)."""
    halos = Halos(np.array([log_m]), np.array([c]), np.array([b]), np.zeros((1, 3)),
                  np.zeros((1, 3)), np.array([n]))
    pos, vel, _ = populate_satellites(halos, CFG.z, CFG.halo, np.random.default_rng(seed))
    return np.hypot(pos[:, 0], pos[:, 1]), los_velocity(CFG.z, pos[:, 2], vel[:, 2], 0.0)


def test_quadrature_error_is_negligible(lik):
    # Against a reference with 12x the line-of-sight nodes and 32x the Jeans grid, on 2,000
    # simulated satellites per halo: per galaxy |d ln p| < 5e-3 (the largest errors sit in
    # the far velocity tail at the halo's edge, where sigma_r is small), and the mean error
    # is < 2e-4, i.e. < 0.02 in ln L for a cluster of 100 galaxies -- negligible next to the
    # posterior's curvature (ln L changes by ~0.5 over one posterior standard deviation).
    ref = SphericalLikelihood(CFG, n_los=400, n_jeans=8192)
    for k, (log_m, c, b) in enumerate(((13.6, 3.0, 0.0), (14.5, 8.0, 0.5), (15.3, 20.0, 0.6))):
        r, v = _satellites(log_m, c, b, 2000, k)
        diff = (lik.log_density(T(r), T(v), log_m, c, b)
                - ref.log_density(T(r), T(v), log_m, c, b)).numpy()
        assert np.max(np.abs(diff)) < 5e-3
        assert abs(np.mean(diff)) < 2e-4


@pytest.mark.integration
def test_density_is_normalised(lik):
    log_m, c, b = T(14.3), T(5.0), T(0.4)
    r_max = 3.0 * float(lik.r200(log_m))
    r = np.linspace(1e-4, r_max - 1e-4, 1500)
    v = np.linspace(-6000, 6000, 601)
    rr, vv = np.meshgrid(r, v, indexing="ij")
    p = np.exp(lik.log_density(T(rr.ravel()), T(vv.ravel()), log_m, c, b).numpy())
    total = np.trapezoid(np.trapezoid(p.reshape(rr.shape), v, axis=1), r)
    assert total == pytest.approx(1.0, abs=2e-3)
    assert torch.isinf(lik.log_density(T([r_max * 1.01]), T([0.0]), log_m, c, b)).all()


@pytest.mark.integration
def test_simulated_satellites_follow_the_likelihood(lik):
    # 100,000 satellites of one halo from the simulator's own code path (tracer radii, Jeans
    # velocities, velocity bias, relativistic v_los); chi-square of a 10 x 10 histogram in
    # (R, v) against the model's bin probabilities (fixed seed).
    log_m, c, b = 14.4, 4.5, 0.35
    r_obs, v_obs = _satellites(log_m, c, b, 100_000, 3)
    r_edges = np.quantile(r_obs, np.linspace(0, 1, 11))
    v_edges = np.concatenate([[-8000], np.quantile(v_obs, np.linspace(0.1, 0.9, 9)), [8000]])
    counts = np.histogram2d(r_obs, v_obs, [r_edges, v_edges])[0]
    # Model bin probabilities by fine midpoint integration.
    r_f = np.concatenate([np.linspace(a, z, 41)[:-1] + (z - a) / 80
                          for a, z in zip(r_edges[:-1], r_edges[1:], strict=True)])
    v_f = np.linspace(-8000, 8000, 3201)[:-1] + 2.5
    rr, vv = np.meshgrid(r_f, v_f, indexing="ij")
    p = np.exp(lik.log_density(T(rr.ravel()), T(vv.ravel()), log_m, c, b).numpy())
    p = p.reshape(rr.shape) * np.gradient(r_f)[:, None] * 5.0
    i = np.searchsorted(r_edges, r_f, side="right").clip(1, 10) - 1
    j = np.searchsorted(v_edges, v_f, side="right").clip(1, 10) - 1
    prob = np.zeros((10, 10))
    np.add.at(prob, (i[:, None].repeat(v_f.size, 1), j[None, :].repeat(r_f.size, 0)), p)
    assert prob.sum() == pytest.approx(1.0, abs=3e-3)
    expected = prob / prob.sum() * counts.sum()
    stat = np.sum((counts - expected) ** 2 / expected)
    assert chi2.sf(stat, 99) > 1e-3, stat


def test_richness_and_selection_terms(lik):
    log_m = T(14.0)
    n = np.arange(0, 400)
    probs = np.exp([float(lik.log_richness(int(k), log_m)) for k in n])
    assert probs.sum() == pytest.approx(1.0, abs=1e-6)
    # Without scatter the term is the Poisson pmf of the HOD mean.
    no_scatter = SphericalLikelihood(CFG.replace(occupation=type(CFG.occupation)(
        richness_scatter_ln=0.0)))
    lam = ((1e14 - 10**11.2) / 10**12.55) ** 1.0
    assert float(torch.exp(no_scatter.log_richness(20, log_m))) == pytest.approx(
        poisson.pmf(20, lam), rel=1e-8)
    # The selection probability is the simulator's N >= N_min pass rate (4,000 clusters).
    rng = np.random.default_rng(4)
    for lm in (13.5, 13.7):
        sims = simulate(np.full(4000, lm), CFG, rng)
        rate = np.mean(sims.n_gal >= CFG.observation.n_min)
        assert float(torch.exp(lik.log_selection(T(lm)))) == pytest.approx(rate, abs=0.025)


def test_log_likelihood_is_differentiable(lik):
    x = T([14.2, 0.65, 0.3]).requires_grad_()
    r, v = T([0.1, 0.5, 1.2]), T([-300.0, 800.0, 50.0])
    out = lik.log_density(r, v, x[0], 10 ** x[1], x[2]).sum() + lik.log_selection(x[0])
    (grad,) = torch.autograd.grad(out, x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
