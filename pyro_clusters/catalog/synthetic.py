r"""A synthetic N-body-like catalogue made by our simulator: halos and galaxies in a periodic box.

Usage::

    python -m pyro_clusters.catalog.synthetic --box L --seed S --out FILE
        [--z 0.117] [--log-m-min 12.0] [--field-density 0.005]

It exercises :mod:`pyro_clusters.catalog` without downloading a simulation, and is the
documented example of the input schema (:mod:`pyro_clusters.catalog.schema`). What is in it:

- halos: a Poisson number of halos with log10 M200c >= ``log_m_min`` drawn from the Tinker et al.
  2008 mass function of the package cosmology (MDPL2, colossus), uniformly placed in the box
  (no two-halo clustering), with Gaussian bulk velocities (the simulator's
  ``bulk_velocity_dispersion_kms`` per axis);
- galaxies: every halo gets the simulator's main-halo physics (:func:`~pyro_clusters.simulator.
  core.main_halos`: c-M relation with scatter, triaxial shape, anisotropic Jeans velocities with
  the satellite velocity bias, HOD richness with log-normal scatter) -- a central at the halo
  centre and satellites placed by :func:`~pyro_clusters.simulator.halo.populate_satellites`,
  extending past R200c with the soft truncation the DESIGN asks for; field galaxies
  (``host_id = -1``) uniformly at ``field_density``;
- stellar masses such that the galaxies above 10^9.5 h^-1 Msun (the papers' cut) are exactly the
  HOD's: satellites and field galaxies are drawn 1/0.6 times as numerous with
  log10 M* = 9 + Exp(0.98) (60 % above 9.5), centrals log10 M* = 10 + 0.35 (log M - 12) +
  0.15 N(0, 1).

No substructure or mergers (an N-body box has them, this one does not), and halos are not
clustered, so interlopers come from the uniform field and chance neighbours only.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from pyro_clusters import defaults
from pyro_clusters.catalog.schema import Catalog, write_catalog
from pyro_clusters.cosmology import MDPL2_PARAMS
from pyro_clusters.simulator.config import SimulatorConfig
from pyro_clusters.simulator.core import main_halos
from pyro_clusters.simulator.halo import Halos, populate_satellites, satellite_counts
from pyro_clusters.simulator.priors import hmf_cumulative

__all__ = ["STELLAR_MASS_CUT", "main", "synthetic_catalog"]

#: The papers' galaxy selection, M* >= 10^9.5 h^-1 Msun (Ho et al. 2019 section 2.1).
STELLAR_MASS_CUT = 10**9.5
_ABOVE_CUT = 0.6  # share of satellite / field galaxies drawn above the cut
_EXP_SCALE = 0.5 / np.log(1.0 / _ABOVE_CUT)  # dex; P(log M* > 9.5) = 0.6


def _halo_masses(volume: float, lo: float, hi: float, z: float, rng: np.random.Generator
                 ) -> np.ndarray:
    """A Poisson number of halo masses from the mass function over [lo, hi] in ``volume``."""
    grid, cum = hmf_cumulative(lo, hi, z, n=1201)
    n = rng.poisson(volume * cum[-1])
    return np.interp(rng.random(n), cum / cum[-1], grid)


def _faint_log_mstar(n: int, rng: np.random.Generator) -> np.ndarray:
    return 9.0 + rng.exponential(_EXP_SCALE, n)


def synthetic_catalog(box: float, seed: int, z: float = defaults.Z, log_m_min: float = 12.0,
                      log_m_max: float = 15.6, field_density: float = 0.005,
                      config: SimulatorConfig | None = None) -> Catalog:
    """Make a synthetic box catalogue in the input schema.

    Args:
        box: box side [comoving h^-1 Mpc].
        seed: the only source of randomness.
        z: snapshot redshift.
        log_m_min: smallest halo, log10(M200c / h^-1 Msun).
        log_m_max: largest halo, log10(M200c / h^-1 Msun).
        field_density: field galaxies above the stellar-mass cut per comoving volume
            [h^3 Mpc^-3].
        config: simulator configuration for the halo physics (default: the full simulator's).

    Returns:
        A validated :class:`~pyro_clusters.catalog.schema.Catalog` (cosmology MDPL2).
    """
    if box <= 0 or field_density < 0:
        raise ValueError("box must be > 0 h^-1 Mpc and field_density >= 0")
    rng = np.random.default_rng(seed)
    config = dataclasses.replace(config or SimulatorConfig(), z=z)
    hc = config.halo
    log_m = _halo_masses(box**3, log_m_min, log_m_max, z, rng)
    n_h = log_m.size
    ids = 1000 + rng.permutation(10 * max(n_h, 1))[:n_h].astype(np.int64)  # ids != rows
    pos_h = rng.uniform(0.0, box, (n_h, 3))
    vel_h = hc.bulk_velocity_dispersion_kms * rng.standard_normal((n_h, 3))

    _, c, beta, rot, axes, vfac, _ = main_halos(log_m, config, rng)
    n_sat, _ = satellite_counts(log_m, config.occupation, rng)
    n_drawn = n_sat + rng.poisson(n_sat * (1.0 / _ABOVE_CUT - 1.0))  # + those below the cut
    zeros = np.zeros((n_h, 3))
    sat_pos, sat_vel, owner = populate_satellites(
        Halos(log_m, c, beta, zeros, zeros, n_drawn, rot, axes, vfac), z, hc, rng)
    # satellites: the first n_sat of each halo above the cut, the rest below it
    rank = np.arange(owner.size) - np.repeat(np.cumsum(n_drawn) - n_drawn, n_drawn)
    above = rank < n_sat[owner]
    # 9 + Exp(scale) conditioned on being above / below 9.5
    below = -_EXP_SCALE * np.log1p(-rng.random(owner.size) * (1.0 - _ABOVE_CUT))
    sat_mstar = np.where(above, 9.5 + rng.exponential(_EXP_SCALE, owner.size), 9.0 + below)
    cen_mstar = 10.0 + 0.35 * (log_m - 12.0) + 0.15 * rng.standard_normal(n_h)
    n_field = rng.poisson(field_density / _ABOVE_CUT * box**3)
    field_mstar = _faint_log_mstar(n_field, rng)

    pos = np.concatenate([pos_h, pos_h[owner] + (1.0 + z) * sat_pos,  # physical -> comoving
                          rng.uniform(0.0, box, (n_field, 3))])
    vel = np.concatenate([vel_h, vel_h[owner] + sat_vel,
                          hc.bulk_velocity_dispersion_kms * rng.standard_normal((n_field, 3))])
    pos = np.mod(pos, box)
    pos[pos >= box] = 0.0  # np.mod can round up to box itself
    host = np.concatenate([ids, ids[owner], np.full(n_field, -1, np.int64)])
    central = np.concatenate([np.ones(n_h, bool), np.zeros(owner.size + n_field, bool)])
    mstar = 10.0 ** np.concatenate([cen_mstar, sat_mstar, field_mstar])
    halos = {"id": ids, "m200c": 10.0**log_m, **{k: pos_h[:, i] for i, k in enumerate("xyz")},
             **{k: vel_h[:, i] for i, k in enumerate(("vx", "vy", "vz"))}}
    galaxies = {"host_id": host, **{k: pos[:, i] for i, k in enumerate("xyz")},
                **{k: vel[:, i] for i, k in enumerate(("vx", "vy", "vz"))},
                "stellar_mass": mstar, "central": central}
    cosmo = {k: v for k, v in MDPL2_PARAMS.items() if k != "relspecies"}
    return Catalog(halos, galaxies, float(box), float(z), cosmo, "synthetic").validate()


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(prog="python -m pyro_clusters.catalog.synthetic",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--box", type=float, required=True, help="box side [comoving h^-1 Mpc]")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", type=Path, required=True, help="output HDF5 catalogue")
    p.add_argument("--z", type=float, default=defaults.Z, help="snapshot redshift")
    p.add_argument("--log-m-min", type=float, default=12.0,
                   help="smallest halo, log10(M200c / h^-1 Msun)")
    p.add_argument("--field-density", type=float, default=0.005,
                   help="field galaxies above 10^9.5 h^-1 Msun per h^-3 Mpc^3")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        cat = synthetic_catalog(args.box, args.seed, args.z, args.log_m_min,
                                field_density=args.field_density)
        write_catalog(args.out, cat)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {cat.n_halos} halos and {cat.n_galaxies} galaxies "
          f"(box {args.box:g} h^-1 Mpc, z = {args.z}) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
