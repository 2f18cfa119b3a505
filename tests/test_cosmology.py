import numpy as np
import pytest

from pyro_clusters.cosmology import (
    C_KMS,
    distance_table,
    get_cosmology,
    hubble_velocity,
    los_velocity,
    r200c,
    relativistic_add,
    relativistic_subtract,
    v200c,
)


def test_distance_table_matches_colossus_and_inverts():
    z = np.array([0.001, 0.117, 0.5, 1.5])
    d = distance_table().distance(z)
    np.testing.assert_allclose(d, get_cosmology().comovingDistance(0.0, z), rtol=1e-6)
    np.testing.assert_allclose(distance_table().redshift(d), z, atol=1e-7)


def test_r200c_encloses_200_rho_crit():
    m = np.array([1e14, 1e15])
    r = r200c(m, 0.117)
    rho = m / (4 / 3 * np.pi * r**3)
    np.testing.assert_allclose(rho / (get_cosmology().rho_c(0.117) * 1e9), 200.0, rtol=1e-10)
    # 1e15 h^-1 Msun at z = 0.117: R200c ~ 1.6 h^-1 Mpc, V200c ~ 1.6e3 km/s
    assert 1.5 < r[1] < 1.75 and 1500 < v200c(m, 0.117)[1] < 1750


def test_relativistic_composition_is_exact_and_bounded():
    u, v = 0.9 * C_KMS, 0.9 * C_KMS
    assert relativistic_add(u, v) < C_KMS
    np.testing.assert_allclose(relativistic_subtract(relativistic_add(u, 1e4), 1e4), u)
    # (1+z) composition: z1 (+) z2 as velocities = (1+z1)(1+z2) - 1 as redshift
    z1, z2 = 0.1, 0.2
    composed = relativistic_add(hubble_velocity(z1), hubble_velocity(z2))
    np.testing.assert_allclose(composed, hubble_velocity((1 + z1) * (1 + z2) - 1), rtol=1e-12)


def test_los_velocity_limits():
    z = 0.117
    # pure peculiar motion at the cluster's distance: v_los ~= v_pec / (1 + ...), tiny corrections
    v = los_velocity(z, np.zeros(3), np.array([-1000.0, 0.0, 1000.0]), 0.0)
    np.testing.assert_allclose(v, [-1000, 0, 1000], rtol=1e-4)
    assert v[1] == 0.0 and v[0] == pytest.approx(-v[2], rel=1e-3)
    # pure Hubble flow: 1 h^-1 Mpc physical behind the cluster recedes at ~H(z)
    h = 100 * get_cosmology().Ez(z)
    v = los_velocity(z, np.array([1.0]), np.zeros(1), 0.0)
    np.testing.assert_allclose(v, h, rtol=2e-3)
    # a common peculiar velocity of cluster and galaxy nearly cancels
    v = los_velocity(z, np.zeros(1), np.array([500.0]), 500.0)
    np.testing.assert_allclose(v, 0.0, atol=1e-9)
    with pytest.raises(ValueError, match="outside the tabulated range"):
        los_velocity(z, np.array([-1e6]), np.zeros(1), 0.0)


def test_sky_round_trip_is_exact():
    """A simulated cluster placed on the sky and read back gives the same phase space."""
    from pyro_clusters.cosmology import projected_to_sky, sky_to_projected
    from pyro_clusters.simulator import SimulatorConfig, simulate

    cs = simulate(np.array([14.5]), SimulatorConfig(), np.random.default_rng(0))
    g = cs.galaxies
    for ra0, dec0 in ((150.0, 2.2), (359.9, -60.0), (0.05, 85.0)):
        ra, dec, cz = projected_to_sky(g["x_proj"], g["y_proj"], g["v_los"], ra0, dec0, 0.117)
        x, y, v = sky_to_projected(ra, dec, cz, ra0, dec0, 0.117)
        np.testing.assert_allclose(x, g["x_proj"], atol=1e-9)
        np.testing.assert_allclose(y, g["y_proj"], atol=1e-9)
        np.testing.assert_allclose(v, g["v_los"], atol=1e-6)


def test_sky_placement_matches_astropy_separations_and_redshifts():
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    from pyro_clusters.cosmology import angular_diameter_distance, projected_to_sky

    x, y = np.array([1.0, 0.0, -0.5]), np.array([0.0, 1.6, 0.3])
    ra, dec, cz = projected_to_sky(x, y, np.zeros(3), 150.0, 30.0, 0.117)
    sep = SkyCoord(150.0 * u.deg, 30.0 * u.deg).separation(SkyCoord(ra * u.deg, dec * u.deg))
    d_a = angular_diameter_distance(0.117)
    np.testing.assert_allclose(np.tan(sep.rad) * d_a, np.hypot(x, y), rtol=1e-10)
    np.testing.assert_allclose(cz, C_KMS * 0.117, rtol=1e-12)  # v_los = 0: the cluster's z
    assert ra[0] > 150.0 and dec[1] > 30.0  # +x is east, +y is north
