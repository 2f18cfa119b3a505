"""theta = log10 M200c -> observed clusters: the simulator's top level.

:func:`simulate` is a pure function of (theta, config, rng), vectorised over a batch of clusters.
Its steps, each a switchable component of :class:`~pyro_clusters.simulator.config.SimulatorConfig`:

1. main halo (:mod:`~pyro_clusters.simulator.halo`): concentration with scatter, triaxial shape
   and random orientation, anisotropy, richness with scatter, a central and NFW satellites with
   Jeans velocities; an infalling group for a fraction of clusters (satellites moved into it) and
   a merging secondary halo for another fraction;
2. environment (:mod:`~pyro_clusters.simulator.environment`, cylinder setup only): neighbour
   halos with their galaxies, field galaxies, infall;
3. observation (:mod:`~pyro_clusters.simulator.observe`): v_los with the Hubble flow, errors,
   selection.

:func:`simulate_selected` draws theta from a prior until a requested number of clusters passes
N_min, which is what a dataset holds (Ho et al. 2019 discards clusters below N_min).
"""

from __future__ import annotations

import numpy as np

from pyro_clusters.cosmology import G_MPC_KMS2_MSUN, r200c, v200c
from pyro_clusters.data.clusters import GALAXY_SOURCES, ClusterSet
from pyro_clusters.simulator.config import SimulatorConfig
from pyro_clusters.simulator.environment import simulate_environment
from pyro_clusters.simulator.halo import (
    Halos,
    concentration,
    mean_satellites,
    populate_satellites,
    random_rotations,
    random_unit_vectors,
    sample_shapes,
    satellite_counts,
    velocity_axis_factors,
)
from pyro_clusters.simulator.observe import observe

__all__ = ["main_halos", "simulate", "simulate_selected"]


def main_halos(log_m: np.ndarray, config: SimulatorConfig, rng: np.random.Generator):
    """Latents of the main halos (c, beta_inf, shape, orientation) and their satellite counts.

    Returns:
        latents dict, c (n,), beta_inf (n,), rotation (n, 3, 3) or None, axes (n, 3) or None,
        velocity factors (n, 3) or None, satellite counts (n,).
    """
    hc, z, b = config.halo, config.z, log_m.size
    c = concentration(log_m, z, hc, rng)
    beta = rng.uniform(*hc.beta_inf_range, b) if hc.anisotropic else np.zeros(b)
    if hc.triaxial:
        q, s = sample_shapes(log_m, z, rng)
        a = (q * s) ** (-1.0 / 3.0)
        axes = np.column_stack([a, q * a, s * a])
        rot = random_rotations(b, rng)
        vfac = velocity_axis_factors(axes, hc.velocity_shape_exponent)
    else:
        q = s = np.ones(b)
        axes = vfac = None
        rot = random_rotations(b, rng)  # kept for the recorded line-of-sight cosines
    n_sat, _ = satellite_counts(log_m, config.occupation, rng)
    latents = {
        "concentration": c,
        "beta_inf": beta,
        "axis_q": q,
        "axis_s": s,
        "los_major_cos": np.abs(rot[:, 2, 0]),
        "los_minor_cos": np.abs(rot[:, 2, 2]),
    }
    return latents, c, beta, rot if hc.triaxial else None, axes, vfac, n_sat


def simulate(log_m: np.ndarray, config: SimulatorConfig, rng: np.random.Generator) -> ClusterSet:
    """Simulate one observed cluster per entry of ``log_m``.

    Args:
        log_m: log10(M200c / h^-1 Msun), shape (B,).
        config: simulator configuration.
        rng: random generator (the only source of randomness).

    Returns:
        A :class:`~pyro_clusters.data.clusters.ClusterSet` of all B clusters in input order,
        including those with fewer than N_min galaxies (filter with ``n_gal``); cluster columns
        as documented in ``CLUSTER_COLUMNS``.
    """
    log_m = np.atleast_1d(np.asarray(log_m, dtype=float))
    if log_m.ndim != 1 or not np.all(np.isfinite(log_m)):
        raise ValueError("log_m must be a finite 1-D array of log10(M200c / h^-1 Msun)")
    hc, z, nb = config.halo, config.z, log_m.size
    mass = 10.0**log_m
    r200, v200 = r200c(mass, z), v200c(mass, z)
    latents, c, beta, rot, axes, vfac, n_sat = main_halos(log_m, config, rng)

    # Infalling groups: a share of the satellites moves into a small halo falling in.
    has_sub = rng.random(nb) < hc.substructure_fraction
    share = rng.uniform(*hc.substructure_member_fraction, nb)
    n_grp = np.where(has_sub, rng.binomial(n_sat, share), 0)
    has_sub &= n_grp > 0
    n_main = n_sat - n_grp
    grp_log_m = log_m + np.log10(np.maximum(n_grp, 1) / np.maximum(
        mean_satellites(log_m, config.occupation), 1.0))
    grp_log_m = np.clip(grp_log_m, 11.0, None)
    d_grp = rng.uniform(0.5, 1.5, nb) * r200
    dir_grp = random_unit_vectors(nb, rng)
    v_grp = (-rng.uniform(0.3, 1.0, nb) * v200)[:, None] * dir_grp + (
        0.3 * v200[:, None] * rng.standard_normal((nb, 3)))

    # Mergers: a secondary halo with its own galaxies on a radial approach.
    has_merger = rng.random(nb) < hc.merger_fraction
    mu = np.where(has_merger, rng.uniform(*hc.merger_mass_ratio_range, nb), 0.0)
    mrg_log_m = log_m + np.log10(np.maximum(mu, 1e-3))
    mrg_sat, _ = satellite_counts(mrg_log_m, config.occupation, rng)
    mrg_sat = np.where(has_merger, mrg_sat, 0)
    d_mrg = rng.uniform(0.3, 1.5, nb) * r200
    dir_mrg = random_unit_vectors(nb, rng)
    v_free = np.sqrt(2.0 * G_MPC_KMS2_MSUN * mass * (1.0 + mu) / d_mrg)
    v_mrg = (-rng.uniform(0.5, 1.0, nb) * v_free)[:, None] * dir_mrg

    zeros3 = np.zeros((nb, 3))
    main = Halos(log_m, c, beta, zeros3, zeros3, n_main, rot, axes, vfac)
    groups = Halos(grp_log_m, concentration(grp_log_m, z, hc, rng), np.zeros(nb),
                   d_grp[:, None] * dir_grp, v_grp, n_grp)
    mergers = Halos(mrg_log_m, concentration(mrg_log_m, z, hc, rng), np.zeros(nb),
                    d_mrg[:, None] * dir_mrg, v_mrg, mrg_sat)
    pos_m, vel_m, own_m = populate_satellites(main, z, hc, rng)
    pos_g, vel_g, own_g = populate_satellites(groups, z, hc, rng)
    pos_s, vel_s, own_s = populate_satellites(mergers, z, hc, rng)
    mrg_idx = np.flatnonzero(has_merger)

    src = GALAXY_SOURCES
    parts = [
        (zeros3, zeros3, np.arange(nb), src["central"]),
        (pos_m, vel_m, own_m, src["satellite"]),
        (pos_g, vel_g, own_g, src["substructure"]),
        (pos_s, vel_s, own_s, src["merger"]),
        (d_mrg[mrg_idx, None] * dir_mrg[mrg_idx], v_mrg[mrg_idx], mrg_idx, src["merger"]),
    ]
    richness_3d = np.bincount(np.concatenate([p[2] for p in parts]), minlength=nb)
    if config.setup == "cylinder":
        env = simulate_environment(log_m, c, config, rng)
        parts.append((env["pos"], env["vel"], env["cluster"], env["source"]))

    pos = np.concatenate([p[0] for p in parts])
    vel = np.concatenate([p[1] for p in parts])
    cluster = np.concatenate([p[2] for p in parts]).astype(np.int64)
    source = np.concatenate([np.broadcast_to(np.asarray(p[3], np.int8), p[2].shape)
                             for p in parts])
    member = source <= src["merger"]

    vpec = hc.bulk_velocity_dispersion_kms * rng.standard_normal(nb)
    x, y, v, keep = observe(pos, vel, member, vpec[cluster], config, rng, cluster=cluster)
    # Galaxies in random order within each cluster: nothing downstream may rely on order.
    idx = np.flatnonzero(keep)
    idx = idx[np.lexsort((rng.random(idx.size), cluster[idx]))]
    counts = np.bincount(cluster[idx], minlength=nb)
    galaxies = {
        "x_proj": x[idx].astype(np.float32),
        "y_proj": y[idx].astype(np.float32),
        "v_los": v[idx].astype(np.float32),
        "member": member[idx],
        "source": source[idx],
    }
    clusters = {
        "log_m": log_m,
        "n_gal": counts.astype(np.int64),
        "n_members": np.bincount(cluster[idx], weights=member[idx], minlength=nb).astype(np.int64),
        "richness_3d": richness_3d.astype(np.int64),
        "r200c": r200,
        **latents,
        "has_substructure": has_sub,
        "has_merger": has_merger,
        "merger_mass_ratio": mu,
        "vpec_los": vpec,
    }
    obs = config.observation
    attrs = {"setup": config.setup, "z": config.z, "aperture": obs.aperture,
             "v_cut": obs.v_cut, "n_min": obs.n_min, "source": "simulator"}
    return ClusterSet(clusters, galaxies, np.concatenate([[0], np.cumsum(counts)]), attrs)


def simulate_selected(
    n: int, sampler, config: SimulatorConfig, rng: np.random.Generator,
    *, chunk: int | None = None,
) -> tuple[ClusterSet, int]:
    """Draw theta from ``sampler`` and simulate until ``n`` clusters have >= N_min galaxies.

    Rejection on N_min is a cut on the data x alone, so the posterior p(theta | x) of a selected
    cluster is unchanged; the effective distribution of theta in the set is the sampler's times
    the selection probability (fewer low-mass clusters), exactly as in Ho et al. 2019.

    Args:
        n: number of selected clusters wanted.
        sampler: object with ``sample(k, rng) -> (k,)`` log10 M (a prior or the HMF sampler).
        config: simulator configuration.
        rng: random generator.
        chunk: clusters simulated per round (default: a little more than needed).

    Returns:
        (the first ``n`` selected clusters in draw order, number of clusters simulated).
    """
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    n_min = config.observation.n_min
    found: list[ClusterSet] = []
    have = tried = 0
    rate = 1.0
    for _ in range(10_000):
        # First round: as many as wanted (most draws pass N_min); later rounds: what is still
        # missing at the measured acceptance rate, plus a little.
        k = chunk or int(np.ceil((n - have) / max(rate, 0.02) * (1.1 if tried else 1.0))) + 4
        batch = simulate(sampler.sample(k, rng), config, rng)
        ok = batch.n_gal >= n_min
        tried += k
        if ok.any():
            found.append(batch.select(ok))
            have += int(ok.sum())
        rate = max(have / tried, 1e-3)
        if have >= n:
            out = ClusterSet.concatenate(found)
            return out.select(np.arange(n)), tried
    raise RuntimeError(
        f"only {have} of {tried} simulated clusters passed N_min={n_min}; "
        "the mass range or the selection leaves almost nothing to observe"
    )
