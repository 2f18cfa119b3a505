"""Where one epoch of amortised-bundle training spends its time, on any device.

    python benchmarks/bench_training.py [--device cuda] [--clusters 20000] [--workers 1]
        [--batch-size 32] [--precision bfloat16] [--out FILE.json]

A training epoch with fresh clusters (``python -m experiments.amortised --fresh``) does, in
order: simulate the epoch's clusters over the observing conditions, annotate them with the
classifier (the NPE's epoch), turn them into standardised per-galaxy and global features, pad
them into batches and copy those to the device, and take the optimiser steps. This script
times each stage separately for the classifier and the NPE of the bundle, on the same
``--clusters`` clusters (networks built by a one-epoch fit on a few hundred clusters: the
architecture, not the weights, sets the cost). Each figure is clusters per second of that
stage alone; the last line is the epoch's total and the share of it spent off the device's
arithmetic (simulation, annotation, features, padding).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from pyro_clusters.estimators import registry
from pyro_clusters.estimators.base import Splits
from pyro_clusters.estimators.npe_deepsets import HISTOGRAM_ENCODER
from pyro_clusters.realfield.bundle import AMORTISED_GLOBALS, AMORTISED_NPE_GLOBALS
from pyro_clusters.simulator import FlatLogMassPrior, SimulatorConfig
from pyro_clusters.simulator.conditions import ObservingConditions, simulate_conditions
from pyro_clusters.training import PRECISIONS, TrainConfig


def _timed(fn, device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def _steps(est, batches: list) -> None:
    """One optimiser step per batch, as the training loop takes them."""
    opt = torch.optim.Adam(est.model.parameters(), lr=1e-4)
    est.model.train()
    for batch in batches:
        opt.zero_grad(set_to_none=True)
        with est.config.train.autocast():  # TrainConfig.precision
            loss = est._loss(est.model, batch)
        loss.backward()
        opt.step()
    est.model.eval()


def stages(est, clusters, batch_size: int, device: str) -> dict:
    """Seconds of features, padding + copy, and optimiser steps for one pass over ``clusters``."""
    inputs, t_inputs = _timed(lambda: est._inputs(clusters), device)
    targets = est._targets(clusters)
    batches, t_batches = _timed(lambda: list(est._batches(
        clusters, inputs, targets, batch_size, np.random.default_rng(0))), device)
    _, t_steps = _timed(lambda: _steps(est, batches), device)
    return {"features_s": t_inputs, "pad_and_copy_s": t_batches, "steps_s": t_steps,
            "batches": len(batches)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--clusters", type=int, default=20000)
    p.add_argument("--workers", type=int, default=1, help="simulation processes")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--precision", choices=PRECISIONS, default="float32",
                   help="arithmetic of the optimiser steps (TrainConfig.precision)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    dev = args.device
    config, conditions, prior = SimulatorConfig(setup="cylinder"), ObservingConditions(), \
        FlatLogMassPrior()
    rng = np.random.default_rng(args.seed)
    small = [simulate_conditions(n, prior, config, conditions, rng) for n in (400, 100)]
    tcfg = TrainConfig(batch_size=args.batch_size, max_epochs=1, patience=1, device=dev,
                       progress=False, seed=args.seed, precision=args.precision)
    clf = registry.build("deepsets_membership", replace(
        registry.get("deepsets_membership").configure(tcfg), extra_globals=AMORTISED_GLOBALS))
    clf.fit(Splits(small[0], small[1], None))
    small = [clf.annotate(s) for s in small]
    npe_cls = registry.get("npe_deepsets")
    npe = registry.build("npe_deepsets", replace(
        npe_cls.configure(tcfg), extra_features=("p_member",),
        extra_globals=AMORTISED_NPE_GLOBALS, **HISTOGRAM_ENCODER))  # as train_bundle
    npe.fit(Splits(small[0], small[1], None))

    if args.workers > 1:  # start the worker processes first: training reuses them every epoch
        simulate_conditions(args.workers * conditions.chunk, prior, config, conditions,
                            np.random.default_rng(1), args.workers)
    clusters, t_sim = _timed(lambda: simulate_conditions(
        args.clusters, prior, config, conditions, rng, args.workers), dev)
    n = len(clusters)
    res = {"device": dev, "torch_threads": torch.get_num_threads(), "clusters": n,
           "precision": args.precision,
           "workers": args.workers, "batch_size": args.batch_size,
           "mean_galaxies": float(clusters.n_gal.mean()), "simulate_s": t_sim,
           "classifier": stages(clf, clusters, args.batch_size, dev)}
    annotated, res["annotate_s"] = _timed(lambda: clf.annotate(clusters), dev)
    res["npe"] = stages(npe, annotated, args.batch_size, dev)
    for net, extra in (("classifier", t_sim), ("npe", t_sim + res["annotate_s"])):
        s = res[net]
        total = extra + s["features_s"] + s["pad_and_copy_s"] + s["steps_s"]
        s.update(epoch_s=total, clusters_per_s=n / total,
                 off_device_share=1.0 - s["steps_s"] / total)
    print(f"{n} clusters ({res['mean_galaxies']:.0f} galaxies on average), device {dev}, "
          f"{res['torch_threads']} torch threads, {args.workers} simulation workers, "
          f"{args.precision} steps")
    print(f"simulate {t_sim:.2f} s; annotate {res['annotate_s']:.2f} s")
    for net in ("classifier", "npe"):
        s = res[net]
        print(f"{net}: features {s['features_s']:.2f} s, pad + copy {s['pad_and_copy_s']:.2f} s,"
              f" {s['batches']} steps {s['steps_s']:.2f} s -> epoch {s['epoch_s']:.1f} s "
              f"({s['clusters_per_s']:.0f} clusters/s, {100 * s['off_device_share']:.0f} % "
              "outside the optimiser steps)")
    if args.out:
        args.out.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
