"""Which set encoder? ``python -m experiments.ablation [--setup S] [--quick] [--variants a,b]``.

Trains variants of ``npe_deepsets`` on the same simulated training, validation and test
clusters and one seed, so that a choice of architecture rests on measured evidence: σ_ε, bias
and the by-mass-bin table on the HMF test set, HPD and TARP coverage on the flat-prior test set,
training epochs and time. Every variant sees the raw phase space of its setup (no classifier
probabilities) and the M-sigma baseline with its mass cut chosen on validation, as in
``experiments.compare``. A ``_fresh`` variant trains on newly simulated clusters every
epoch (as many as the training set; the training set still fixes the standardisation); a
``_depth`` variant draws those clusters' survey depth per chunk from :data:`DEPTH_NUISANCE`
(a nuisance richness normalisation; see Richness below). Runs
stop by epochs and patience only (no wall-clock budget), so a
seed reproduces a run. Writes DIR/metrics.json, DIR/report.md (the ablation table),
DIR/figures/ and DIR/flat_test/.

Richness: the architecture should not read the galaxy count (Wang, Thiele & Ho 2026). A set
function can still sense it statistically -- a normalised histogram of 20 galaxies is lumpier
than one of 500 -- and the training prior ties the count to the mass. The table therefore
reports each variant's subsampled mass drift (Ho et al. 2019 eq. 14) at r = 0.5 and 0.7 on
the same HMF test clusters: the mean change of the posterior median when every cluster keeps a
random half (70 %) of its galaxies. An estimator blind to the count stays near zero (the
M-sigma baseline: a few 0.01 dex); one that read the mass off the count alone, N proportional to
M (the occupation slope alpha = 1), would move by log10(r) = -0.30 (-0.15).
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from pyro_clusters.defaults import setup_of
from pyro_clusters.diagnostics.metrics import residual_metrics
from pyro_clusters.diagnostics.report import summary_legend, summary_line, write_report
from pyro_clusters.estimators import MSigmaConfig, Splits, registry
from pyro_clusters.pipeline.evaluation import DRIFT_RATES, posterior_of, richness_drift
from pyro_clusters.pipeline.options import experiment_parser, parse_experiment_args
from pyro_clusters.pipeline.sections import flat_table
from pyro_clusters.pipeline.sets import fresh_clusters, get_sets
from pyro_clusters.pipeline.sizes import SIZES as RUN_SIZES
from pyro_clusters.pipeline.sizes import AblationSize
from pyro_clusters.simulator import FlatLogMassPrior, SimulatorConfig, simulate_selected

__all__ = ["BASE", "SIZES", "VARIANTS", "main", "run"]

#: survey depths, log10(M* / h^-1 Msun), of the ``_depth`` variant's fresh training clusters:
#: +-0.5 dex about the default 9.5, about a factor 2 in richness either way at fixed mass
#: (pyro_clusters.simulator.depth), so that the count is no longer a clean mass proxy; the
#: validation and test clusters keep the default depth
DEPTH_NUISANCE = (9.0, 10.0)
#: the first design; every variant is this plus its changes (and "lr" / "batch_size" /
#: "lr_schedule" / "precision" of its TrainConfig), so that a variant means the same network
#: whatever the defaults become
BASE = {"encoder": "deepsets", "hidden": 64, "context": 32, "histogram_bins": 16,
        "cluster_units": False, "lr_schedule": "plateau", "precision": "float32"}
VARIANTS = {
    "deepsets": {},
    "deepsets_wide": {"hidden": 128, "context": 64},
    "deepsets_fresh": {"fresh": True},
    "deepsets_cosine": {"lr_schedule": "cosine"},
    "deepsets_units": {"cluster_units": True},
    "histogram": {"encoder": "histogram"},
    "histogram_wide": {"encoder": "histogram", "hidden": 128, "context": 64},
    "histogram_units": {"encoder": "histogram", "cluster_units": True},
    "histogram_32": {"encoder": "histogram", "histogram_bins": 32},
    "histogram_wide_32": {"encoder": "histogram", "hidden": 128, "context": 64,
                          "histogram_bins": 32},
    "histogram_wide_32_units": {"encoder": "histogram", "hidden": 128, "context": 64,
                                "histogram_bins": 32, "cluster_units": True},
    "histogram_wide_48": {"encoder": "histogram", "hidden": 128, "context": 64,
                          "histogram_bins": 48},
    "histogram_wide_32_fresh": {"encoder": "histogram", "hidden": 128, "context": 64,
                                "histogram_bins": 32, "fresh": True},
    "histogram_wide_32_fresh_cosine": {"encoder": "histogram", "hidden": 128, "context": 64,
                                       "histogram_bins": 32, "fresh": True,
                                       "lr_schedule": "cosine"},
    "histogram_wide_32_fresh_bf16": {"encoder": "histogram", "hidden": 128, "context": 64,
                                     "histogram_bins": 32, "fresh": True,
                                     "precision": "bfloat16"},
    "histogram_wide_32_fresh_depth": {"encoder": "histogram", "hidden": 128, "context": 64,
                                      "histogram_bins": 32, "fresh": True,
                                      "fresh_depth": DEPTH_NUISANCE},
}



SIZES = RUN_SIZES["ablation"]


def _config(variant: str, run_size: AblationSize, seed: int, device: str, progress: bool,
            msigma: MSigmaConfig):
    changes = {**BASE, **VARIANTS[variant]}
    changes.pop("fresh", None)
    changes.pop("fresh_depth", None)
    train_changes = {k: changes.pop(k) for k in ("lr", "batch_size", "lr_schedule", "precision")
                     if k in changes}
    cls = registry.get("npe_deepsets")
    config = cls.configure(run_size.train_config(seed, device, progress), msigma)
    return replace(config, train=replace(config.train, **train_changes), **changes)


def run(out: Path, setup: str, size: str, seed: int, device: str, progress: bool,
        variants: tuple[str, ...], data_path: Path | None = None,
        references: tuple[str, ...] = (), max_epochs: int | None = None,
        max_seconds: float | None = None) -> dict:
    """Train and evaluate every variant (and registered ``references``); returns the metrics.

    References (e.g. ``cnn_kde_slice``) are trained on the same clusters with the same epochs
    and patience; a calibration set of ``n_val`` flat-prior clusters is simulated for them
    after the shared sets, as in ``experiments.compare``.
    """
    run_size = replace(SIZES[size], max_seconds=max_seconds)
    if max_epochs is not None:
        run_size = replace(run_size, max_epochs=max_epochs)
    rng = np.random.default_rng(seed)
    sim = SimulatorConfig(setup=setup)
    data = get_sets(sim, run_size.n_train, run_size.n_val, run_size.n_test, rng, data_path,
                    cap=size != "full")
    msigma = MSigmaConfig(z=setup_of(data.train.attrs)["z"], mass_cut="auto")
    calibration = (simulate_selected(run_size.n_val, FlatLogMassPrior(), sim, rng)[0]
                   if references else None)
    models = out / "models"
    models.mkdir(parents=True, exist_ok=True)
    posts, flat_posts, training, drift = [], [], {}, {}
    for name in variants + references:
        if name in references:
            est = registry.build(name, train=run_size.train_config(seed, device, progress),
                                 msigma=msigma)
        else:
            est = registry.build("npe_deepsets", _config(name, run_size, seed, device,
                                                         progress, msigma))
        spec = VARIANTS.get(name, {})
        fresh = (fresh_clusters(sim, len(data.train), depth_range=spec.get("fresh_depth"))
                 if spec.get("fresh") and data_path is None else None)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*not yet fully converged.*")
            est.fit(Splits(data.train, data.val, calibration, fresh))
        est.save(models / name)
        result = getattr(est, "result", None)
        net = getattr(est, "model", None)
        training[name] = {
            "epochs": result.epochs if result else None,
            "best_epoch": result.best_epoch if result else None,
            "best_val_loss": result.best_val_loss if result else None,
            "train_seconds": est.train_seconds,
            "parameters": sum(p.numel() for p in net.parameters()) if net is not None else 0,
            "changes": VARIANTS.get(name, "reference estimator")}
        eval_rng = np.random.default_rng([seed, 1])  # same draws' randomness for every variant
        posts.append(posterior_of(est, data.test, 1000, eval_rng, est.train_seconds, name=name))
        flat_posts.append(posterior_of(est, data.test_flat, 1000, eval_rng, est.train_seconds,
                                       name=name))
        drift[name] = richness_drift(est, data.test, seed, run_size.n_drift)
        if progress:
            print(f"{name}: {training[name]['epochs']} epochs, {est.train_seconds:.0f} s",
                  file=sys.stderr)
    flat = write_report(out / "flat_test", flat_posts, seed=seed,
                        title=f"NPE ablation, {setup} ({size}): flat-prior test",
                        top_level={"n_train": len(data.train)}, save_samples=False)
    hmf = {p.estimator: residual_metrics(p.samples, p.truth) for p in posts}
    lines = ["", "## Ablation", "",
             f"Same {len(data.train)} training / {len(data.val)} validation clusters, seed "
             f"{seed}; σ_ε and bias on the {len(data.test)}-cluster HMF test set, coverage on "
             f"the {len(data.test_flat)}-cluster flat test set.", "",
             "| variant | σ_ε [dex] | bias [dex] | flat HPD max dev | flat TARP max dev | "
             "drift " + " / ".join(f"ε({r})" for r in DRIFT_RATES)
             + " [dex] | epochs (best) | train [s] | parameters |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in variants + references:
        m, f, t = hmf[name], flat[name], training[name]
        label = f"`{name}`" + (" (reference)" if name in references else "")
        lines.append(f"| {label} | {m['scatter_dex']:.4f} | {m['bias_dex']:+.4f} | "
                     f"{f['hpd_max_abs_dev']:.3f} | {f['tarp_max_abs_dev']:.3f} | "
                     + " / ".join(f"{e:+.3f}" for e in drift[name]["mean_dex"]) + " | "
                     f"{t['epochs']} ({t['best_epoch']}) | {t['train_seconds']:.0f} | "
                     f"{t['parameters']:,} |")
    n_drift = drift[variants[0]]["n_clusters"]
    lines += ["", f"Drift: the mean change of the posterior median over {n_drift} HMF test "
              "clusters when each keeps a random fraction r of its galaxies (two draws each): "
              "near 0 for an estimator blind to the galaxy count, log10 r ("
              + ", ".join(f"{np.log10(r):+.2f}" for r in DRIFT_RATES)
              + ") for one that reads the mass off the count alone."]
    top = {"n_train": len(data.train), "n_val": len(data.val), "size": size, "setup": setup,
           "max_epochs": run_size.max_epochs, "patience": run_size.patience,
           "variants": {n: VARIANTS[n] for n in variants}, "references": list(references),
           "training": training, "flat_test": {n: flat[n] for n in variants + references},
           "subsampling_drift": drift,
           "config": {"simulator": sim.to_dict()}, "simulation_seconds": data.seconds}
    metrics = write_report(out, posts, seed=seed, top_level=top,
                           title=f"NPE ablation, {setup} setup ({size} size)",
                           extra_sections=lines + ["", "Flat-prior test set:", ""]
                           + flat_table(flat, list(variants + references)))
    return metrics


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    p = experiment_parser("python -m experiments.ablation", __doc__, SIZES, "results/ablation",
                          max_epochs=True)
    p.add_argument("--setup", choices=("idealized", "cylinder"), default="idealized")
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help="comma-separated subset of " + ", ".join(VARIANTS))
    p.add_argument("--references", default="",
                   help="registered estimators trained on the same sets for comparison, "
                        "e.g. cnn_kde_slice,mc_dropout")
    args = parse_experiment_args(p, argv)
    references = tuple(r.strip() for r in args.references.split(",") if r.strip())
    chosen = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    bad = [v for v in chosen if v not in VARIANTS]
    if bad or not chosen:
        p.error(f"unknown variant(s) {bad}; choose from {', '.join(VARIANTS)}")
    size = args.size or ("quick" if args.quick else "full")
    metrics = run(args.out, args.setup, size, args.seed, args.device, not args.no_progress,
                  chosen, args.data, references, args.max_epochs,
                  args.max_seconds)
    for name in chosen + references:
        print(summary_line(name, metrics[name]))
    print(summary_legend(metrics["n_test"]))
    print(f"wrote {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
