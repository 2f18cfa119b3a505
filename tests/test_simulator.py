"""The simulator's components, switches and invariants."""

import dataclasses

import numpy as np
import pytest
from scipy.stats import kstest

from pyro_clusters.data.clusters import GALAXY_SOURCES
from pyro_clusters.features.dispersion import velocity_dispersion
from pyro_clusters.simulator import (
    FlatLogMassPrior,
    HaloMassFunctionSampler,
    SimulatorConfig,
    simulate,
    simulate_selected,
)
from pyro_clusters.simulator.config import (
    EnvironmentConfig,
    HaloConfig,
    ObservationConfig,
    OccupationConfig,
)
from pyro_clusters.simulator.halo import (
    mean_satellites,
    random_rotations,
    sample_shapes,
    satellite_counts,
    velocity_axis_factors,
)

CYL = SimulatorConfig(setup="cylinder")
IDEAL = SimulatorConfig(setup="idealized")


def obs(**kw):
    return dataclasses.replace(ObservationConfig(), **kw)


def test_same_seed_same_clusters_other_seed_differs():
    lm = np.linspace(13.8, 15.2, 20)
    a = simulate(lm, CYL, np.random.default_rng(7))
    b = simulate(lm, CYL, np.random.default_rng(7))
    c = simulate(lm, CYL, np.random.default_rng(8))
    np.testing.assert_array_equal(a.offsets, b.offsets)
    for k in a.galaxies:
        np.testing.assert_array_equal(a.galaxies[k], b.galaxies[k])
    assert not np.array_equal(a.offsets, c.offsets)


def test_idealized_is_members_only_and_cylinder_obeys_its_cut():
    lm = np.full(200, 14.3)
    ideal = simulate(lm, IDEAL, np.random.default_rng(0))
    assert ideal.galaxies["member"].all()
    cyl = simulate(lm, CYL, np.random.default_rng(0))
    g = cyl.galaxies
    assert np.all(np.hypot(g["x_proj"], g["y_proj"]) <= 1.6 + 1e-6)
    assert np.all(np.abs(g["v_los"]) <= 2200 + 1e-3)
    assert (~g["member"]).any() and g["member"].any()
    # membership truth agrees with the galaxy sources
    member_sources = [GALAXY_SOURCES[k] for k in ("central", "satellite", "substructure", "merger")]
    np.testing.assert_array_equal(g["member"], np.isin(g["source"], member_sources))
    np.testing.assert_array_equal(cyl.clusters["n_members"],
                                  np.bincount(cyl.cluster_index(), weights=g["member"]))


def test_environment_switches_off_every_interloper():
    env = EnvironmentConfig(neighbours=False, field_density=0.0)
    cs = simulate(np.full(100, 14.0), SimulatorConfig(environment=env), np.random.default_rng(1))
    assert cs.galaxies["member"].all()


def test_members_extend_past_r200_with_a_soft_edge():
    """No sharp edge (DESIGN.md): bound members reach beyond R200c, and the largest projected
    member radius does not measure R200c to a few per cent."""
    lm = np.full(400, 14.5)
    cs = simulate(lm, IDEAL, np.random.default_rng(2))
    r = np.hypot(cs.galaxies["x_proj"], cs.galaxies["y_proj"])
    r200 = cs.clusters["r200c"][0]
    assert np.mean(r > r200) > 0.1  # a good share of members in projection beyond R200c
    rmax = np.maximum.reduceat(r, cs.offsets[:-1])
    assert np.std(np.log10(rmax / r200)) > 0.05


def test_richness_scatter_exceeds_poisson():
    """Intrinsic 0.2 scatter in ln N on top of Poisson: var(ln N) ~ 0.2^2 + 1/N."""
    occ = OccupationConfig()
    lm = np.full(20000, 14.5)
    n, _ = satellite_counts(lm, occ, np.random.default_rng(3))
    mean = mean_satellites(14.5, occ)
    expected = np.sqrt(occ.richness_scatter_ln**2 + 1 / mean)
    assert np.std(np.log(n)) == pytest.approx(expected, rel=0.05)
    n0, _ = satellite_counts(lm, dataclasses.replace(occ, richness_scatter_ln=0.0),
                             np.random.default_rng(3))
    assert np.std(np.log(n0)) == pytest.approx(np.sqrt(1 / mean), rel=0.05)


def test_shapes_rotations_and_velocity_ellipsoid():
    rng = np.random.default_rng(4)
    q, s = sample_shapes(np.full(5000, 14.5), 0.117, rng)
    assert np.all((0.2 <= s) & (s <= q) & (q <= 1))
    assert 0.35 < np.mean(s) < 0.6  # JS02 cluster-scale minor-to-major ratio
    rot = random_rotations(20000, rng)
    np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rot.shape),
                               atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0)
    # Haar: the line of sight in the principal frame is isotropic, |cos| uniform on [0, 1]
    assert kstest(np.abs(rot[:, 2, 0]), "uniform").pvalue > 0.01
    a = (q * s) ** (-1 / 3)
    k = velocity_axis_factors(np.column_stack([a, q * a, s * a]), 0.5)
    np.testing.assert_allclose(np.sum(k**2, axis=1), 3.0)
    assert np.all(k[:, 0] >= k[:, 2])


def test_line_of_sight_along_major_axis_is_hotter():
    """Triaxiality: seen down the major axis a cluster has a larger dispersion (KE05)."""
    cs = simulate(np.full(3000, 14.8), IDEAL, np.random.default_rng(5))
    sig = np.log10(velocity_dispersion(cs))
    major = cs.clusters["los_major_cos"] > 0.8
    minor = cs.clusters["los_minor_cos"] > 0.8
    assert sig[major].mean() - sig[minor].mean() > 0.03


def test_velocity_errors_add_in_quadrature():
    lm = np.full(400, 15.0)
    base = IDEAL
    noisy = dataclasses.replace(IDEAL, observation=obs(velocity_error_kms=500.0))
    s0 = velocity_dispersion(simulate(lm, base, np.random.default_rng(6)))
    s1 = velocity_dispersion(simulate(lm, noisy, np.random.default_rng(6)))
    np.testing.assert_allclose(np.mean(s1**2) - np.mean(s0**2), 500.0**2, rtol=0.05)


def test_incompleteness_removes_the_stated_share():
    lm = np.full(300, 14.8)
    full = simulate(lm, IDEAL, np.random.default_rng(9))
    cfg = dataclasses.replace(IDEAL, observation=obs(incompleteness=0.3))
    part = simulate(lm, cfg, np.random.default_rng(9))
    assert part.n_gal.sum() / full.n_gal.sum() == pytest.approx(0.7, abs=0.02)


def test_hubble_flow_switch_changes_only_velocities():
    cfg = dataclasses.replace(IDEAL, observation=obs(hubble_flow=False))
    a = simulate(np.full(50, 14.5), IDEAL, np.random.default_rng(10))
    b = simulate(np.full(50, 14.5), cfg, np.random.default_rng(10))
    np.testing.assert_array_equal(a.n_gal, b.n_gal)
    assert not np.allclose(a.galaxies["v_los"], b.galaxies["v_los"])
    # members spread ~ +-2 h^-1 Mpc along the line of sight: Hubble flow adds ~100 km/s rms
    dv = a.galaxies["v_los"] - b.galaxies["v_los"]
    assert 20 < np.std(dv) < 400


def test_substructure_and_mergers_switch():
    off = dataclasses.replace(CYL, halo=HaloConfig(substructure_fraction=0, merger_fraction=0))
    cs = simulate(np.full(300, 14.5), off, np.random.default_rng(11))
    assert not cs.clusters["has_substructure"].any() and not cs.clusters["has_merger"].any()
    assert not np.isin(cs.galaxies["source"], [2, 3]).any()
    on = simulate(np.full(300, 14.5), CYL, np.random.default_rng(11))
    assert 0.2 < on.clusters["has_substructure"].mean() < 0.4
    assert 0.05 < on.clusters["has_merger"].mean() < 0.16


def test_selection_keeps_n_min_and_reports_tries():
    cs, tried = simulate_selected(200, FlatLogMassPrior(13.5, 14.0), CYL, np.random.default_rng(12))
    assert len(cs) == 200 and tried >= 200
    assert cs.n_gal.min() >= 10


def test_hmf_sampler_follows_the_mass_function():
    s = HaloMassFunctionSampler(14.0, 15.3)
    x = s.sample(20000, np.random.default_rng(13))
    assert x.min() >= 14.0 and x.max() <= 15.3
    grid = np.linspace(14.0, 15.3, 2001)
    cdf = np.cumsum(s.density(grid))
    cdf /= cdf[-1]
    assert kstest(x, lambda v: np.interp(v, grid, cdf)).pvalue > 0.01
    # steeply falling: many more clusters at 14 than at 15
    assert np.mean(x < 14.5) > 0.7


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: ObservationConfig(aperture=-1.0), "aperture"),
        (lambda: ObservationConfig(v_cut=0.0), "v_cut"),
        (lambda: ObservationConfig(n_min=1), "n_min"),
        (lambda: SimulatorConfig(z=-0.1), "z must be"),
        (lambda: SimulatorConfig(setup="sphere"), "unknown setup"),
        (lambda: FlatLogMassPrior(12.0, 15.0), "supported range"),
        (lambda: HaloMassFunctionSampler(15.0, 14.0), "ordered"),
        (lambda: HaloConfig(merger_fraction=1.5), "merger_fraction"),
    ],
)
def test_invalid_configuration_is_refused(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_config_json_round_trip():
    cfg = SimulatorConfig(setup="idealized", observation=obs(aperture=2.0))
    assert SimulatorConfig.from_json(cfg.to_json()) == cfg


def test_simulate_rejects_bad_theta():
    with pytest.raises(ValueError, match="finite"):
        simulate(np.array([14.0, np.nan]), CYL, np.random.default_rng(0))
