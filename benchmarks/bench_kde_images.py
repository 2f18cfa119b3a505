"""KDE image speed: 2D {R_proj, v_los} 48 x 48 and 3D {x, y, v} voxel images per cluster.

    python benchmarks/bench_kde_images.py [--n 5000] [--setup cylinder] [--repeats 3]

Target: Ho et al. 2019 quote 410 us per 2D image (their KDE generation and sampling);
match or beat it with the vectorised implementation. Best of ``--repeats`` runs; figures
recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from pyro_clusters.features.kde import KDEImageSpec, kde_images
from pyro_clusters.simulator import FlatLogMassPrior, SimulatorConfig, simulate_selected


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--setup", default="cylinder")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    clusters = simulate_selected(args.n, FlatLogMassPrior(), SimulatorConfig(setup=args.setup),
                                 np.random.default_rng(0))[0]
    out = {"n_clusters": args.n, "setup": args.setup,
           "mean_galaxies": float(clusters.n_gal.mean())}
    for label, spec, n in (("2d_48", KDEImageSpec.for_clusters(clusters), args.n),
                           ("3d_24", KDEImageSpec.for_clusters(clusters, "3d"), args.n // 5),
                           ("3d_32", KDEImageSpec.for_clusters(clusters, "3d", bins=32),
                            args.n // 10)):
        sub = clusters.select(np.arange(n))
        best = min(_time(sub, spec) for _ in range(args.repeats))
        out[label] = {"us_per_image": 1e6 * best / n, "n": n,
                      "MB_per_1000_images": 4 * np.prod(spec.shape) / 1e3}
    print(json.dumps(out, indent=2))


def _time(clusters, spec) -> float:
    t0 = time.perf_counter()
    kde_images(clusters, spec)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
