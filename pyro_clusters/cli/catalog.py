"""``pyro-clusters catalog``: train/val/test sets from an N-body catalogue.

Usage::

    pyro-clusters catalog --catalog FILE [--format FORMAT] --setup {idealized,cylinder} --out DIR

FORMAT is the package schema (HDF5, the default), rockstar (Rockstar out_*.list or
Consistent-Trees hlist_*.list), subfind (IllustrisTNG / Gadget-4 fof_subhalo_tab HDF5) or
universemachine (sfr_catalog_*.bin). The recipe, the schema and the readers:
:mod:`pyro_clusters.catalog.mocks`, :mod:`pyro_clusters.catalog.schema`,
:mod:`pyro_clusters.catalog.formats`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pyro_clusters import defaults
from pyro_clusters.catalog.formats import FORMATS, read_any
from pyro_clusters.catalog.mocks import (
    FLAT_DENSITY,
    STELLAR_MASS_MIN,
    CatalogMockConfig,
    build_datasets,
)
from pyro_clusters.catalog.schema import CatalogError, write_catalog
from pyro_clusters.cli import command_parser
from pyro_clusters.data.dataset_dir import SPLITS
from pyro_clusters.simulator.config import ObservationConfig

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = command_parser("catalog", __doc__)
    p.add_argument("--catalog", type=Path, required=True,
                   help="halo + galaxy catalogue: HDF5 in the package schema, or a file "
                        "--format reads")
    p.add_argument("--format", choices=sorted(FORMATS), default="schema",
                   help="catalogue format (module docstring of pyro_clusters.catalog.formats)")
    p.add_argument("--box-size", type=float, default=None,
                   help="box side [comoving h^-1 Mpc] when the file does not say it "
                        "(universemachine) or to override it")
    p.add_argument("--snapshot-redshift", type=float, default=None,
                   help="snapshot redshift when the file does not say it")
    p.add_argument("--redshift", type=float, default=None,
                   help="redshift at which the clusters are observed (default: the "
                        "snapshot's; required for a z = 0 snapshot)")
    p.add_argument("--write-catalog", type=Path, default=None, metavar="FILE",
                   help="also write the catalogue converted to the package schema (HDF5)")
    p.add_argument("--setup", choices=["idealized", "cylinder"], required=True,
                   help="idealized: members only; cylinder: interlopers included")
    p.add_argument("--out", type=Path, required=True, help="output directory (created)")
    p.add_argument("--columns", default=None,
                   help='JSON renaming, e.g. \'{"halos": {"m200c": "M200c"}}\'')
    p.add_argument("--log-m-min", type=float, default=defaults.PRIOR_RANGE[0],
                   help="cluster candidates: log10(M200c / h^-1 Msun) >= this")
    p.add_argument("--stellar-mass-min", type=float, default=STELLAR_MASS_MIN,
                   help="galaxies: M* >= this [h^-1 Msun]")
    p.add_argument("--density", type=float, default=FLAT_DENSITY,
                   help="flat training mass function [views h^3 Mpc^-3 dex^-1]")
    p.add_argument("--max-views", type=int, default=64, help="views per halo at most")
    p.add_argument("--test-range", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                   help="log-mass range of the natural test set")
    p.add_argument("--fractions", type=float, nargs=3, default=(0.7, 0.1, 0.2),
                   metavar=("TRAIN", "VAL", "TEST"),
                   help="fractions of the box's halos in the three sets")
    p.add_argument("--aperture", type=float, default=defaults.APERTURE,
                   help="R_ap [physical h^-1 Mpc]")
    p.add_argument("--v-cut", type=float, default=defaults.V_CUT, help="v_cut [km/s]")
    p.add_argument("--n-min", type=int, default=defaults.N_MIN,
                   help="minimum galaxies per view")
    p.add_argument("--seed", type=int, default=0, help="seed of the views and splits")
    p.add_argument("--workers", type=int, default=1, help="local threads")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address (else local)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        obs = ObservationConfig(aperture=args.aperture, v_cut=args.v_cut, n_min=args.n_min)
        config = CatalogMockConfig(
            setup=args.setup, log_m_min=args.log_m_min, stellar_mass_min=args.stellar_mass_min,
            observation=obs, fractions=tuple(args.fractions), density=args.density,
            max_views=args.max_views,
            test_range=tuple(args.test_range) if args.test_range else None, seed=args.seed,
            redshift=args.redshift)
        columns = json.loads(args.columns) if args.columns else None
        source = args.catalog
        if (args.format != "schema" or args.write_catalog is not None
                or args.box_size is not None or args.snapshot_redshift is not None):
            catalog = read_any(args.catalog, args.format, columns=columns,
                               box_size=args.box_size, redshift=args.snapshot_redshift)
            source, columns = catalog, None
            if args.write_catalog is not None or args.scheduler is not None:
                # Dask workers read a file: the converted one
                args.out.mkdir(parents=True, exist_ok=True)
                source = write_catalog(args.write_catalog or args.out / "catalog_schema.h5",
                                       catalog)
        summary = build_datasets(source, args.out, config, columns=columns,
                                 workers=args.workers, scheduler=args.scheduler,
                                 progress=not args.no_progress)
    except (CatalogError, ValueError, OSError, json.JSONDecodeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for name in SPLITS:
        s = summary[name]
        print(f"{name}: {s['n_halos']} halos, {s['n_views']} views, {s['n_clusters']} clusters "
              f"with N >= {args.n_min} -> {s['path']}")
    return 0
