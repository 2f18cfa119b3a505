"""Diagnostics speed: evaluate() and write_report() on n_clusters x n_draws posterior samples.

    python benchmarks/bench_diagnostics.py [--draws 1000] [--sizes 2500 5000 10000]

Target: 10,000 clusters x 1,000 draws in under 10 s on 2 cores, nothing quadratic in
the number of clusters (the timings at several sizes show the scaling). Figures recorded in
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from pyro_clusters.diagnostics import PosteriorSamples, evaluate, write_report


def make(n: int, m: int, seed: int = 0) -> PosteriorSamples:
    rng = np.random.default_rng(seed)
    mu, sd = rng.uniform(14.0, 15.3, n), rng.uniform(0.05, 0.25, n)
    truth = mu + sd * rng.standard_normal(n)
    samples = mu[:, None] + sd[:, None] * rng.standard_normal((n, m))
    return PosteriorSamples(samples, truth, {"richness": rng.integers(10, 300, n)}, "bench")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--sizes", type=int, nargs="+", default=[2500, 5000, 10000])
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    rows = []
    evaluate(make(500, args.draws), np.random.default_rng(0))  # warm imports
    for n in args.sizes:
        post = make(n, args.draws)
        t0 = time.perf_counter()
        evaluate(post, np.random.default_rng(1))
        t_eval = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            write_report(tmp, [post], seed=1)
            t_report = time.perf_counter() - t0
        rows.append({"clusters": n, "draws": args.draws, "evaluate_seconds": t_eval,
                     "write_report_seconds": t_report})
        print(f"{n:6d} x {args.draws}: evaluate {t_eval:5.2f} s, write_report (metrics, "
              f"5 figures, samples file) {t_report:5.2f} s")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench_diagnostics.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
