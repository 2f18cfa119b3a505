"""Observation: projection, relativistic line-of-sight velocity, errors and selection.

The line of sight is the +z axis of the observer frame (the main halo carries the random
orientation), so a galaxy at (x, y, z) relative to the cluster centre is seen at
x_proj = x, y_proj = y (small-angle approximation, Ho et al. 2019 eqs. 15-16), and
v_los follows Ho et al. 2019 eqs. 17-22 (:func:`pyro_clusters.cosmology.los_velocity`).

Selection:
    idealized  true members only, at any projected radius (Wang, Thiele & Ho 2026 section 3.1);
    cylinder   every galaxy with R_proj <= R_ap and |v_los| <= v_cut (Ho et al. 2019 section 2.2).
Optional Gaussian velocity errors are added before the cut (the cut is made on observed
redshifts), random incompleteness removes galaxies independently, and fibre collisions remove
one galaxy of a close pair on the sky with a given probability (spectroscopic incompleteness
that grows with the projected density, i.e. in cluster cores). Collisions are decided among
every galaxy projected inside the aperture, before the velocity cut, as a targeting
algorithm that does not know redshifts would.
"""

from __future__ import annotations

import numpy as np

from pyro_clusters.cosmology import DistanceTable, distance_table, los_velocity
from pyro_clusters.simulator.config import SimulatorConfig

__all__ = ["fiber_collided", "observe"]


def observe(
    pos: np.ndarray,
    vel: np.ndarray,
    member: np.ndarray,
    vpec_cluster_los: np.ndarray,
    config: SimulatorConfig,
    rng: np.random.Generator,
    table: DistanceTable | None = None,
    cluster: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Project galaxies and decide which are observed.

    Args:
        pos: positions relative to the cluster centre [physical h^-1 Mpc], (n, 3); +z points
            away from the observer.
        vel: peculiar velocities relative to the cluster's bulk motion [km/s], (n, 3).
        member: true membership, (n,).
        vpec_cluster_los: line-of-sight peculiar velocity of each galaxy's cluster [km/s], (n,).
        config: simulator configuration.
        rng: random generator.
        table: d_C(z) table of the cosmology the positions live in (an N-body catalogue's,
            :mod:`pyro_clusters.catalog`); default the package's.
        cluster: index of each galaxy's cluster, (n,): fibre collisions pair galaxies of the
            same cluster only (None: all galaxies are one field).

    Returns:
        x_proj [h^-1 Mpc], y_proj [h^-1 Mpc], v_los [km/s], observed mask; each (n,).
    """
    obs = config.observation
    # at low redshift the environment generated in front of the cluster can reach the
    # observer: such galaxies do not exist (nothing lies at negative distance)
    if obs.hubble_flow:
        d_cluster = (table or distance_table()).distance(config.z)
        behind = d_cluster + (1.0 + config.z) * pos[:, 2] <= 0.0
    else:
        behind = np.zeros(len(pos), bool)
    v_los = los_velocity(
        config.z, np.where(behind, 0.0, pos[:, 2]), vpec_cluster_los + vel[:, 2],
        vpec_cluster_los, hubble_flow=obs.hubble_flow, table=table,
    )
    if obs.velocity_error_kms > 0:
        v_los = v_los + obs.velocity_error_kms * rng.standard_normal(v_los.shape)
    if config.setup == "idealized":
        keep = np.asarray(member, dtype=bool).copy()
    else:
        r_proj = np.hypot(pos[:, 0], pos[:, 1])
        keep = (r_proj <= obs.aperture) & (np.abs(v_los) <= obs.v_cut)
    keep &= ~behind
    if obs.fiber_collision_arcsec > 0 and obs.fiber_collision_loss > 0:
        targets = (keep if config.setup == "idealized"
                   else np.hypot(pos[:, 0], pos[:, 1]) <= obs.aperture)
        keep &= ~fiber_collided(pos[:, 0], pos[:, 1], targets, cluster, config.z,
                                obs.fiber_collision_arcsec, obs.fiber_collision_loss, rng)
    if obs.incompleteness > 0:
        keep &= rng.random(keep.shape) >= obs.incompleteness
    return pos[:, 0], pos[:, 1], v_los, keep


def fiber_collided(x: np.ndarray, y: np.ndarray, targets: np.ndarray,
                   cluster: np.ndarray | None, z: float, arcsec: float, loss: float,
                   rng: np.random.Generator) -> np.ndarray:
    """Galaxies that lose their redshift to a fibre collision.

    Fibres go to a maximal set of targets of one cluster no two of which are closer than
    ``arcsec`` on the sky (physical separation arcsec x D_A(z)), chosen in random order as a
    tiling does (Luby's parallel rule: a target takes a fibre when its random priority beats
    every undecided neighbour's). Each target left without a fibre then loses its redshift
    with probability ``loss`` (overlapping plates recover the others).

    Args:
        x: projected x [physical h^-1 Mpc], (n,).
        y: projected y [physical h^-1 Mpc], (n,).
        targets: the galaxies competing for fibres, (n,).
        cluster: cluster index of each galaxy, (n,), or None (one field).
        z: redshift of the cluster(s).
        arcsec: collision scale [arcsec].
        loss: probability that a target without a fibre loses its redshift.
        rng: random generator.

    Returns:
        (n,) boolean, True for a galaxy that loses its redshift.
    """
    from scipy.spatial import cKDTree

    from pyro_clusters.cosmology import angular_diameter_distance

    lost = np.zeros(x.shape, bool)
    idx = np.flatnonzero(targets)
    if idx.size < 2:
        return lost
    r_c = np.deg2rad(arcsec / 3600.0) * float(angular_diameter_distance(z))
    group = np.zeros(idx.size) if cluster is None else np.asarray(cluster)[idx]
    # clusters far apart in one tree: no pair crosses from one cluster to another
    pts = np.column_stack([x[idx] + 1e4 * group, y[idx]])
    pairs = cKDTree(pts).query_pairs(r_c, output_type="ndarray")
    if not pairs.size:
        return lost
    a, b = pairs[:, 0], pairs[:, 1]
    prio = rng.random(idx.size)
    state = np.zeros(idx.size, np.int8)  # 0 undecided, 1 fibre, 2 collided
    while True:
        live = (state[a] == 0) & (state[b] == 0)
        undecided = state == 0
        if not live.any():
            state[undecided] = 1  # no undecided neighbour left
            break
        best = np.full(idx.size, np.inf)  # lowest priority among undecided neighbours
        np.minimum.at(best, a[live], prio[b[live]])
        np.minimum.at(best, b[live], prio[a[live]])
        win = undecided & (prio < best)
        state[win] = 1
        hit = (state[a] == 1) & (state[b] == 0)
        state[b[hit]] = 2
        hit = (state[b] == 1) & (state[a] == 0)
        state[a[hit]] = 2
    collided = np.flatnonzero(state == 2)
    lost[idx[collided[rng.random(collided.size) < loss]]] = True
    return lost
