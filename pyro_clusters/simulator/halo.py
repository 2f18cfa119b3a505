"""Halos and their galaxies: concentration, shape, occupation, positions and Jeans velocities.

One routine, :func:`populate_satellites`, places the satellites of any set of halos -- the main
cluster, an infalling group, a merging companion, or a neighbour halo -- so that every halo in
the simulator obeys the same physics. Positions are physical h^-1 Mpc and velocities km/s in the
observer frame (line of sight along +z), relative to the cluster centre and its bulk motion.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.special import erf

from pyro_clusters.cosmology import get_cosmology, r200c, v200c
from pyro_clusters.simulator.config import HaloConfig, OccupationConfig
from pyro_clusters.simulator.profiles import tracer_tables

__all__ = [
    "Halos",
    "concentration",
    "mean_centrals",
    "mean_satellites",
    "populate_satellites",
    "random_rotations",
    "random_unit_vectors",
    "sample_shapes",
    "satellite_counts",
    "velocity_axis_factors",
]


@lru_cache(maxsize=8)
def _concentration_table(model: str, z: float) -> tuple[np.ndarray, np.ndarray]:
    from colossus.halo import concentration as col_conc

    get_cosmology()
    log_m = np.linspace(9.0, 16.2, 145)
    c = col_conc.concentration(10.0**log_m, "200c", z, model=model)
    return log_m, np.log(c)


def concentration(
    log_m: np.ndarray, z: float, cfg: HaloConfig, rng: np.random.Generator | None = None
) -> np.ndarray:
    """c200c from the colossus c-M relation, with log-normal scatter when ``rng`` is given.

    Args:
        log_m: log10(M200c / h^-1 Msun), shape (n,).
        z: redshift.
        cfg: halo configuration (model name and scatter in dex).
        rng: random generator; ``None`` returns the median relation.

    Returns:
        c200c, shape (n,).
    """
    grid, log_c = _concentration_table(cfg.concentration_model, float(z))
    c = np.exp(np.interp(log_m, grid, log_c))
    if rng is not None and cfg.concentration_scatter_dex > 0:
        c = c * 10.0 ** (cfg.concentration_scatter_dex * rng.standard_normal(np.shape(log_m)))
    return c


def mean_centrals(log_m: np.ndarray, occ: OccupationConfig) -> np.ndarray:
    """<N_cen>(M) = 0.5 [1 + erf((log M - log M_min) / sigma_logM)] (Zheng et al. 2007)."""
    return 0.5 * (1.0 + erf((np.asarray(log_m) - occ.log_m_min) / occ.sigma_log_m))


def mean_satellites(log_m: np.ndarray, occ: OccupationConfig) -> np.ndarray:
    """<N_sat | central>(M) = ((M - M_0) / M_1)^alpha (Zheng et al. 2007), 0 below M_0."""
    m = 10.0 ** np.asarray(log_m, dtype=float)
    excess = np.clip(m - 10.0**occ.log_m0, 0.0, None)
    return (excess / 10.0**occ.log_m1) ** occ.alpha


def satellite_counts(
    log_m: np.ndarray, occ: OccupationConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw satellite counts: Poisson about a log-normally scattered mean.

    The log-normal factor exp(sigma_ln * g) keeps the median of the mean at <N_sat>; it is the
    intrinsic richness scatter at fixed mass that N-body halos show (15-25 % in ln N).

    Returns:
        (counts as int64, the scattered means), each shape (n,).
    """
    lam = mean_satellites(log_m, occ)
    if occ.richness_scatter_ln > 0:
        lam = lam * np.exp(occ.richness_scatter_ln * rng.standard_normal(lam.shape))
    return rng.poisson(lam).astype(np.int64), lam


def random_unit_vectors(n: int, rng: np.random.Generator) -> np.ndarray:
    """Isotropic unit vectors, shape (n, 3)."""
    v = rng.standard_normal((n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniformly distributed rotation matrices (Haar measure), shape (n, 3, 3).

    From normalised Gaussian quaternions (Shoemake 1992). Column k of R is principal axis k of
    the halo in the observer frame; row 2 is the line of sight in the halo's principal frame.
    """
    w, x, y, z = (rng.standard_normal((4, n)) / 1.0).copy()
    norm = np.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / norm, x / norm, y / norm, z / norm
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=1,
    )


def sample_shapes(
    log_m: np.ndarray, z: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Axis ratios q = b/a and s = c/a of triaxial halos (Jing & Suto 2002).

    JS02 eq. 15: s (M / M*)^(0.07 Omega_m(z)^0.7) is Gaussian with mean 0.54 and width 0.113;
    eq. 17: q given s has the parabolic density 3 / (2 (1 - r)) [1 - ((2q - 1 - r)/(1 - r))^2]
    on [r, 1], r = max(s, 0.5). M200c stands in for JS02's M_vir.

    Returns:
        (q, s), each shape (n,), with 0.2 <= s <= q <= 1.
    """
    from colossus.lss import peaks

    get_cosmology()
    cosmo = get_cosmology()
    m_star = peaks.nonLinearMass(z)
    scaled = np.clip(0.54 + 0.113 * rng.standard_normal(np.shape(log_m)), 0.25, 1.0)
    s = scaled * (10.0 ** np.asarray(log_m) / m_star) ** (-0.07 * cosmo.Om(z) ** 0.7)
    s = np.clip(s, 0.2, 1.0)
    r = np.maximum(s, 0.5)
    t = 2.0 * rng.beta(2.0, 2.0, size=s.shape) - 1.0  # density ∝ 1 - t^2 on [-1, 1]
    q = np.clip(0.5 * (t * (1.0 - r) + 1.0 + r), s, 1.0)
    return q, s


def velocity_axis_factors(axes: np.ndarray, exponent: float) -> np.ndarray:
    """Scale factors of the velocity ellipsoid along the shape axes, sigma_i ∝ a_i^eta.

    Normalised so that the sum of the three squared factors is 3 (total kinetic energy of the
    Jeans solution unchanged); Kasun & Evrard 2005 find the velocity ellipsoid aligned with, and
    rounder than, the mass.

    Args:
        axes: volume-normalised axis lengths (a, b, c), shape (n, 3).
        exponent: eta.

    Returns:
        factors, shape (n, 3).
    """
    k = axes**exponent
    return k / np.sqrt(np.mean(k * k, axis=1, keepdims=True))


@dataclass(frozen=True)
class Halos:
    """A set of halos to populate with satellites (one entry per halo).

    Attributes:
        log_m: log10(M200c / h^-1 Msun), (n,).
        c: dark-matter concentration, (n,).
        beta_inf: outer velocity anisotropy, (n,).
        center: position of the halo centre [h^-1 Mpc], observer frame, (n, 3).
        bulk_velocity: halo velocity relative to the cluster [km/s], (n, 3).
        n_sat: number of satellites to place, (n,).
        rotation: principal frame -> observer frame, (n, 3, 3), or None for spherical halos.
        axes: volume-normalised shape axes (a, b, c), (n, 3), or None.
        velocity_factors: velocity-ellipsoid factors, (n, 3), or None.
    """

    log_m: np.ndarray
    c: np.ndarray
    beta_inf: np.ndarray
    center: np.ndarray
    bulk_velocity: np.ndarray
    n_sat: np.ndarray
    rotation: np.ndarray | None = None
    axes: np.ndarray | None = None
    velocity_factors: np.ndarray | None = None


def populate_satellites(
    halos: Halos, z: float, cfg: HaloConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Place every halo's satellites and give them Jeans velocities.

    Radii follow the truncated NFW tracer profile (:mod:`pyro_clusters.simulator.profiles`),
    directions are isotropic, and a triaxial halo stretches them along its axes (ellipsoidal
    radius = spherical radius; the enclosed volume and mass are kept). Velocities have radial
    dispersion b_v sigma_r(r) (b_v the satellite velocity bias) and tangential
    sigma_t = sqrt(1 - beta(r)) b_v sigma_r (Gaussian line-of-sight distributions at each
    radius), then the velocity ellipsoid is stretched along the shape axes.

    Args:
        halos: the halos.
        z: redshift.
        cfg: halo configuration (tracer profile).
        rng: random generator.

    Returns:
        positions [h^-1 Mpc] (N, 3), velocities [km/s] (N, 3), halo index (N,) into ``halos``.
    """
    n_sat = np.asarray(halos.n_sat, dtype=np.int64)
    owner = np.repeat(np.arange(n_sat.size), n_sat)
    n = owner.size
    if n == 0:
        return np.zeros((0, 3)), np.zeros((0, 3)), owner
    tables = tracer_tables(cfg.tracer_concentration_ratio, cfg.truncation_radius_r200,
                           cfg.max_radius_r200)
    mass = 10.0 ** halos.log_m
    r200, v200 = r200c(mass, z), v200c(mass, z)
    c, beta_inf = halos.c[owner], halos.beta_inf[owner]

    u = tables.sample_radius(c, rng)
    rhat = random_unit_vectors(n, rng)
    sig_r = tables.sigma_r(u, c, beta_inf) * (cfg.satellite_velocity_bias * v200[owner])
    beta = beta_inf * u / (u + 1.0 / c)
    sig_t = np.sqrt(1.0 - beta) * sig_r
    g = rng.standard_normal((n, 3))
    g_r = np.sum(g * rhat, axis=1, keepdims=True)
    vel = rhat * (g_r * sig_r[:, None]) + (g - g_r * rhat) * sig_t[:, None]
    pos = rhat * (u * r200[owner])[:, None]

    if halos.rotation is not None:
        pos = pos * halos.axes[owner]
        vel = vel * halos.velocity_factors[owner]
        rot = halos.rotation[owner]
        pos = np.einsum("nij,nj->ni", rot, pos)
        vel = np.einsum("nij,nj->ni", rot, vel)
    return pos + halos.center[owner], vel + halos.bulk_velocity[owner], owner
