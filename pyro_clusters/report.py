"""Coverage report from saved posterior samples, whatever made them.

Usage::

    python -m pyro_clusters.report --posterior FILE [FILE ...] --out DIR [--seed S]
                                   [--mass-bin-width 0.1]

Each FILE is a posterior file (docs/posterior_format.md): NetCDF-4 with
``posterior/log_m (chain, draw, cluster)`` and ``constant_data/log_m_true (cluster)``.
Several files (one per estimator, same test clusters) are reported side by side. Writes
DIR/metrics.json, DIR/report.md and DIR/figures/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pyro_clusters.diagnostics.metrics import default_mass_edges
from pyro_clusters.diagnostics.posterior import load_posterior
from pyro_clusters.diagnostics.report import summary_line, write_report

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    p = argparse.ArgumentParser(prog="python -m pyro_clusters.report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--posterior", type=Path, nargs="+", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0, help="seed of TARP's reference points")
    p.add_argument("--mass-bin-width", type=float, default=0.1, help="dex")
    args = p.parse_args(argv)
    try:
        posteriors = [load_posterior(f) for f in args.posterior]
        for f, post in zip(args.posterior, posteriors, strict=True):
            if post.estimator == "unnamed":
                post.estimator = f.stem.removeprefix("posterior_")
        edges = default_mass_edges(posteriors[0].truth, args.mass_bin_width)
        metrics = write_report(args.out, posteriors, seed=args.seed, save_samples=False,
                               mass_edges=edges,
                               top_level={"sources": [str(f) for f in args.posterior]})
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for post in posteriors:
        print(summary_line(post.estimator, metrics[post.estimator]))
    print(f"wrote {args.out / 'metrics.json'} and {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
