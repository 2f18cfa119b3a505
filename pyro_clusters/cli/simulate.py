r"""``pyro-clusters simulate``: a dataset of simulated clusters to HDF5.

Usage::

    pyro-clusters simulate --setup {idealized,cylinder} --prior {flat,hmf} \\
        --n N --seed S --out FILE [--workers W] [--batch-size B] [--log-m-min LO] [--log-m-max HI]

The same seed gives a bit-identical file for any number of workers
(:func:`pyro_clusters.simulator.files.simulate_to_file`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from pyro_clusters import defaults
from pyro_clusters.cli import command_parser
from pyro_clusters.simulator.config import SimulatorConfig
from pyro_clusters.simulator.depth import at_depth
from pyro_clusters.simulator.files import simulate_to_file
from pyro_clusters.simulator.priors import make_sampler

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = command_parser("simulate", __doc__)
    p.add_argument("--setup", choices=["idealized", "cylinder"], required=True,
                   help="idealized: members only; cylinder: every galaxy in the aperture and "
                        "velocity window, interlopers included")
    p.add_argument("--prior", choices=["flat", "hmf"], default="flat",
                   help="flat in log M (training) or the halo mass function (test sets)")
    p.add_argument("--n", type=int, required=True, help="number of clusters (after N_min)")
    p.add_argument("--seed", type=int, required=True,
                   help="seed of the whole file (the same for any --workers)")
    p.add_argument("--out", type=Path, required=True,
                   help="output HDF5 file (its folder is created)")
    p.add_argument("--workers", type=int, default=1, help="worker processes")
    p.add_argument("--batch-size", type=int, default=1000,
                   help="clusters per task and per write")
    p.add_argument("--log-m-min", type=float, default=None,
                   help="lower log10(M200c / h^-1 Msun) (flat: 13.5, hmf: 14.0)")
    p.add_argument("--log-m-max", type=float, default=None,
                   help="upper log10(M200c / h^-1 Msun) (flat: 15.5, hmf: 15.3)")
    p.add_argument("--z", type=float, default=defaults.Z, help="cluster redshift")
    p.add_argument("--aperture", type=float, default=defaults.APERTURE,
                   help="R_ap [physical h^-1 Mpc]")
    p.add_argument("--v-cut", type=float, default=defaults.V_CUT, help="v_cut [km/s]")
    p.add_argument("--n-min", type=int, default=defaults.N_MIN,
                   help="minimum galaxies per cluster")
    p.add_argument("--depth", type=float, default=None, metavar="LOG_MSTAR",
                   help="survey depth: stellar-mass limit log10(M* / h^-1 Msun) (default 9.5)")
    p.add_argument("--velocity-error", type=float, default=0.0,
                   help="Gaussian redshift error per galaxy [km/s]")
    p.add_argument("--fiber-collisions", type=float, default=0.0, metavar="ARCSEC",
                   help="fibre-collision scale [arcsec] (55 for SDSS; 0: none)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out if it exists (otherwise refused)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.out.exists() and not args.overwrite:
        print(f"error: {args.out} exists; give --overwrite to replace it", file=sys.stderr)
        return 2
    try:
        base = SimulatorConfig()
        config = SimulatorConfig(
            setup=args.setup, z=args.z,
            observation=dataclasses.replace(base.observation, aperture=args.aperture,
                                            v_cut=args.v_cut, n_min=args.n_min,
                                            velocity_error_kms=args.velocity_error,
                                            fiber_collision_arcsec=args.fiber_collisions),
        )
        if args.depth is not None:
            config = at_depth(config, args.depth)
        sampler = make_sampler(args.prior, args.log_m_min, args.log_m_max, z=args.z)
        path = simulate_to_file(args.out, args.n, config, sampler, args.seed, args.workers,
                                args.batch_size, progress=not args.no_progress)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.n} clusters to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
