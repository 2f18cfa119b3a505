"""Cylinder setup (interlopers included): ``python -m experiments.cylinder [--quick] [--out DIR]``.

Wang, Thiele & Ho 2026, section 4 and Appendix A. Simulates cylinder training, validation, HMF test
and flat test sets; trains the Deep Sets membership classifier; attaches its probabilities
``p_member`` to every galaxy; fits the three M-sigma baselines (all galaxies =
``msigma_contaminated``, classifier-selected members = ``msigma``, true members = ``msigma_pure``,
an oracle); trains the NPE on the residual about ``msigma`` with and without ``p_member`` as a
galaxy feature (the one with the lower validation loss becomes ``npe_deepsets``, the other is
reported as well); runs the caustic method (causticsnupy, on a mass-stratified subset of test
clusters because it is slow), the shifting gapper and 3-sigma clipping; and writes metrics.json (the
DESIGN.md contract plus an ``interlopers`` section), report.md with the classification table, ROC
and precision-recall curves and the mass-estimator figures, and the posterior samples.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pyro_clusters.defaults import setup_of  # noqa: E402
from pyro_clusters.diagnostics.classification import (  # noqa: E402
    classification_by_mass,
    classification_metrics,
    roc_pr_curves,
)
from pyro_clusters.diagnostics.report import summary_legend, summary_line, write_report  # noqa: E402
from pyro_clusters.estimators import Splits, registry  # noqa: E402
from pyro_clusters.estimators.reweighted import PriorReweighted  # noqa: E402
from pyro_clusters.membership import (  # noqa: E402
    caustic_members,
    shifting_gapper,
    sigma_clipping,
)
from pyro_clusters.pipeline.cylinder import (  # noqa: E402
    fit_member_baseline,
    npe_config,
    train_cylinder,
)
from pyro_clusters.pipeline.evaluation import announce, posterior_of, robustness  # noqa: E402
from pyro_clusters.pipeline.options import experiment_parser, parse_experiment_args  # noqa: E402
from pyro_clusters.pipeline.sections import prior_sections, robustness_markdown  # noqa: E402
from pyro_clusters.pipeline.sets import fresh_clusters, get_sets  # noqa: E402
from pyro_clusters.pipeline.sizes import SIZES as RUN_SIZES  # noqa: E402
from pyro_clusters.simulator import SimulatorConfig  # noqa: E402

__all__ = ["SIZES", "main", "run"]



SIZES = RUN_SIZES["cylinder"]
MASS_EDGES = np.round(np.arange(14.0, 15.31, 0.25), 2)
METHOD_COLUMNS = ("accuracy", "precision", "recall", "contamination", "f1")


def _stratified(log_m: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Up to n clusters spread evenly over the mass bins (the HMF test set is steep)."""
    per = max(1, n // (len(MASS_EDGES) - 1))
    pick = []
    for lo, hi in zip(MASS_EDGES[:-1], MASS_EDGES[1:], strict=True):
        idx = np.flatnonzero((log_m >= lo) & (log_m < hi))
        pick.append(rng.choice(idx, min(per, idx.size), replace=False))
    return np.sort(np.concatenate(pick))


def interloper_section(test, p_member, subset, seed: int, out: Path, workers: int,
                       threshold: float = 0.5) -> tuple:
    """Classification metrics of every method, ROC/PR figure and report lines.

    ``threshold``: the classifier's membership probability cut.
    """
    truth = test.galaxies["member"]
    host_m = test.log_m[test.cluster_index()]
    calls = {"deepsets_classifier": p_member > threshold,
             "shifting_gapper": shifting_gapper(test),
             "sigma_clipping": sigma_clipping(test)}
    results = {name: {"overall": classification_metrics(truth, c),
                      "by_mass_bin": classification_by_mass(truth, c, host_m, MASS_EDGES)}
               for name, c in calls.items()}
    # the caustic method is slow: a mass-stratified subset, all methods on it for a fair table
    sub = test.select(subset)
    t0 = time.perf_counter()
    caustic = caustic_members(sub, workers=workers, progress=False)
    caustic_seconds = (time.perf_counter() - t0) / max(len(sub), 1)
    sub_truth, sub_m = sub.galaxies["member"], sub.log_m[sub.cluster_index()]
    rows = np.concatenate([np.arange(test.offsets[i], test.offsets[i + 1]) for i in subset])
    subset_results = {
        name: classification_by_mass(sub_truth, c, sub_m, MASS_EDGES)
        for name, c in [("caustic", caustic)] + [(k, v[rows]) for k, v in calls.items()]}
    results["caustic"] = {"overall": classification_metrics(sub_truth, caustic),
                          "by_mass_bin": subset_results["caustic"],
                          "n_clusters": len(sub), "seconds_per_cluster": caustic_seconds}
    curves = roc_pr_curves(truth, p_member)
    results["deepsets_classifier"].update(auc_roc=curves["auc_roc"],
                                          average_precision=curves["average_precision"])

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    axes[0].plot(curves["fpr"], curves["tpr"], label=f"Deep Sets (AUC {curves['auc_roc']:.3f})")
    axes[1].plot(curves["recall"], curves["precision"], label="Deep Sets")
    for i, (name, c) in enumerate(list(calls.items())[1:] + [("caustic", None)]):
        m = results[name]["overall"]
        fpr = (np.sum(~sub_truth & caustic) / np.sum(~sub_truth) if c is None
               else np.sum(~truth & c) / np.sum(~truth))
        axes[0].scatter([fpr], [m["recall"]], color=f"C{i + 1}", label=name, zorder=3)
        axes[1].scatter([m["recall"]], [m["precision"]], color=f"C{i + 1}", label=name, zorder=3)
    axes[0].plot([0, 1], [0, 1], "k:", lw=1)
    axes[0].set(xlabel="false positive rate", ylabel="true positive rate (recall)", title="ROC")
    axes[1].set(xlabel="recall", ylabel="precision", title="precision-recall")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    (out / "figures").mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "figures" / "interlopers_roc_pr.png", dpi=120)
    plt.close(fig)

    lines = ["", "## Interlopers", "",
             f"All test clusters ({len(test)}): classifier (p > 0.5), shifting gapper "
             "(1000 km/s), 3σ clipping. Caustic method (causticsnupy, its own bandwidth "
             f"search, {caustic_seconds:.1f} s per cluster) on a mass-stratified subset of "
             f"{len(sub)} clusters; the per-bin table below is on that subset for every method.",
             "", "| method | log M bin | clusters' galaxies | " + " | ".join(METHOD_COLUMNS) + " |",
             "|---" * (3 + len(METHOD_COLUMNS)) + "|"]
    for name, bins in subset_results.items():
        for b in bins:
            lines.append(f"| {name} | {b['lo']:.2f}–{b['hi']:.2f} | {b['n_galaxies']} | "
                         + " | ".join(f"{b[k]:.3f}" for k in METHOD_COLUMNS) + " |")
    lines += ["", "Overall on all test clusters: " + "; ".join(
        f"{n}: F1 {results[n]['overall']['f1']:.3f}" for n in calls) +
        f"; classifier ROC AUC {curves['auc_roc']:.3f}.", "",
        "![ROC and precision-recall](figures/interlopers_roc_pr.png)"]
    results["subset_by_mass_bin"] = subset_results
    return results, lines


def run(out: Path, size: str, seed: int, device: str, progress: bool, workers: int,
        data_path: Path | None = None, max_seconds: float | None = None,
        fresh: bool = False) -> dict:
    """Run the experiment; returns the metrics written.

    ``max_seconds`` is a wall-clock budget of each network (None: epochs and patience only);
    ``fresh`` trains the classifier and the NPEs on new clusters every epoch (the NPEs'
    annotated by the classifier; :func:`fresh_clusters`).
    """
    run_size = replace(SIZES[size], max_seconds=max_seconds)
    rng = np.random.default_rng(seed)
    sim = SimulatorConfig(setup="cylinder")
    new = fresh_clusters(sim, run_size.n_train, data_path) if fresh else None
    data = get_sets(sim, run_size.n_train, run_size.n_val, run_size.n_test, rng, data_path,
                    cap=size != "full")
    z = setup_of(data.train.attrs)["z"]
    models = out / "models"
    models.mkdir(parents=True, exist_ok=True)
    tcfg = run_size.train_config(seed, device, progress)

    # the recipe (classifier -> members -> M-sigma -> NPE with p_member), then what it is
    # compared with: the baselines on all galaxies and on true members, the NPE without p
    fit = train_cylinder(data.train, data.val, tcfg, z, others=(data.test, data.test_flat),
                         fresh=new, checkpoints=models)
    clf = fit.classifier
    clf.save(models / "classifier")
    train, val, test, test_flat = fit.annotated
    baselines = {"msigma": (fit.msigma, fit.msigma_seconds)}
    cuts = {"msigma": fit.mass_cut}
    for name, galaxies in (("msigma_contaminated", "all"), ("msigma_pure", "members")):
        t0 = time.perf_counter()
        est, cuts[name] = fit_member_baseline(train, val, z, galaxies)
        baselines[name] = (est, time.perf_counter() - t0)
    baselines = {k: baselines[k] for k in ("msigma_contaminated", "msigma", "msigma_pure")}
    for name, (est, _) in baselines.items():
        est.save(models / name)
    without_p = registry.build("npe_deepsets", npe_config(tcfg, fit.msigma.config, ())).fit(
        Splits(train, val, fresh=(lambda r: clf.annotate(new(r))) if fresh else None),
        checkpoint=models / "npe_without_p_checkpoint.pt")
    npes = {"with_p": fit.npe, "without_p": without_p}
    for label, npe in npes.items():
        npe.save(models / f"npe_deepsets_{label}")
    best = min(npes, key=lambda k: npes[k].result.best_val_loss)
    other = "without_p" if best == "with_p" else "with_p"
    npe = npes[best]

    announce(f"evaluating on {len(test)} HMF and {len(test_flat)} flat test clusters "
             f"(posteriors, interlopers, caustic method on {run_size.n_caustic}, robustness "
             f"on {run_size.n_robust}) ...", progress)
    posteriors = [posterior_of(est, test, 1000, rng, secs, name=name)
                  for name, (est, secs) in baselines.items()]
    posteriors += [posterior_of(npe, test, 1000, rng, npe.train_seconds, name="npe_deepsets"),
                   posterior_of(npes[other], test, 1000, rng, npes[other].train_seconds,
                                name=f"npe_deepsets_{other}"),
                   posterior_of(PriorReweighted(npe, data.hmf), test, 1000, rng,
                                npe.train_seconds, name="npe_deepsets_hmf")]
    flat = write_report(out / "flat_test",
                        [posterior_of(baselines["msigma"][0], test_flat, 1000, rng, None),
                         posterior_of(npe, test_flat, 1000, rng, npe.train_seconds)],
                        seed=seed, title=f"Cylinder setup ({size}): flat-prior test set")

    interlopers, interloper_lines = interloper_section(
        test, test.galaxies["p_member"], _stratified(test.log_m, run_size.n_caustic, rng), seed,
        out, workers, clf.config.threshold)
    interlopers["classifier_training"] = clf.result.to_dict()
    rob = {name: robustness(est, test, rng, run_size.n_robust, 3)
           for name, est in (("msigma", baselines["msigma"][0]), ("npe_deepsets", npe))}
    top = {
        "n_train": len(train), "n_val": len(val), "size": size, "fresh_training": fresh,
        "config": {"simulator": sim.to_dict(), "npe": asdict(npe.config),
                   "classifier": asdict(clf.config)},
        "simulation_seconds": data.seconds,
        "npe_choice": {"default": best, "val_loss": {k: v.result.best_val_loss
                                                     for k, v in npes.items()}},
        "msigma_mass_cut": cuts,
        "interlopers": interlopers,
        "robustness": rob,
        "flat_test": {k: flat[k] for k in ("msigma", "npe_deepsets", "n_test")},
    }
    choice = ["", "M–σ fits: the mass cut of each baseline was chosen from 13.5/14.0/14.5 by "
              "the validation scatter (the ±2200 km/s cut flattens the relation of massive "
              "clusters, so fitting above 14.5 and extrapolating, as Ho et al. 2019, can be far "
              "off): " + ", ".join(f"`{k}` {v['chosen']}" for k, v in cuts.items()) + "."]
    choice += ["", f"NPE default: `{best}` the membership probability as a galaxy feature "
              f"(validation loss {npes[best].result.best_val_loss:.4f} vs "
              f"{npes[other].result.best_val_loss:.4f}); the other is `npe_deepsets_{other}`."]
    return write_report(out, posteriors, seed=seed, top_level=top,
                        title=f"Cylinder setup ({size} size)",
                        extra_sections=choice + interloper_lines
                        + prior_sections(flat, ["msigma", "npe_deepsets"])
                        + robustness_markdown(rob))


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    p = experiment_parser("python -m experiments.cylinder", __doc__, SIZES, "results/cylinder",
                          fresh=True)
    p.add_argument("--workers", type=int, default=2, help="processes for the caustic method")
    args = parse_experiment_args(p, argv)
    size = args.size or ("quick" if args.quick else "full")
    metrics = run(args.out, size, args.seed, args.device, not args.no_progress, args.workers,
                  args.data, args.max_seconds, args.fresh)
    for name in ("msigma_contaminated", "msigma", "msigma_pure", "npe_deepsets",
                 "npe_deepsets_hmf"):
        print(summary_line(name, metrics[name]))
    print(summary_legend(metrics["n_test"]))
    ratio = metrics["npe_deepsets"]["scatter_dex"] / metrics["msigma_contaminated"]["scatter_dex"]
    f1 = {k: v["overall"]["f1"] for k, v in metrics["interlopers"].items()
          if isinstance(v, dict) and "overall" in v}
    print("F1: " + ", ".join(f"{k} {v:.3f}" for k, v in f1.items()))
    print(f"scatter ratio npe/msigma_contaminated = {ratio:.3f}; wrote {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
