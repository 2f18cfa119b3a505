"""Batch inference over a survey: clusters per second of ``infer_survey`` on this machine.

    python benchmarks/bench_survey.py [--n 2000] [--draws 1000] [--prior flat]

A mock survey (simulated cylinder clusters placed on the sky, ``mock_survey``) goes through
the shipped model: cone search, cylinder cut, classifier, NPE with the prior, percentiles and
warnings -- everything but writing files and figures. Prints clusters/s and the accuracy on
the mock truths (a check that the fast path is the real one).
"""

import argparse
import time

import numpy as np
import torch

from pyro_clusters.realfield.bundle import CylinderModel
from pyro_clusters.realfield.survey import infer_survey, mock_survey
from pyro_clusters.simulator import FlatLogMassPrior, SimulatorConfig, simulate_selected


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--prior", choices=("flat", "hmf"), default="flat")
    args = p.parse_args()
    rng = np.random.default_rng(1)
    cs = simulate_selected(args.n, FlatLogMassPrior(14.0, 15.2),
                           SimulatorConfig(setup="cylinder"), rng)[0]
    table, centres = mock_survey(cs, seed=1)
    model = CylinderModel.load()
    infer_survey(table, centres, model, args.draws, 0, args.prior, progress=False)  # warm-up
    t0 = time.perf_counter()
    res = infer_survey(table, centres, model, args.draws, 0, args.prior, progress=False)
    dt = time.perf_counter() - t0
    med = np.array([r["median"] for r in res.rows])
    print(f"{args.n} clusters, {table.ra.size} galaxies, {args.draws} draws, prior "
          f"{args.prior}, torch threads {torch.get_num_threads()}: {dt:.2f} s = "
          f"{args.n / dt:.0f} clusters/s; {len(res.names)} with a posterior; "
          f"sigma_eps {np.nanstd(med - cs.log_m):.3f} dex")


if __name__ == "__main__":
    main()
