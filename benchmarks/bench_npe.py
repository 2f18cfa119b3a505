"""Set NPE inference speed (and, optionally, training time).

    python benchmarks/bench_npe.py --model results/idealized_full/models/npe_deepsets \
        [--clusters 1000] [--draws 1000]

Times, on freshly simulated clusters of the model's setup from the HMF test distribution:
embedding every cluster once, drawing ``--draws`` posterior samples per cluster, and a
200-point log-density grid. Target: under 1 ms per cluster for 1,000 draws. Training time on
20,000 clusters is measured by the full-size experiments (metrics.json: train_seconds).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from pyro_clusters.estimators import registry
from pyro_clusters.simulator import HaloMassFunctionSampler, SimulatorConfig, simulate_selected


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--clusters", type=int, default=1000)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    est = registry.load(args.model)
    rng = np.random.default_rng(0)
    setup = est.trained_on.get("setup", "idealized")
    test = simulate_selected(args.clusters, HaloMassFunctionSampler(),
                             SimulatorConfig(setup=setup), rng)[0]
    n = len(test)
    t_embed = best_of(lambda: est.context(test), args.repeats)
    t_sample = best_of(lambda: est.sample(test, args.draws, rng), args.repeats)
    grid = np.linspace(13.5, 15.5, 200)
    t_grid = best_of(lambda: est.log_prob(test, grid), args.repeats)
    res = {"model": str(args.model), "setup": setup, "encoder": est.config.encoder,
           "clusters": n, "draws": args.draws, "mean_galaxies": float(test.n_gal.mean()),
           "threads": torch.get_num_threads(),
           "embed_ms_per_cluster": 1e3 * t_embed / n,
           "sample_ms_per_cluster": 1e3 * t_sample / n,
           "log_prob_200_ms_per_cluster": 1e3 * t_grid / n}
    print(f"{setup}, {est.config.encoder} encoder: "
          f"{n} clusters ({res['mean_galaxies']:.0f} galaxies on average), {args.draws} draws: "
          f"embed {res['embed_ms_per_cluster']:.3f} ms/cluster, sample (incl. embedding) "
          f"{res['sample_ms_per_cluster']:.3f} ms/cluster, 200-point log_prob "
          f"{res['log_prob_200_ms_per_cluster']:.3f} ms/cluster")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench_npe.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
