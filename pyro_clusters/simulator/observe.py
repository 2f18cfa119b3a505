"""Observation: projection, relativistic line-of-sight velocity, errors and selection.

The line of sight is the +z axis of the observer frame (the main halo carries the random
orientation), so a galaxy at (x, y, z) relative to the cluster centre is seen at
x_proj = x, y_proj = y (small-angle approximation, Ho et al. 2019 eqs. 15-16), and
v_los follows Ho et al. 2019 eqs. 17-22 (:func:`pyro_clusters.cosmology.los_velocity`).

Selection:
    idealized  true members only, at any projected radius (Wang, Thiele & Ho 2026 section 3.1);
    cylinder   every galaxy with R_proj <= R_ap and |v_los| <= v_cut (Ho et al. 2019 section 2.2).
Optional Gaussian velocity errors are added before the cut (the cut is made on observed
redshifts), and random incompleteness removes galaxies independently.
"""

from __future__ import annotations

import numpy as np

from pyro_clusters.cosmology import DistanceTable, los_velocity
from pyro_clusters.simulator.config import SimulatorConfig

__all__ = ["observe"]


def observe(
    pos: np.ndarray,
    vel: np.ndarray,
    member: np.ndarray,
    vpec_cluster_los: np.ndarray,
    config: SimulatorConfig,
    rng: np.random.Generator,
    table: DistanceTable | None = None,
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

    Returns:
        x_proj [h^-1 Mpc], y_proj [h^-1 Mpc], v_los [km/s], observed mask; each (n,).
    """
    obs = config.observation
    v_los = los_velocity(
        config.z, pos[:, 2], vpec_cluster_los + vel[:, 2], vpec_cluster_los,
        hubble_flow=obs.hubble_flow, table=table,
    )
    if obs.velocity_error_kms > 0:
        v_los = v_los + obs.velocity_error_kms * rng.standard_normal(v_los.shape)
    if config.setup == "idealized":
        keep = np.asarray(member, dtype=bool).copy()
    else:
        r_proj = np.hypot(pos[:, 0], pos[:, 1])
        keep = (r_proj <= obs.aperture) & (np.abs(v_los) <= obs.v_cut)
    if obs.incompleteness > 0:
        keep &= rng.random(keep.shape) >= obs.incompleteness
    return pos[:, 0], pos[:, 1], v_los, keep
