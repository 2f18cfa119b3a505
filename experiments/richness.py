"""Does a trained model read the galaxy count? ``python -m experiments.richness MODEL [MODEL ...]``.

``[--setup S] [--size S] [--seed N] [--clusters N] [--out DIR]``

The NPE should not take its mass from the number of galaxies (Wang, Thiele & Ho 2026: mean
pooling "to avoid encoding cluster richness"): the count depends on the survey's selection as
much as on the cluster. A set function can still sense the count statistically -- a normalised
histogram of 20 galaxies is lumpier than one of 500 -- and a training prior at one survey
depth ties the count to the mass. This experiment measures it for saved models with the
subsampled mass drift of Ho et al. 2019 (eq. 14): the mean change of the posterior median when
every cluster keeps a random fraction r of its galaxies. An estimator blind to the count stays
near zero; one that reads the mass off the count alone (N proportional to M, the occupation
slope 1) moves by log10(r): -0.30 at r = 0.5.

The test clusters are the first ``--clusters`` of the HMF test set that ``experiments.ablation``
(and ``experiments.compare``) simulate for the same ``--setup``, ``--size`` and ``--seed``, and
the protocol is the ablation's drift column (rates 0.5 and 0.7, two subsamplings per cluster,
200 draws, the generator ``[seed, 2]``), so a model trained there gets the same numbers here.
MODEL is a saved estimator directory (``DIR/models/NAME`` of an experiment), a classifier + NPE
bundle directory, or a shipped bundle's name (``default``, ``amortised``); the M-sigma baseline
inside an NPE is measured too, as the count-blind reference. Writes DIR/richness.json and
DIR/report.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from pyro_clusters.diagnostics.metrics import residual_metrics
from pyro_clusters.estimators import registry
from pyro_clusters.pipeline.evaluation import DRIFT_RATES, richness_drift
from pyro_clusters.pipeline.sets import get_sets
from pyro_clusters.pipeline.sizes import SIZES as RUN_SIZES
from pyro_clusters.realfield.bundle import SHIPPED, CylinderModel
from pyro_clusters.simulator import SimulatorConfig

__all__ = ["load_model", "main", "run"]

#: the ablation's sizes: the drift set is its HMF test set
SIZES = RUN_SIZES["ablation"]


def load_model(spec: str, device: str | None = None):
    """A saved estimator or bundle: a shipped bundle's name or a directory."""
    path = Path(spec)
    if spec in SHIPPED or (path / "bundle.json").is_file():
        return CylinderModel.load(spec, device=device)
    if not path.is_dir():
        raise SystemExit(f"error: {spec} is neither a model directory nor one of "
                         f"{', '.join(SHIPPED)}")
    return registry.load(path, device=device)


class _Annotated:
    """A bundle's M-sigma baseline, on clusters its classifier annotates first."""

    def __init__(self, bundle: CylinderModel):
        self.bundle = bundle

    def sample(self, clusters, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.bundle.msigma.sample(self.bundle.annotate(clusters), n, rng)


def _references(spec: str, model) -> list[tuple[str, object]]:
    """The model and, where it has one, its M-sigma baseline (the count-blind reference)."""
    if isinstance(model, CylinderModel):
        return [(spec, model), (f"{spec} (its M–σ baseline)", _Annotated(model))]
    if getattr(model, "baseline", None) is not None:
        return [(spec, model), (f"{spec} (its M–σ baseline)", model.baseline)]
    return [(spec, model)]


def run(out: Path, models: list[str], setup: str, size: str, seed: int, n_clusters: int,
        device: str | None = None) -> dict:
    """Drift of every model (and of each NPE's M-sigma baseline); returns what it wrote."""
    s = SIZES[size]
    data = get_sets(SimulatorConfig(setup=setup), s.n_train, s.n_val, s.n_test,
                    np.random.default_rng(seed), None, cap=False)
    test = data.test.select(np.arange(min(n_clusters, len(data.test))))  # σ_ε: the drift set
    rows = {}
    for spec in models:
        for name, est in _references(spec, load_model(spec, device)):
            fit = residual_metrics(est.sample(test, 1000, np.random.default_rng([seed, 1])),
                                   test.log_m)
            d = richness_drift(est, data.test, seed, n_clusters)
            rows[name] = {"scatter_dex": fit["scatter_dex"], "bias_dex": fit["bias_dex"],
                          "drift_mean_dex": d["mean_dex"], "drift_median_dex": d["median_dex"]}
            print(f"{name}: sigma_eps {fit['scatter_dex']:.4f}, drift "
                  + ", ".join(f"r={r}: {e:+.3f}" for r, e in
                              zip(DRIFT_RATES, rows[name]["drift_mean_dex"], strict=True)),
                  file=sys.stderr)
    result = {"setup": setup, "size": size, "seed": seed, "n_clusters": len(test),
              "rates": list(DRIFT_RATES), "pure_richness_dex": np.log10(DRIFT_RATES).tolist(),
              "models": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "richness.json").write_text(json.dumps(result, indent=2))
    lines = [f"# Richness: subsampled mass drift ({setup}, {size} size, seed {seed})", "",
             f"{len(test)} HMF test clusters; mean change of the posterior median when each "
             "cluster keeps a random fraction r of its galaxies (two draws each). Count-blind: "
             "≈ 0; mass read off the count alone: "
             + ", ".join(f"{v:+.2f} at r = {r}" for r, v in
                         zip(DRIFT_RATES, result["pure_richness_dex"], strict=True)) + ".", "",
             "| model | σ_ε [dex] | bias [dex] | "
             + " | ".join(f"drift r = {r} [dex]" for r in DRIFT_RATES) + " |",
             "|---|---|---|" + "---|" * len(DRIFT_RATES)]
    for name, r in rows.items():
        lines.append(f"| `{name}` | {r['scatter_dex']:.4f} | {r['bias_dex']:+.4f} | "
                     + " | ".join(f"{e:+.3f}" for e in r["drift_mean_dex"]) + " |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    p = argparse.ArgumentParser(prog="python -m experiments.richness", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="saved estimator or bundle directories, or shipped bundle names")
    p.add_argument("--setup", choices=("idealized", "cylinder"), default="idealized")
    p.add_argument("--size", choices=sorted(SIZES), default="full",
                   help="the ablation size whose HMF test set is used (default full)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clusters", type=int, default=None,
                   help="HMF test clusters (default: the size's drift set of the ablation)")
    p.add_argument("--device", default=None, help="torch device (default: as saved, cpu)")
    p.add_argument("--out", type=Path, default=Path("results/richness"))
    args = p.parse_args(argv)
    n = args.clusters if args.clusters is not None else SIZES[args.size].n_drift
    run(args.out, args.models, args.setup, args.size, args.seed, n, args.device)
    print(f"wrote {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
