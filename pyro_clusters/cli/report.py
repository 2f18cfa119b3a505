"""Coverage report from saved posterior samples, whatever made them.

Usage::

    pyro-clusters report --posterior FILE_OR_RUN_DIR [...] --out DIR [--seed S]
                         [--mass-bin-width 0.1]

Each FILE is a posterior file (docs/posterior_format.md); a directory stands for every
``posterior_*.nc`` in it (an experiment's run directory). The files are NetCDF-4 with
``posterior/log_m (chain, draw, cluster)`` and ``constant_data/log_m_true (cluster)``.
Several files (one per estimator, same test clusters) are reported side by side. Writes
DIR/metrics.json, DIR/report.md and DIR/figures/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pyro_clusters.cli import command_parser
from pyro_clusters.diagnostics.metrics import default_mass_edges
from pyro_clusters.diagnostics.posterior import load_posterior
from pyro_clusters.diagnostics.report import summary_legend, summary_line, write_report

__all__ = ["build_parser", "expand_inputs", "main"]


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Files as given; a directory becomes its ``posterior_*.nc`` files (sorted)."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(p.glob("posterior_*.nc"))
            if not found:
                raise FileNotFoundError(f"no posterior_*.nc files in {p}")
            files += found
        else:
            files.append(p)
    return files


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = command_parser("report", __doc__)
    p.add_argument("--posterior", type=Path, nargs="+", required=True,
                   help="posterior files (NetCDF-4), or run directories of posterior_*.nc")
    p.add_argument("--out", type=Path, required=True, help="report directory (created)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of TARP's reference points (each estimator's own, by name)")
    p.add_argument("--mass-bin-width", type=float, default=0.1,
                   help="width of the per-mass-bin rows [dex]")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        files = expand_inputs(args.posterior)
        posteriors = [load_posterior(f) for f in files]
        for f, post in zip(files, posteriors, strict=True):
            if post.estimator == "unnamed":
                post.estimator = f.stem.removeprefix("posterior_")
        edges = default_mass_edges(posteriors[0].truth, args.mass_bin_width)
        metrics = write_report(args.out, posteriors, seed=args.seed, save_samples=False,
                               mass_edges=edges,
                               top_level={"sources": [str(f) for f in files]})
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for post in posteriors:
        print(summary_line(post.estimator, metrics[post.estimator]))
    print(summary_legend(metrics["n_test"]))
    print(f"wrote {args.out / 'metrics.json'} and {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
