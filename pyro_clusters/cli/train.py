"""``pyro-clusters train``: train the classifier + NPE bundle that ``infer`` uses.

For a cylinder setup (redshift, aperture, velocity window, redshift errors, incompleteness):
simulates training clusters, trains the membership classifier, the M-sigma baseline and the
NPE, and writes the bundle ``pyro-clusters infer --model DIR`` reads.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from pyro_clusters import defaults
from pyro_clusters.cli import command_parser
from pyro_clusters.pipeline import SIZES, train_bundle
from pyro_clusters.simulator.conditions import ObservingConditions
from pyro_clusters.simulator.config import SimulatorConfig
from pyro_clusters.simulator.depth import DEPTH_LIMITS, at_depth

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = command_parser("train", __doc__)
    p.add_argument("--out", type=Path, required=True, help="bundle directory to write")
    p.add_argument("--config", type=Path, default=None,
                   help="simulator configuration JSON (SimulatorConfig.to_json), e.g. another "
                        "galaxy occupation for a deeper survey; the options below override it")
    p.add_argument("--z", type=float, default=None,
                   help=f"cluster redshift (default {defaults.Z})")
    p.add_argument("--aperture", type=float, default=None,
                   help=f"cylinder radius R_ap [physical h^-1 Mpc] (default {defaults.APERTURE})")
    p.add_argument("--v-cut", type=float, default=None,
                   help=f"half-width of the velocity window [km/s] (default {defaults.V_CUT:g})")
    p.add_argument("--velocity-error", type=float, default=None,
                   help="Gaussian redshift error per galaxy in the mocks [km/s] (default 0)")
    p.add_argument("--incompleteness", type=float, default=None,
                   help="fraction of galaxies without a redshift, at random (default 0)")
    p.add_argument("--fiber-collisions", type=float, default=None, metavar="ARCSEC",
                   help="fibre-collision scale [arcsec] (55 for SDSS; default: none)")
    p.add_argument("--amortised", action="store_true",
                   help="one model over a range of redshifts, survey depths and redshift "
                        "errors (--z-range, --depth-range, --velocity-error-range) instead "
                        "of one setup; the networks get the redshift and depth measures as "
                        "inputs")
    p.add_argument("--fresh", action="store_true",
                   help="new simulated training clusters every epoch (no overfitting; "
                        "simulator only)")
    p.add_argument("--z-range", type=float, nargs=2, default=(0.01, 0.3), metavar=("LO", "HI"),
                   help="with --amortised: cluster redshifts")
    p.add_argument("--depth-range", type=float, nargs=2, default=DEPTH_LIMITS,
                   metavar=("LO", "HI"),
                   help="with --amortised: stellar-mass limits log10(M* / h^-1 Msun) "
                        "(default %(default)s: 0.5 dex beyond the validated 8-10.5 on both "
                        "sides, so that neither end is the edge of the training range)")
    p.add_argument("--velocity-error-range", type=float, nargs=2, default=(0.0, 100.0),
                   metavar=("LO", "HI"), help="with --amortised: redshift errors [km/s]")
    p.add_argument("--depth", type=float, default=None, metavar="LOG_MSTAR",
                   help="survey depth: stellar-mass limit log10(M* / h^-1 Msun) of the "
                        "galaxies (default 9.5; 8 for a deep survey; 7.5-11 accepted; "
                        "pyro_clusters.simulator.depth)")
    p.add_argument("--data", type=Path, default=None,
                   help="train on cylinder datasets made from an N-body catalogue "
                        "(pyro-clusters catalog --out DIR) instead of the simulator;"
                        " z, aperture, v_cut and N_min are then the data's")
    p.add_argument("--size", choices=sorted(SIZES["bundle"]), default="full",
                   help="run size: clusters simulated and epoch limits (default: full, what "
                        "the shipped model was trained with; quick for a smoke test)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of simulation, weights and batch order (default: 0)")
    p.add_argument("--max-seconds", type=float, default=None, metavar="S",
                   help="wall-clock budget of each network's training [s] (default: none; "
                        "runs stop by epochs and patience so the seed reproduces them)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default: cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    """``pyro-clusters train``: train and save a bundle; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        base = (SimulatorConfig.from_json(args.config.read_text()) if args.config
                else SimulatorConfig())
        obs_changes = {k: v for k, v in (("aperture", args.aperture), ("v_cut", args.v_cut),
                                         ("velocity_error_kms", args.velocity_error),
                                         ("incompleteness", args.incompleteness),
                                         ("fiber_collision_arcsec", args.fiber_collisions))
                       if v is not None}
        config = base.replace(setup="cylinder", z=base.z if args.z is None else args.z,
                              observation=replace(base.observation, **obs_changes))
        if args.depth is not None:
            config = at_depth(config, args.depth)
        conditions = (ObservingConditions(tuple(args.z_range), tuple(args.depth_range),
                                          tuple(args.velocity_error_range))
                      if args.amortised else None)
    except (OSError, ValueError, TypeError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.out.exists() and not (args.out / "bundle.json").is_file():
        print(f"error: {args.out} exists and is not a model bundle", file=sys.stderr)
        return 2
    command = "python -m pyro_clusters train " + " ".join(
        sys.argv[1:] if argv is None else argv)
    try:
        model = train_bundle(config, args.size, args.seed, args.device, not args.no_progress,
                             command, args.data, args.max_seconds, conditions, args.fresh)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    model.save(args.out)
    m = model.info["test_metrics"]
    print(f"wrote {args.out}: test sigma_eps {m['scatter_dex']:.3f} dex "
          f"(M-sigma {m['msigma_scatter_dex']:.3f}), HPD max dev {m['hpd_max_abs_dev']:.3f}, "
          f"TARP max dev {m['tarp_max_abs_dev']:.3f} on {m['n_test']} flat-prior clusters")
    return 0
