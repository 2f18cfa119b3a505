"""Fresh-cluster training with and without making the next epoch's clusters ahead.

    python benchmarks/bench_fresh.py [--device cuda] [--clusters 20000] [--epochs 3]
        [--workers 1] [--batch-size 32] [--out FILE.json]

Trains the amortised bundle's membership classifier for ``--epochs`` epochs on ``--clusters``
new clusters per epoch (over the observing conditions), twice from the same seed: once with
the next epoch's set made in a background thread while the current one trains (what
training does), once making every set when it is needed. Reports seconds per epoch of each
(the first epoch, which waits for its set either way, left out of the mean) and checks that
both runs end with the same weights.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from dataclasses import replace
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from pyro_clusters.estimators import neural, registry
from pyro_clusters.estimators.base import Splits
from pyro_clusters.realfield.bundle import AMORTISED_GLOBALS
from pyro_clusters.simulator import FlatLogMassPrior, SimulatorConfig
from pyro_clusters.simulator.conditions import ObservingConditions, simulate_conditions
from pyro_clusters.training import TrainConfig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--clusters", type=int, default=20000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--workers", type=int, default=1, help="simulation processes")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    if args.epochs < 2:
        p.error("--epochs must be >= 2 (the first epoch waits for its set either way)")
    config, conditions, prior = (SimulatorConfig(setup="cylinder"), ObservingConditions(),
                                 FlatLogMassPrior())
    rng = np.random.default_rng(0)
    train, val = (simulate_conditions(n, prior, config, conditions, rng, args.workers)
                  for n in (args.clusters, max(args.clusters // 10, 100)))

    def fresh(r: np.random.Generator):
        return simulate_conditions(args.clusters, prior, config, conditions, r, args.workers)

    tcfg = TrainConfig(batch_size=args.batch_size, max_epochs=args.epochs,
                       patience=args.epochs, device=args.device, progress=False)
    cfg = replace(registry.get("deepsets_membership").configure(tcfg),
                  extra_globals=AMORTISED_GLOBALS)
    res = {"device": args.device, "clusters": args.clusters, "epochs": args.epochs,
           "workers": args.workers, "batch_size": args.batch_size,
           "torch_threads": torch.get_num_threads()}
    weights = {}
    for label in ("ahead", "when_needed"):
        patch = (mock.patch.object(neural._Ahead, "start", lambda self, r: None)
                 if label == "when_needed" else contextlib.nullcontext())
        with patch:
            est = registry.build("deepsets_membership", cfg).fit(Splits(train, val, fresh=fresh))
        seconds = [h["seconds"] for h in est.result.history]
        res[label] = {"epoch_seconds": seconds, "mean_after_first": float(np.mean(seconds[1:])),
                      "train_seconds": est.train_seconds}
        weights[label] = [t.detach().cpu() for t in est.model.state_dict().values()]
        print(f"{label}: {', '.join(f'{s:.1f}' for s in seconds)} s per epoch "
              f"(mean after the first {res[label]['mean_after_first']:.1f} s)", flush=True)
    res["same_weights"] = all(torch.equal(a, b) for a, b in
                              zip(weights["ahead"], weights["when_needed"], strict=True))
    res["speedup"] = res["when_needed"]["mean_after_first"] / res["ahead"]["mean_after_first"]
    print(f"speed-up {res['speedup']:.2f}x; same weights: {res['same_weights']}")
    if args.out:
        args.out.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
