"""What surrounds a cluster along the line of sight (cylinder setup).

Neighbour halos are an inhomogeneous Poisson process around the cluster with intensity

    lambda(M, r) = n(M) <N_cen>(M) [1 + b_c b(M) xi_lin(r)]        (per d log M d^3 r)

(Tinker et al. 2008 mass function, Tinker et al. 2010 bias, linear matter correlation function,
all from colossus), drawn as the superposition of a uniform process (the "1") and a clustered
one (the "b_c b xi" term), each sampled exactly; halo exclusion then removes any neighbour whose
centre lies within R200c_cluster + R200c_neighbour of the cluster. Only halos that host a
central above the stellar-mass cut are drawn (weight <N_cen>, Zheng et al. 2007); each gets its
central galaxy and Poisson satellites through the same occupation and Jeans machinery as the
cluster. Field galaxies are a uniform population at ``field_density``. Neighbours and field
galaxies fall towards the cluster with the mean infall of Croft, Dalton & Efstathiou (1999),

    v_r(r) = -(1/3) f(z) H(z) r delta(<r) / (1 + delta(<r))^(1/4),    f = Omega_m(z)^0.55,

delta(<r) = M_NFW(<r) / (4/3 pi r^3 rho_m) + b_c xibar_lin(r), plus an isotropic pairwise
dispersion. Everything is generated inside a cylinder of radius R_ap + margin and half-depth
(v_cut + margin_v) / H(z) around the cluster, enough for the observation cut to see all of it.

Units: physical h^-1 Mpc, km/s; colossus' correlation function takes comoving h^-1 Mpc.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.integrate import cumulative_trapezoid

from pyro_clusters.cosmology import get_cosmology, hubble_parameter, r200c
from pyro_clusters.data.clusters import GALAXY_SOURCES
from pyro_clusters.simulator.config import SimulatorConfig
from pyro_clusters.simulator.halo import (
    Halos,
    concentration,
    mean_centrals,
    populate_satellites,
    satellite_counts,
)
from pyro_clusters.simulator.priors import halo_mass_function
from pyro_clusters.simulator.profiles import nfw_enclosed

__all__ = ["EnvironmentTables", "environment_tables", "halo_bias", "infall_velocity",
           "simulate_environment"]


@dataclass(frozen=True)
class EnvironmentTables:
    """Tables the environment needs, built once per configuration.

    Attributes:
        radius: generation cylinder radius [h^-1 Mpc].
        depth: generation cylinder half-depth along the line of sight [h^-1 Mpc].
        log_m: mass grid of neighbour halos.
        cdf_uniform, cdf_clustered: inverse-CDF tables of neighbour log-mass for the two parts.
        density_uniform: physical density of central-hosting halos [h^3 Mpc^-3].
        density_bias: physical density weighted by bias, ∫ n <N_cen> b dlogM [h^3 Mpc^-3].
        xi_volume: ∫_cylinder xi_lin dV [h^-3 Mpc^3].
        cell_cdf, cell_r, cell_z, cell_dr, cell_dz: cells of the clustered position sampler.
        r_grid, xibar: mean correlation function inside radius r (physical), for the infall.
        bias_log_m, bias: halo bias table.
    """

    radius: float
    depth: float
    log_m: np.ndarray
    cdf_uniform: np.ndarray
    cdf_clustered: np.ndarray
    density_uniform: float
    density_bias: float
    xi_volume: float
    cell_cdf: np.ndarray
    cell_r: np.ndarray
    cell_z: np.ndarray
    cell_dr: float
    cell_dz: float
    r_grid: np.ndarray
    xibar: np.ndarray
    bias_log_m: np.ndarray
    bias: np.ndarray


@lru_cache(maxsize=8)
def _bias_table(z: float) -> tuple[np.ndarray, np.ndarray]:
    from colossus.lss import bias as col_bias

    get_cosmology()
    log_m = np.linspace(9.0, 16.2, 145)
    return log_m, np.asarray(col_bias.haloBias(10.0**log_m, z=z, mdef="200c", model="tinker10"))


def halo_bias(log_m: np.ndarray, z: float) -> np.ndarray:
    """Linear halo bias b(M200c) of Tinker et al. 2010 (colossus)."""
    grid, b = _bias_table(float(z))
    return np.interp(log_m, grid, b)


@lru_cache(maxsize=8)
def environment_tables(config: SimulatorConfig) -> EnvironmentTables:
    """Build (once per configuration) the environment's tables."""
    cosmo = get_cosmology()
    env, obs, z = config.environment, config.observation, config.z
    a3 = (1.0 + z) ** 3  # comoving -> physical number density
    radius = obs.aperture + env.margin_radius
    depth = (obs.v_cut + env.margin_velocity_kms) / hubble_parameter(z)

    log_m = np.linspace(*env.neighbour_log_m_range, 400)
    dn_dlogm = halo_mass_function(log_m, z) * a3
    weight = dn_dlogm * mean_centrals(log_m, config.occupation)
    weight_b = weight * halo_bias(log_m, z)
    cdf_u = cumulative_trapezoid(weight, log_m, initial=0.0)
    cdf_c = cumulative_trapezoid(weight_b, log_m, initial=0.0)

    # Cells in (R, |Z|) for positions ∝ xi_lin(r) inside the cylinder.
    n_r, n_z = 64, 512
    dr, dz = radius / n_r, depth / n_z
    rc = (np.arange(n_r) + 0.5) * dr
    zc = (np.arange(n_z) + 0.5) * dz
    rr, zz = np.meshgrid(rc, zc, indexing="ij")
    r3d_com = np.sqrt(rr**2 + zz**2) * (1.0 + z)
    r_eval = np.geomspace(r3d_com.min(), r3d_com.max(), 400)
    xi_eval = np.clip(cosmo.correlationFunction(r_eval, z), 0.0, None)
    xi = np.interp(r3d_com, r_eval, xi_eval)
    vol = 2.0 * np.pi * rr * dr * 2.0 * dz  # both signs of Z
    w = (xi * vol).ravel()
    xi_volume = float(w.sum())

    # Mean xi inside physical radius r, for the infall overdensity.
    r_grid = np.geomspace(0.02, np.hypot(radius, depth) * 1.5, 300)
    xi_r = np.clip(cosmo.correlationFunction(r_grid * (1.0 + z), z), 0.0, None)
    xibar = 3.0 * cumulative_trapezoid(xi_r * r_grid**2, r_grid, initial=0.0) / r_grid**3
    bias_log_m, bias = _bias_table(float(z))
    return EnvironmentTables(
        radius=radius,
        depth=depth,
        log_m=log_m,
        cdf_uniform=cdf_u / cdf_u[-1],
        cdf_clustered=cdf_c / cdf_c[-1],
        density_uniform=float(cdf_u[-1]),
        density_bias=float(cdf_c[-1]),
        xi_volume=xi_volume,
        cell_cdf=np.cumsum(w) / w.sum(),
        cell_r=rr.ravel(),
        cell_z=zz.ravel(),
        cell_dr=dr,
        cell_dz=dz,
        r_grid=r_grid,
        xibar=xibar,
        bias_log_m=bias_log_m,
        bias=bias,
    )


def infall_velocity(
    r: np.ndarray, log_m_cluster: np.ndarray, c_cluster: np.ndarray, bias_cluster: np.ndarray,
    config: SimulatorConfig, tables: EnvironmentTables,
) -> np.ndarray:
    """Mean radial peculiar velocity towards the cluster (Croft et al. 1999) [km/s, < 0 inward].

    Args:
        r: physical distance from the cluster centre [h^-1 Mpc], (n,).
        log_m_cluster: log10 M200c of the cluster each point belongs to, (n,).
        c_cluster: its concentration, (n,).
        bias_cluster: its linear halo bias, (n,).
        config: simulator configuration (redshift).
        tables: environment tables (mean correlation function).
    """
    cosmo = get_cosmology()
    z = config.z
    m = 10.0**log_m_cluster
    rv = r200c(m, z)
    m_in = m * nfw_enclosed(c_cluster * r / rv) / nfw_enclosed(c_cluster)
    rho_m = cosmo.rho_m(z) * 1e9  # Msun h^2 / Mpc^3, physical
    delta = m_in / (4.0 / 3.0 * np.pi * r**3 * rho_m) + bias_cluster * np.interp(
        r, tables.r_grid, tables.xibar
    )
    growth = cosmo.Om(z) ** 0.55
    return -(1.0 / 3.0) * growth * hubble_parameter(z) * r * delta / (1.0 + delta) ** 0.25


def _uniform_in_cylinder(n: int, radius: float, depth: float, rng: np.random.Generator):
    rad = radius * np.sqrt(rng.random(n))
    phi = 2.0 * np.pi * rng.random(n)
    return np.column_stack([rad * np.cos(phi), rad * np.sin(phi), depth * (2 * rng.random(n) - 1)])


def _clustered_in_cylinder(n: int, tables: EnvironmentTables, rng: np.random.Generator):
    cell = np.searchsorted(tables.cell_cdf, rng.random(n))
    cell = np.minimum(cell, tables.cell_cdf.size - 1)
    # Within a cell: R^2 uniform (area element), Z uniform, random sign and azimuth.
    r_lo = tables.cell_r[cell] - 0.5 * tables.cell_dr
    r_hi = r_lo + tables.cell_dr
    rad = np.sqrt(r_lo**2 + rng.random(n) * (r_hi**2 - r_lo**2))
    zpos = (tables.cell_z[cell] + (rng.random(n) - 0.5) * tables.cell_dz)
    zpos *= np.where(rng.random(n) < 0.5, -1.0, 1.0)
    phi = 2.0 * np.pi * rng.random(n)
    return np.column_stack([rad * np.cos(phi), rad * np.sin(phi), zpos])


def _sample_log_m(cdf: np.ndarray, grid: np.ndarray, n: int, rng: np.random.Generator):
    return np.interp(rng.random(n), cdf, grid)


def simulate_environment(
    log_m: np.ndarray, c: np.ndarray, config: SimulatorConfig, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Neighbour halos' galaxies and field galaxies around a batch of clusters.

    Args:
        log_m: cluster masses log10(M200c / h^-1 Msun), (B,).
        c: cluster concentrations, (B,).
        config: simulator configuration.
        rng: random generator.

    Returns:
        dict with ``pos`` (N, 3) [h^-1 Mpc] and ``vel`` (N, 3) [km/s] relative to the cluster
        (observer frame, line of sight +z), ``cluster`` (N,) index into the batch and ``source``
        (N,) int8 galaxy-source codes (4 neighbour central, 5 neighbour satellite, 6 field).
    """
    env, z = config.environment, config.z
    tables = environment_tables(config)
    n_clusters = log_m.size
    volume = np.pi * tables.radius**2 * 2.0 * tables.depth
    b_cluster = halo_bias(log_m, z)
    parts_pos, parts_cl, parts_lm = [], [], []

    if env.neighbours:
        n_u = rng.poisson(tables.density_uniform * volume, n_clusters)
        n_c = rng.poisson(tables.density_bias * b_cluster * tables.xi_volume)
        cl_u = np.repeat(np.arange(n_clusters), n_u)
        cl_c = np.repeat(np.arange(n_clusters), n_c)
        parts_pos += [_uniform_in_cylinder(cl_u.size, tables.radius, tables.depth, rng),
                      _clustered_in_cylinder(cl_c.size, tables, rng)]
        parts_cl += [cl_u, cl_c]
        parts_lm += [_sample_log_m(tables.cdf_uniform, tables.log_m, cl_u.size, rng),
                     _sample_log_m(tables.cdf_clustered, tables.log_m, cl_c.size, rng)]
    if parts_pos:
        h_pos = np.concatenate(parts_pos)
        h_cl = np.concatenate(parts_cl)
        h_lm = np.concatenate(parts_lm)
        dist = np.linalg.norm(h_pos, axis=1)
        keep = dist > r200c(10.0**log_m[h_cl], z) + r200c(10.0**h_lm, z)
        h_pos, h_cl, h_lm = h_pos[keep], h_cl[keep], h_lm[keep]
    else:
        h_pos, h_cl, h_lm = np.zeros((0, 3)), np.zeros(0, np.int64), np.zeros(0)

    n_field = rng.poisson(env.field_density * (1.0 + z) ** 3 * volume, n_clusters)
    f_cl = np.repeat(np.arange(n_clusters), n_field)
    f_pos = _uniform_in_cylinder(f_cl.size, tables.radius, tables.depth, rng)

    def bulk(pos: np.ndarray, cl: np.ndarray) -> np.ndarray:
        v = env.pairwise_dispersion_kms * rng.standard_normal(pos.shape)
        if env.infall and cl.size:
            r = np.maximum(np.linalg.norm(pos, axis=1), 1e-3)
            vr = infall_velocity(r, log_m[cl], c[cl], b_cluster[cl], config, tables)
            v += pos / r[:, None] * vr[:, None]
        return v

    h_vel = bulk(h_pos, h_cl)
    f_vel = bulk(f_pos, f_cl)

    hcfg = config.halo
    n_sat, _ = satellite_counts(h_lm, config.occupation, rng)
    neighbours = Halos(
        log_m=h_lm,
        c=concentration(h_lm, z, hcfg, rng),
        beta_inf=np.zeros_like(h_lm),
        center=h_pos,
        bulk_velocity=h_vel,
        n_sat=n_sat,
    )
    s_pos, s_vel, owner = populate_satellites(neighbours, z, hcfg, rng)
    return {
        "pos": np.concatenate([h_pos, s_pos, f_pos]),
        "vel": np.concatenate([h_vel, s_vel, f_vel]),
        "cluster": np.concatenate([h_cl, h_cl[owner], f_cl]).astype(np.int64),
        "source": np.concatenate([
            np.full(h_cl.size, GALAXY_SOURCES["neighbour_central"], np.int8),
            np.full(owner.size, GALAXY_SOURCES["neighbour_satellite"], np.int8),
            np.full(f_cl.size, GALAXY_SOURCES["field"], np.int8),
        ]),
    }
