"""The tabulated NFW tracer radii and Jeans dispersions against closed forms and the equation."""

import numpy as np
import pytest
from scipy.special import spence
from scipy.stats import kstest

from pyro_clusters.simulator.profiles import nfw_enclosed, tracer_tables


def lokas_mamon_isotropic(s, c):
    """sigma_r^2 / V200^2 of isotropic NFW tracers in their own potential, Lokas & Mamon 2001
    eq. 14 (untruncated). Li2(-x) = spence(1 + x) in scipy's convention."""
    g = 1.0 / nfw_enclosed(c)
    cs = c * s
    return 0.5 * c**2 * g * s * (1 + cs) ** 2 * (
        np.pi**2 - np.log(cs) - 1 / cs - 1 / (1 + cs) ** 2 - 6 / (1 + cs)
        + (1 + 1 / cs**2 - 4 / cs - 2 / (1 + cs)) * np.log1p(cs)
        + 3 * np.log1p(cs) ** 2 + 6 * spence(1 + cs)
    )


@pytest.mark.parametrize("c", [3.0, 5.0, 10.0])
def test_isotropic_jeans_matches_lokas_mamon(c):
    tab = tracer_tables(1.0, 1e6, 3.0)  # tracers = dark matter, no truncation
    u = np.geomspace(0.01, 2.0, 25)
    sig2 = tab.sigma_r(u, np.full_like(u, c), np.zeros_like(u)) ** 2
    np.testing.assert_allclose(sig2, lokas_mamon_isotropic(u, c), rtol=2e-3)


def test_anisotropic_jeans_equation_residual():
    """d(nu sigma_r^2)/du + 2 beta/u nu sigma_r^2 = -nu m(cu)/(m(c) u^2), by finite differences."""
    ratio, u_t = 0.6, 1.5
    tab = tracer_tables(ratio, u_t, 3.0)
    c, beta_inf = 5.0, 0.5
    u = np.geomspace(0.05, 2.0, 400)
    x = ratio * c * u
    nu = 1 / (x * (1 + x) ** 2) / (1 + (u / u_t) ** 4)
    s2 = tab.sigma_r(u, np.full_like(u, c), np.full_like(u, beta_inf)) ** 2
    beta = beta_inf * u / (u + 1 / c)
    lhs = np.gradient(nu * s2, u) + 2 * beta / u * nu * s2
    rhs = -nu * nfw_enclosed(c * u) / (nfw_enclosed(c) * u**2)
    np.testing.assert_allclose(lhs[5:-5], rhs[5:-5], rtol=0.03)


def test_radii_follow_the_nfw_profile():
    tab = tracer_tables(1.0, 1e6, 1.0)  # untruncated NFW sampled out to R200c
    c = 4.0
    u = tab.sample_radius(np.full(20000, c), np.random.default_rng(0))
    assert u.min() > 0 and u.max() <= 1.0
    cdf = lambda q: nfw_enclosed(c * q) / nfw_enclosed(c)  # noqa: E731
    assert kstest(u, cdf).pvalue > 0.01


def test_radius_sampling_uses_each_galaxy_concentration():
    tab = tracer_tables(1.0, 1e6, 1.0)
    rng = np.random.default_rng(1)
    c = np.where(rng.random(40000) < 0.5, 2.0, 15.0)
    u = tab.sample_radius(c, rng)
    for cc in (2.0, 15.0):
        cdf = lambda q, cc=cc: nfw_enclosed(cc * q) / nfw_enclosed(cc)  # noqa: E731
        assert kstest(u[c == cc], cdf).pvalue > 0.01


def test_radius_sampling_is_continuous_in_concentration():
    # A concentration half-way between two table rows: quantile interpolation must reproduce
    # the NFW profile of that c, not of the nearest row (1.5 % off in c; with rounding to the
    # nearest row this KS test gives p = 1e-4, with interpolation p = 0.36).
    from pyro_clusters.simulator.profiles import _LOG_C

    tab = tracer_tables(1.0, 1e6, 1.0)
    c = float(np.exp(23.5 * (_LOG_C[1] - _LOG_C[0])))
    u = tab.sample_radius(np.full(200_000, c), np.random.default_rng(2))
    cdf = lambda q: nfw_enclosed(c * q) / nfw_enclosed(c)  # noqa: E731
    assert kstest(u, cdf).pvalue > 0.01
