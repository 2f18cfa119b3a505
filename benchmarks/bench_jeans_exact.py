"""jeans_exact speed: likelihood evaluation and NUTS seconds per cluster on one core.

    python benchmarks/bench_jeans_exact.py [--clusters 12] [--no-compile]

Target: under ~5 s per cluster on one core with vectorised quadrature. Measures

* one evaluation of the potential and its gradient (the work of one leapfrog step) against
  the number of satellites, eager and through ``torch.compile``;
* NUTS with the experiment's settings (2 chains x (150 warm-up + 250 draws)) on spherical
  clusters drawn from the flat prior 13.5-15.5 (richness ``ancillary``), in one process with
  one torch thread; the compilation (once per process) is reported separately.

Figures are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from pyro_clusters.estimators.jeans_exact import (
    JeansExactConfig,
    _compiled_neg_log_posterior,
    _likelihood,
    _neg_log_posterior,
    _sample_cluster,
    satellites,
)
from pyro_clusters.simulator import FlatLogMassPrior, SimulatorConfig, simulate_selected


def _eval_ms(fn, lik, n: int, repeats: int = 300) -> float:
    rng = np.random.default_rng(n)
    r = torch.as_tensor(rng.uniform(0.01, 2.0, n))
    v = torch.as_tensor(rng.normal(0, 700, n))
    bounds = torch.tensor([13.5, 15.5, 0.0, 0.6], dtype=torch.float64)
    x = torch.tensor([0.1, 0.6, 0.0], dtype=torch.float64, requires_grad=True)
    n_sat = torch.tensor(float(n), dtype=torch.float64)

    def once():
        y = fn(x[0], x[1], x[2], lik, r, v, "ancillary", bounds, n_sat)
        torch.autograd.grad(y, x)

    for _ in range(10):
        once()
    t0 = time.perf_counter()
    for _ in range(repeats):
        once()
    return 1e3 * (time.perf_counter() - t0) / repeats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--clusters", type=int, default=12)
    p.add_argument("--no-compile", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    cfg = SimulatorConfig.spherical()
    lik = _likelihood(cfg.to_json(), 32)
    out: dict = {"torch_threads": 1}

    t0 = time.perf_counter()
    compiled = _compiled_neg_log_posterior()
    _eval_ms(compiled, lik, 50, repeats=1)
    _eval_ms(compiled, lik, 51, repeats=1)  # the dynamic-shape recompilation
    out["compile_seconds"] = time.perf_counter() - t0
    out["potential_and_gradient_ms"] = {
        str(n): {"eager": _eval_ms(_neg_log_posterior, lik, n),
                 "compiled": _eval_ms(compiled, lik, n)}
        for n in (20, 50, 100, 300, 1000)}

    clusters = simulate_selected(args.clusters, FlatLogMassPrior(), cfg,
                                 np.random.default_rng(0))[0]
    jcfg = JeansExactConfig(warmup=150, samples=250, compile=not args.no_compile)
    rows = []
    for i in range(len(clusters)):
        r, v = satellites(clusters, i)
        res = _sample_cluster(cfg.to_json(), jcfg, r, v, i)
        rows.append({"log_m": float(clusters.log_m[i]), "n_satellites": int(r.size),
                     "seconds": res["seconds"], "rhat": res["rhat"],
                     "divergences": res["divergences"]})
    secs = np.array([row["seconds"] for row in rows])
    n_sat = np.array([row["n_satellites"] for row in rows])
    out["nuts"] = {"compile": jcfg.compile, "chains": jcfg.num_chains, "warmup": jcfg.warmup,
                   "samples": jcfg.samples, "clusters": rows,
                   "seconds_mean": float(secs.mean()), "seconds_median": float(np.median(secs)),
                   "seconds_mean_n_below_100": float(secs[n_sat < 100].mean())
                   if np.any(n_sat < 100) else None}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
