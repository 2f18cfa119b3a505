"""Catalogue mocks at N-body size: 10^5 halos, 10^7 galaxies.

    python benchmarks/bench_catalog.py [--box 1000] [--log-m-min 13.3] [--field-density 0.01]
                                       [--workers 1] [--keep FILE]

Makes a synthetic box catalogue of MDPL2 size (1 h^-1 Gpc: ~1.2e5 halos above 10^13.3 and
~1.7e7 galaxies, ~1e7 of them above the 10^9.5 h^-1 Msun cut), writes it in the input schema,
then times ``build_datasets`` for the cylinder setup with the papers' settings (halos
>= 10^13.5, flat training density 10^-5.2 h^3 Mpc^-3 dex^-1, natural test set of three axis
views): reading and validating, preparing (selection, membership index, the three
redshift-space KD-trees), observing every view. Reports views per second and the peak
resident memory of the process (the catalogue itself is most of it: the work streams over
chunks of halos). Figures are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from pyro_clusters.catalog import read_catalog, write_catalog
from pyro_clusters.catalog.mocks import CatalogBox, CatalogMockConfig, build_datasets
from pyro_clusters.catalog.synthetic import synthetic_catalog


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # kB -> GB (Linux)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--box", type=float, default=1000.0, help="box side [h^-1 Mpc]")
    p.add_argument("--log-m-min", type=float, default=13.3, help="smallest halo in the table")
    p.add_argument("--field-density", type=float, default=0.01,
                   help="field galaxies above the cut per h^-3 Mpc^3")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--keep", type=Path, default=None, help="keep the catalogue file here")
    args = p.parse_args()

    out = {"box": args.box, "workers": args.workers}
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "box.h5"
        t0 = time.perf_counter()
        cat = synthetic_catalog(args.box, seed=1, log_m_min=args.log_m_min,
                                field_density=args.field_density)
        out["make_seconds"] = time.perf_counter() - t0
        out["n_halos"], out["n_galaxies"] = cat.n_halos, cat.n_galaxies
        write_catalog(path, cat)
        del cat
        out["file_gb"] = path.stat().st_size / 1e9

        t0 = time.perf_counter()
        cat = read_catalog(path)
        out["read_validate_seconds"] = time.perf_counter() - t0
        cfg = CatalogMockConfig(setup="cylinder")
        t0 = time.perf_counter()
        box = CatalogBox(cat, cfg)
        for axis in range(3):
            box._redshift_space(axis)
        out["prepare_trees_seconds"] = time.perf_counter() - t0
        out["n_galaxies_selected"] = int(box.pos.shape[0])
        del box, cat

        summary = build_datasets(path, Path(tmp) / "mocks", cfg, workers=args.workers,
                                 progress=True)
        views = sum(summary[s]["n_views"] for s in ("train", "val", "test", "test_flat"))
        out.update({
            "build_prepare_seconds": summary["seconds"]["prepare"],
            "build_observe_seconds": summary["seconds"]["observe"],
            "n_candidates": summary["n_candidates"],
            "views": {s: summary[s]["n_views"] for s in ("train", "val", "test", "test_flat")},
            "clusters": {s: summary[s]["n_clusters"]
                         for s in ("train", "val", "test", "test_flat")},
            "views_per_second": views / summary["seconds"]["observe"],
            "peak_rss_gb": _peak_gb(),
        })
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
