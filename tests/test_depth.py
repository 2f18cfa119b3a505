"""Survey depth in the simulator and fibre collisions."""

import dataclasses

import numpy as np
import pytest
from scipy.integrate import quad

from pyro_clusters.cosmology import angular_diameter_distance
from pyro_clusters.simulator import SimulatorConfig, simulate
from pyro_clusters.simulator.depth import (
    at_depth,
    field_density_ratio,
    halo_mass_at_stellar_mass,
    moster13_stellar_mass,
)
from pyro_clusters.simulator.halo import mean_satellites
from pyro_clusters.simulator.observe import fiber_collided


def test_moster13_matches_the_published_formula():
    # z = 0, M = 10^12 Msun (h = 1 so h^-1 Msun = Msun): 2 N / [(M/M1)^-b + (M/M1)^g] * M
    x = 10**12 / 10**11.590
    expected = 2 * 0.0351 / (x**-1.376 + x**0.608) * 1e12
    assert moster13_stellar_mass(1e12, 0.0, h=1.0) == pytest.approx(expected, rel=1e-12)
    m = halo_mass_at_stellar_mass(9.5, 0.117)
    assert np.log10(moster13_stellar_mass(10**m, 0.117)) == pytest.approx(9.5, abs=1e-3)


def test_field_density_ratio_against_direct_integration():
    """The incomplete-gamma recurrence against quad of the Baldry et al. 2012 double Schechter."""
    def phi(log_m):  # per dex
        x = 10 ** (log_m - 10.66)
        return np.log(10) * np.exp(-x) * (3.96e-3 * x ** (1 - 0.35) + 0.79e-3 * x ** (1 - 1.47))

    h = 0.6777
    for lim in (8.0, 9.0, 10.5):
        direct = (quad(phi, lim - np.log10(h), 13.5, limit=200)[0]
                  / quad(phi, 9.5 - np.log10(h), 13.5, limit=200)[0])
        assert field_density_ratio(lim) == pytest.approx(direct, rel=1e-6)
    assert field_density_ratio(9.5) == pytest.approx(1.0)


def test_deeper_survey_richer_clusters_and_field():
    base = SimulatorConfig(setup="cylinder")
    same = at_depth(base, 9.5)
    assert same.occupation == base.occupation
    assert same.environment.field_density == pytest.approx(base.environment.field_density)
    deep = at_depth(base, 8.0)
    shallow = at_depth(base, 10.5)
    ratio = mean_satellites(np.array([14.5]), deep.occupation)[0] / mean_satellites(
        np.array([14.5]), base.occupation)[0]
    delta = halo_mass_at_stellar_mass(8.0, base.z) - halo_mass_at_stellar_mass(9.5, base.z)
    assert ratio == pytest.approx(10 ** -delta, rel=0.02)  # alpha = 1: N_sat ∝ 1 / M_1
    assert 4.0 < ratio < 6.0
    assert deep.environment.field_density > 3 * base.environment.field_density
    assert shallow.occupation.log_m1 > base.occupation.log_m1
    with pytest.raises(ValueError, match="log_mstar_min"):
        at_depth(base, 7.0)
    assert deep.occupation.log_mstar_min == 8.0
    back = at_depth(deep, 9.5)  # depth is a state of the configuration, not a step
    assert back.occupation.log_m1 == pytest.approx(base.occupation.log_m1)
    assert back.environment.field_density == pytest.approx(base.environment.field_density)
    assert SimulatorConfig.from_json(deep.to_json()) == deep
    # end to end: the same halos seen deeper have more galaxies
    log_m = np.full(200, 14.5)
    n = [simulate(log_m, cfg, np.random.default_rng(3)).n_gal.mean()
         for cfg in (base, deep)]
    assert n[1] > 2.5 * n[0]


def test_fiber_collisions_leave_no_close_pair_when_every_collision_costs():
    rng = np.random.default_rng(0)
    z = 0.117
    r_c = np.deg2rad(55 / 3600) * float(angular_diameter_distance(z))
    x, y = rng.normal(0, 0.3, (2, 800))
    cluster = np.repeat([0, 1], 400)  # two clusters on top of each other in projection
    lost = fiber_collided(x, y, np.ones(800, bool), cluster, z, 55.0, 1.0, rng)
    assert 0 < lost.sum() < 800
    for c in (0, 1):
        keep = ~lost & (cluster == c)
        d = np.hypot(x[keep][:, None] - x[keep], y[keep][:, None] - y[keep])
        assert d[np.triu_indices(keep.sum(), 1)].min() >= r_c  # no collided pair survives
        # maximal: every lost galaxy of this cluster has a kept neighbour within r_c
        lost_c = lost & (cluster == c)
        d_lk = np.hypot(x[lost_c][:, None] - x[keep], y[lost_c][:, None] - y[keep])
        assert np.all(d_lk.min(axis=1) < r_c)
    # pairs across the two clusters do not collide; isolated galaxies are never lost
    far = np.array([0.0, 10 * r_c]), np.zeros(2)
    assert not fiber_collided(*far, np.ones(2, bool), None, z, 55.0, 1.0, rng).any()
    same_spot = np.zeros(2), np.zeros(2)
    assert not fiber_collided(*same_spot, np.ones(2, bool), np.array([0, 1]), z, 55.0, 1.0,
                              rng).any()
    assert fiber_collided(*same_spot, np.ones(2, bool), np.array([0, 0]), z, 55.0, 1.0,
                          rng).sum() == 1


def test_fiber_collisions_thin_the_core_most():
    base = SimulatorConfig(setup="cylinder")
    fibre = base.replace(observation=dataclasses.replace(base.observation,
                                                         fiber_collision_arcsec=55.0))
    log_m = np.full(300, 14.8)
    a = simulate(log_m, base, np.random.default_rng(1))
    b = simulate(log_m, fibre, np.random.default_rng(1))

    def counts(cs):
        r = np.hypot(cs.galaxies["x_proj"], cs.galaxies["y_proj"])
        return np.sum(r < 0.2), np.sum(r > 1.0)

    (core_a, out_a), (core_b, out_b) = counts(a), counts(b)
    assert core_b / core_a < 0.8 * (out_b / out_a)  # the core loses a larger share
