"""Validation on real surveys: ``python -m experiments.realdata --manifest FILE``.

``[--models default,amortised] [--out DIR] [--draws N] [--prior {flat,hmf}] [--floor DEX]``

Every field of the manifest (galaxy table, cluster centres, published masses with their
definition and h convention; :mod:`pyro_clusters.realfield.validation`) goes through each
model's batch inference; every published mass is converted to log10(M200c / h^-1 Msun) (the
Diemer & Joyce 2019 c-M relation) and set against the posterior: offset, pull, warnings.
Writes DIR/validation.csv (one row per model, cluster and published mass), DIR/metrics.json
(per model and kind of mass: n, mean and RMS offset, pull RMS, clusters within 2 sigma, those
more than 0.4 dex off and whether they carry a warning), DIR/report.md and
DIR/figures/validation.png. ``examples/realdata/manifest.json`` holds the Shapley supercluster
survey and two HeCS clusters (sources and licences in its README).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from pyro_clusters import __version__
from pyro_clusters.diagnostics.report import to_json_safe
from pyro_clusters.realfield.bundle import CylinderModel
from pyro_clusters.realfield.table import ObservationError
from pyro_clusters.realfield.validation import (
    FLOOR_DEX,
    plot_validation,
    read_manifest,
    summarise,
    validate,
)

__all__ = ["main", "run"]

COLUMNS = ("model", "field", "name", "z", "status", "median", "p16", "p84", "mass",
           "log_m_pub", "err_pub_dex", "offset_dex", "pull", "warnings", "reason")


def run(manifest_path: Path, models: list[str], out: Path, n_draws: int = 2000, seed: int = 0,
        prior: str = "flat", floor_dex: float = FLOOR_DEX, progress: bool = True) -> dict:
    """Validate each model on the manifest; returns the metrics written."""
    manifest = read_manifest(manifest_path)
    rows_by_model = {}
    for name in models:
        model = CylinderModel.load(name)
        rows_by_model[name] = validate(manifest, model, n_draws, seed, prior, floor_dex,
                                       progress)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "validation.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        for name, rows in rows_by_model.items():
            for r in rows:
                w.writerow({"model": name, **{k: (f"{v:.4f}" if isinstance(v, float)
                                                  and np.isfinite(v) else
                                                  "" if isinstance(v, float) else v)
                                              for k, v in r.items()}})
    summary = {name: summarise(rows) for name, rows in rows_by_model.items()}
    plot_validation(rows_by_model, out / "figures" / "validation.png")
    metrics = {"manifest": str(manifest_path), "name": manifest.name, "models": models,
               "n_draws": n_draws, "seed": seed, "prior": prior, "floor_dex": floor_dex,
               "package_version": __version__, "summary": summary,
               "n_clusters": {name: len({(r["field"], r["name"]) for r in rows})
                              for name, rows in rows_by_model.items()}}
    (out / "metrics.json").write_text(json.dumps(to_json_safe(metrics), indent=2))
    (out / "report.md").write_text("\n".join(_report(metrics, rows_by_model)) + "\n")
    return metrics


def _report(metrics: dict, rows_by_model: dict) -> list[str]:
    lines = [f"# Validation on real surveys: {metrics['name']}", "",
             f"Manifest `{metrics['manifest']}`, prior `{metrics['prior']}`, "
             f"{metrics['n_draws']} draws, pull floor {metrics['floor_dex']} dex.", "",
             "| model | published mass | n | mean offset [dex] | RMS offset [dex] | pull RMS | "
             "within 2σ | > 0.4 dex off (with a warning) |", "|---|---|---|---|---|---|---|---|"]
    for model, per in metrics["summary"].items():
        for label, s in per.items():
            lines.append(f"| {model} | {label} | {s['n']} | {s['mean_offset_dex']:+.3f} | "
                         f"{s['rms_offset_dex']:.3f} | {s['pull_rms']:.2f} | "
                         f"{s['n_within_2sigma']} | {s['n_far']} ({s['n_far_with_warning']}"
                         f"){': ' + ', '.join(s['far']) if s['far'] else ''} |")
    lines += ["", "![validation](figures/validation.png)", "",
              "| model | field | cluster | z | posterior median (16–84 %) | published | "
              "log M200c pub. | offset | pull | warnings |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for model, rows in rows_by_model.items():
        for r in rows:
            if r["status"] != "ok":
                lines.append(f"| {model} | {r['field']} | {r['name']} | {r['z']:.4f} | "
                             f"skipped: {r['reason']} | | | | | |")
                continue
            pub = (f"{r['log_m_pub']:.2f} ± {r['err_pub_dex']:.2f}"
                   if np.isfinite(r["log_m_pub"]) else "")
            lines.append(f"| {model} | {r['field']} | {r['name']} | {r['z']:.4f} | "
                         f"{r['median']:.2f} ({r['p16']:.2f}–{r['p84']:.2f}) | {r['mass']} | "
                         f"{pub} | "
                         + (f"{r['offset_dex']:+.2f} | {r['pull']:+.1f}"
                            if np.isfinite(r["offset_dex"]) else " | ")
                         + f" | {len(r['warnings'].split(' | ')) if r['warnings'] else 0} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    p = argparse.ArgumentParser(prog="python -m experiments.realdata", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", type=Path, default=Path("examples/realdata/manifest.json"))
    p.add_argument("--models", default="default,amortised",
                   help="comma-separated shipped model names or bundle directories")
    p.add_argument("--out", type=Path, default=Path("results/realdata"))
    p.add_argument("--draws", type=int, default=2000, help="posterior draws per cluster")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prior", choices=("flat", "hmf"), default="flat")
    p.add_argument("--floor", type=float, default=FLOOR_DEX,
                   help="scatter of a published mass about the truth beyond its error [dex]")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    try:
        metrics = run(args.manifest, args.models.split(","), args.out, args.draws, args.seed,
                      args.prior, args.floor, not args.no_progress)
    except (ObservationError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for model, per in metrics["summary"].items():
        for label, s in per.items():
            print(f"{model:10s} vs {label:15s} n {s['n']:2d}  offset {s['mean_offset_dex']:+.3f} "
                  f"(RMS {s['rms_offset_dex']:.3f}) dex  pull RMS {s['pull_rms']:.2f}  within "
                  f"2 sigma {s['n_within_2sigma']}/{s['n']}  > 0.4 dex off {s['n_far']} "
                  f"({s['n_far_with_warning']} with a warning)")
    print(f"wrote {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
