r"""``pyro-clusters infer``: the posterior mass of an observed cluster.

Usage::

    pyro-clusters infer --table FILE --ra RA --dec DEC --z Z [--model DIR] [--refine-z]
        [--out DIR] [--prior {flat,hmf}] [--subsample N|auto] [--n-subsamples K]
        [--ra-col C] [--dec-col C] [--z-col C | --cz-col C] [--draws N] [--seed S]

The table goes through the observation model of the mocks (the model's own aperture and
velocity window); the classifier of the model bundle (default: the one shipped with the
package) gives each galaxy a membership probability; the NPE gives posterior draws of
log10(M200c / h^-1 Msun) (:func:`pyro_clusters.realfield.inference.infer_cluster`, where the
prior, subsampling and mismatch warnings are explained).

Outputs (``--out``): ``summary.json``, ``posterior.nc``, ``galaxies.csv`` and ``cluster.png``
(:mod:`pyro_clusters.realfield.outputs`). Exit code 0 with a posterior, 2 when none can be
given (bad input, too few galaxies).

Many clusters of one survey::

    pyro-clusters infer --table GALAXIES.csv --centres CENTRES.csv [--figures] [--out DIR]

CENTRES has a name (optional), RA, Dec and z per cluster; DIR/clusters.csv gets one row per
cluster (percentiles, galaxy counts, warnings, or the reason it was skipped) and
DIR/posteriors.nc every posterior (:mod:`pyro_clusters.realfield.survey`). A bad row is
skipped, never the batch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pyro_clusters.cli import command_parser
from pyro_clusters.realfield.inference import infer_cluster
from pyro_clusters.realfield.outputs import check_output_dir, format_summary, save_outputs
from pyro_clusters.realfield.redshift import CHECK_TOL_KMS, REFINE_TOL_KMS, refine_redshift
from pyro_clusters.realfield.table import (
    ObservationError,
    check_center,
    observe_field,
    ra_in_degrees,
    read_redshift_table,
)

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = command_parser("infer", __doc__)
    p.add_argument("--table", type=Path, required=True,
                   help="CSV or whitespace table with RA, Dec [deg] and z (or cz [km/s]); "
                        "with --centres, the galaxy table of the whole survey")
    p.add_argument("--ra", type=float, default=None, help="cluster centre RA [deg]")
    p.add_argument("--dec", type=float, default=None, help="cluster centre Dec [deg]")
    p.add_argument("--z", type=float, default=None, help="cluster redshift")
    p.add_argument("--refine-z", action="store_true",
                   help="move each cluster redshift to its classifier members' mean velocity "
                        "before inference (for a redshift that may be off by > 100 km/s, "
                        "e.g. in another frame); the shift is reported")
    p.add_argument("--centres", type=Path, default=None,
                   help="instead of --ra/--dec/--z: a table of cluster centres (name, RA, "
                        "Dec, z) -> OUT/clusters.csv (one row per cluster) and "
                        "OUT/posteriors.nc (all posteriors)")
    p.add_argument("--figures", action="store_true",
                   help="with --centres: also OUT/figures/NAME.png for every cluster")
    p.add_argument("--batch-size", type=int, default=256,
                   help="with --centres: clusters per classifier / NPE batch")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--model", type=Path, default=None,
                   help="model bundle directory, or a shipped one: 'default' (z = 0.117) or "
                        "'amortised' (z 0.01-0.3, any survey depth) (default: default)")
    p.add_argument("--out", type=Path, default=Path("results/infer"),
                   help="output directory (created)")
    p.add_argument("--ra-col", default=None,
                   help="RA column (default: the first of ra, RA, RAJ2000, ... found)")
    p.add_argument("--dec-col", default=None,
                   help="Dec column (default: the first of dec, Dec, DEJ2000, ... found)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--z-col", default=None,
                   help="redshift column (default: the first of z, redshift, zhelio, ... found)")
    g.add_argument("--cz-col", default=None, help="c z column [km/s] instead of a redshift")
    p.add_argument("--ra-unit", choices=("auto", "deg", "hour"), default="auto",
                   help="unit of the table's and the centre's RA; auto takes degrees and "
                        "stops with a message when they look like hours")
    p.add_argument("--prior", choices=("flat", "hmf"), default="flat",
                   help="prior on log M: flat over the training range, or the halo mass "
                        "function at the cluster redshift")
    p.add_argument("--subsample", default=None,
                   help="galaxies per random subset, or 'auto' (the training richness); "
                        "default: all galaxies at once")
    p.add_argument("--n-subsamples", type=int, default=20,
                   help="random subsets averaged with --subsample")
    p.add_argument("--draws", type=int, default=4000, help="posterior draws")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws and subsets")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    return p


def main(argv: list[str] | None = None) -> int:
    """``pyro-clusters infer``; returns the exit code."""
    p = build_parser()
    args = p.parse_args(argv)
    centre = (args.ra, args.dec, args.z)
    if args.centres is not None and any(v is not None for v in centre):
        p.error("give either --centres or --ra/--dec/--z, not both")
    if args.centres is None and any(v is None for v in centre):
        p.error("give the cluster centre (--ra, --dec and --z) or a table of them (--centres)")
    # what can be checked before any work: the output folder, the centre
    try:
        check_output_dir(args.out)
        if args.centres is None:
            check_center(*centre)
    except (OSError, ObservationError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from pyro_clusters.realfield.bundle import CylinderModel

    if args.centres is not None:
        return _many(args, CylinderModel)
    try:
        model = CylinderModel.load(args.model, args.device)
        table = read_redshift_table(args.table, args.ra_col, args.dec_col, args.z_col,
                                    args.cz_col)
        table, ra = ra_in_degrees(table, args.ra, args.dec, args.ra_unit)
        # always refined (a few classifier passes): applied with --refine-z, else checked
        try:
            refined = refine_redshift(table, ra, args.dec, args.z, model,
                                      tol_kms=REFINE_TOL_KMS if args.refine_z
                                      else CHECK_TOL_KMS)
        except ObservationError:
            if args.refine_z:
                raise
            refined = None  # the plain cut below says what is wrong
        z = refined.z if args.refine_z else args.z
        obs = observe_field(table, ra, args.dec, z, model.trained_on["aperture"],
                            model.trained_on["v_cut"])
        sub = args.subsample
        if sub is not None and sub != "auto":
            try:
                sub = int(sub)
            except ValueError:
                raise ObservationError(f"--subsample takes an integer or 'auto', got {sub!r}"
                                       ) from None
        post = infer_cluster(obs, model, args.draws, args.seed, args.prior, sub,
                             args.n_subsamples, refined)
    except (ObservationError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    paths = save_outputs(post, args.out)
    print(format_summary(post.summary))
    print("wrote " + ", ".join(str(v) for v in paths.values()))
    return 0


def _many(args, model_class) -> int:
    """``--centres``: every cluster of a survey; a bad row is skipped with its reason."""
    import time

    import numpy as np

    from pyro_clusters.realfield.survey import infer_survey, read_centres, write_survey_outputs

    if args.subsample is not None:
        print("error: --subsample works on one cluster at a time, not with --centres",
              file=sys.stderr)
        return 2
    try:
        model = model_class.load(args.model, args.device)
        table = read_redshift_table(args.table, args.ra_col, args.dec_col, args.z_col,
                                    args.cz_col)
        centres = read_centres(args.centres)
        ok = np.isfinite(centres.ra) & np.isfinite(centres.dec)
        if ok.any():
            table, _ = ra_in_degrees(table, float(np.median(centres.ra[ok])),
                                     float(np.median(centres.dec[ok])), args.ra_unit)
            if args.ra_unit == "hour":
                centres.ra = (centres.ra * 15.0) % 360.0
        t0 = time.perf_counter()
        result = infer_survey(table, centres, model, args.draws, args.seed, args.prior,
                              args.batch_size, progress=not args.no_progress,
                              refine_z=args.refine_z)
        seconds = time.perf_counter() - t0
    except (ObservationError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    paths = write_survey_outputs(result, args.out, args.figures, model)
    n_ok = len(result.names)
    print(f"model: {model.name}")
    print(f"{n_ok} of {len(centres)} clusters with a posterior in {seconds:.1f} s "
          f"({len(centres) / max(seconds, 1e-9):.0f} clusters/s); "
          f"{len(centres) - n_ok} skipped (reason in the table)")
    for row in result.rows:
        if row["status"] != "ok":
            print(f"  skipped {row['name']}: {row['reason']}")
    print("wrote " + ", ".join(str(v) for v in paths.values()))
    return 0
