r"""Training clusters over a range of observing conditions, for one amortised model.

A model trained at one redshift and one survey depth fits clusters like its training only.
:func:`simulate_conditions` draws, for every chunk of clusters, a redshift, a survey depth
(stellar-mass limit, :func:`pyro_clusters.simulator.depth.at_depth`) and a redshift error from
:class:`ObservingConditions`, and records them as cluster columns (``z``,
``log_mstar_min``, ``velocity_error_kms``), so that a network can be given what an observer
knows (the redshift) and learn what it can measure (the depth, from the galaxies themselves).

The aperture and the velocity window stay fixed in physical units (h^-1 Mpc, km/s) across
redshift: the cylinder then covers the same part of every cluster, and only the tracer
population, the Hubble-flow geometry and the errors change.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from pyro_clusters.data.clusters import ClusterSet
from pyro_clusters.simulator.config import SimulatorConfig
from pyro_clusters.simulator.core import simulate_selected
from pyro_clusters.simulator.depth import DEPTH_LIMITS, at_depth

__all__ = ["CONDITION_COLUMNS", "ObservingConditions", "simulate_conditions"]

#: the cluster columns :func:`simulate_conditions` adds
CONDITION_COLUMNS = ("z", "log_mstar_min", "velocity_error_kms")


@dataclass(frozen=True)
class ObservingConditions:
    """What differs between observations, drawn uniformly within these ranges.

    Attributes:
        z_range: cluster redshift.
        log_mstar_range: survey depth, log10(M* / h^-1 Msun) of the faintest galaxies
            (10.5: ~20 galaxies in the cylinder of a 10^14 h^-1 Msun cluster; 8.0: ~1,000 at
            10^15). The default reaches 0.5 dex beyond the validated depths 8.0-10.5 on both
            sides (:data:`~pyro_clusters.simulator.depth.DEPTH_LIMITS`), so that a survey at
            either end of those is not at the edge of what the networks saw.
        velocity_error_range: Gaussian redshift error per galaxy [km/s].
        chunk: clusters simulated with one draw of the conditions.
    """

    z_range: tuple[float, float] = (0.01, 0.3)
    log_mstar_range: tuple[float, float] = DEPTH_LIMITS
    velocity_error_range: tuple[float, float] = (0.0, 100.0)
    chunk: int = 32

    def __post_init__(self) -> None:
        lo, hi = self.z_range
        if not 0.0 < lo <= hi < 3.0:
            raise ValueError(f"z_range must lie in (0, 3) and be ordered, got {self.z_range}")
        lo, hi = self.log_mstar_range
        if not DEPTH_LIMITS[0] <= lo <= hi <= DEPTH_LIMITS[1]:
            raise ValueError(f"log_mstar_range must lie in {list(DEPTH_LIMITS)} and be "
                             f"ordered, got {self.log_mstar_range}")
        lo, hi = self.velocity_error_range
        if not 0.0 <= lo <= hi:
            raise ValueError(f"velocity_error_range must be >= 0 and ordered, got "
                             f"{self.velocity_error_range}")
        if self.chunk < 1:
            raise ValueError("chunk must be >= 1")

    def draw(self, rng: np.random.Generator) -> tuple[float, float, float]:
        """One (z, log_mstar_min, velocity error [km/s])."""
        return (float(rng.uniform(*self.z_range)), float(rng.uniform(*self.log_mstar_range)),
                float(rng.uniform(*self.velocity_error_range)))

    def to_dict(self) -> dict:
        """Plain JSON-able values."""
        return dataclasses.asdict(self)


def _chunk(k: int, sampler, config: SimulatorConfig, conditions: ObservingConditions,
           seed: np.random.SeedSequence) -> ClusterSet:
    """``k`` clusters under one draw of the conditions, from the chunk's own seed."""
    rng = np.random.default_rng(seed)
    z, depth, verr = conditions.draw(rng)
    cfg = at_depth(config.replace(z=z, observation=dataclasses.replace(
        config.observation, velocity_error_kms=verr)), depth)
    cs = simulate_selected(k, sampler, cfg, rng)[0]
    for name, value in zip(CONDITION_COLUMNS, (z, depth, verr), strict=True):
        cs.clusters[name] = np.full(len(cs), value)
    return cs


def simulate_conditions(n: int, sampler, config: SimulatorConfig,
                        conditions: ObservingConditions, rng: np.random.Generator,
                        workers: int = 1) -> ClusterSet:
    """``n`` selected clusters, each chunk under its own draw of the observing conditions.

    Chunk i draws its conditions and its clusters from the i-th child of one seed taken from
    ``rng``, so the set does not depend on ``workers``.

    Args:
        n: clusters (after N_min).
        sampler: the log-mass prior (``FlatLogMassPrior``, ...).
        config: the base configuration (setup, aperture, v_cut, physics); its redshift, depth
            and velocity error are replaced by the draws.
        conditions: the ranges.
        rng: random generator (the only source of randomness).
        workers: joblib processes simulating chunks in parallel.

    Returns:
        the clusters, with cluster columns ``z``, ``log_mstar_min``, ``velocity_error_kms``;
        ``attrs["z"]`` is the middle of the redshift range and ``attrs["conditions"]`` the
        ranges.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    sizes = [conditions.chunk] * (n // conditions.chunk)
    sizes += [n % conditions.chunk] if n % conditions.chunk else []
    seeds = np.random.SeedSequence(int(rng.integers(2**63))).spawn(len(sizes))
    jobs = [(k, sampler, config, conditions, s) for k, s in zip(sizes, seeds, strict=True)]
    if workers == 1:
        parts = [_chunk(*job) for job in jobs]
    else:
        from joblib import Parallel, delayed

        parts = Parallel(n_jobs=workers, batch_size=8)(delayed(_chunk)(*job) for job in jobs)
    out = ClusterSet.concatenate(parts)
    out.attrs.update({"z": float(np.mean(conditions.z_range)),
                      "conditions": conditions.to_dict()})
    return out
