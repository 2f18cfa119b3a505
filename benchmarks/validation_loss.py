"""A bundle's NPE validation loss: the mean of batch means against the mean over clusters.

    python benchmarks/validation_loss.py [--model default|amortised|DIR] [--n 2000] [--seed 123]

Evaluation batches are packed up to a galaxy budget (``eval_max_galaxies``), so a batch of
rich clusters holds fewer of them. Averaging the batches' mean losses equally, as training
once did, weighs the rich clusters up; the validation loss is now the mean over clusters
(``train_model(..., val_weights=...)``). Prints both, the batch sizes and the mean loss
(negative log posterior density of the residual, nats) by galaxies in the cylinder, on
fresh flat-prior clusters: at the bundle's redshift and depth, or over an amortised
bundle's observing conditions.
"""

import argparse

import numpy as np
import torch

from pyro_clusters.realfield.bundle import CylinderModel
from pyro_clusters.simulator import FlatLogMassPrior, SimulatorConfig, simulate_selected
from pyro_clusters.simulator.conditions import ObservingConditions, simulate_conditions

RICHNESS_BINS = (10, 30, 100, 300, 1000, np.inf)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="default")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--seed", type=int, default=123)
    args = p.parse_args()
    model = CylinderModel.load(args.model)
    rng = np.random.default_rng(args.seed)
    config = SimulatorConfig(setup="cylinder")
    if model.trained_on.get("amortised"):
        clusters = simulate_conditions(args.n, FlatLogMassPrior(), config,
                                       ObservingConditions(), rng)
    else:
        config = config.replace(z=float(model.trained_on["z"]))
        clusters = simulate_selected(args.n, FlatLogMassPrior(), config, rng)[0]
    clusters = model.classifier.annotate(clusters)
    npe = model.npe
    inputs, targets = npe._inputs(clusters), npe._targets(clusters)
    loss = np.empty(len(clusters))
    batch_means, sizes = [], []
    with torch.no_grad():
        for index, b in npe._indexed_batches(clusters, inputs, targets,
                                             npe.config.eval_batch_size):
            per_cluster = npe._nll(npe.model, b)
            loss[index] = per_cluster.cpu().numpy()
            batch_means.append(float(per_cluster.mean()))
            sizes.append(len(index))
    print(f"{args.model}: {len(clusters)} clusters in {len(sizes)} batches of {sizes}")
    print(f"mean of batch means {np.mean(batch_means):.3f}; mean over clusters "
          f"{loss.mean():.3f} nats")
    for lo, hi in zip(RICHNESS_BINS[:-1], RICHNESS_BINS[1:], strict=True):
        sel = (clusters.n_gal >= lo) & (clusters.n_gal < hi)
        if sel.any():
            print(f"  {lo:>5}-{hi:<5} galaxies: {sel.sum():5d} clusters, mean loss "
                  f"{loss[sel].mean():+.3f}")


if __name__ == "__main__":
    main()
