"""Idealized setup (members only): ``python -m experiments.idealized [--quick] [--out DIR]``.

Wang, Thiele & Ho 2026, section 3. Simulates a flat-prior training set with a validation split and
an HMF-distributed test set over 14.0-15.3, fits the M-sigma baseline, trains the Deep Sets NPE
on the residual, evaluates both with the shared diagnostics and writes DIR/metrics.json,
DIR/report.md, DIR/figures/, the posterior samples and the trained models (DIR/models/).
``--resume`` continues an interrupted NPE training from DIR/models/checkpoint.pt.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from pyro_clusters.defaults import setup_of
from pyro_clusters.diagnostics.report import summary_legend, summary_line, write_report
from pyro_clusters.estimators import MSigmaConfig, Splits, registry
from pyro_clusters.estimators.reweighted import PriorReweighted
from pyro_clusters.pipeline.evaluation import announce, posterior_of, robustness
from pyro_clusters.pipeline.options import experiment_parser, parse_experiment_args
from pyro_clusters.pipeline.sections import prior_sections, robustness_markdown
from pyro_clusters.pipeline.sets import fresh_clusters, get_sets
from pyro_clusters.pipeline.sizes import SIZES as RUN_SIZES
from pyro_clusters.simulator import SimulatorConfig

__all__ = ["SIZES", "main", "run"]



SIZES = RUN_SIZES["idealized"]


def run(out: Path, size: str, seed: int, device: str, resume: bool, progress: bool,
        data_path: Path | None = None, max_seconds: float | None = None,
        fresh: bool = False) -> dict:
    """Run the experiment; returns the metrics written.

    ``max_seconds`` is a wall-clock budget of training (None: epochs and patience only);
    ``fresh`` trains the NPE on new clusters every epoch (:func:`fresh_clusters`).
    """
    run_size = replace(SIZES[size], max_seconds=max_seconds)
    rng = np.random.default_rng(seed)
    sim = SimulatorConfig(setup="idealized")
    new = fresh_clusters(sim, run_size.n_train, data_path) if fresh else None
    data = get_sets(sim, run_size.n_train, run_size.n_val, run_size.n_test, rng, data_path,
                    cap=size != "full")
    models = out / "models"
    models.mkdir(parents=True, exist_ok=True)

    msigma_config = MSigmaConfig(z=setup_of(data.train.attrs)["z"])
    t0 = time.perf_counter()
    msigma = registry.build("msigma", msigma_config).fit(data.train)
    msigma_seconds = time.perf_counter() - t0
    msigma.save(models / "msigma")

    config = registry.get("npe_deepsets").configure(
        run_size.train_config(seed, device, progress), msigma_config)
    npe = registry.build("npe_deepsets", config).fit(
        Splits(data.train, data.val, fresh=new), checkpoint=models / "checkpoint.pt",
        resume=resume)
    npe.save(models / "npe_deepsets")

    announce(f"evaluating on {len(data.test)} HMF and {len(data.test_flat)} flat test clusters "
             f"(posteriors, coverage, robustness on {run_size.n_robust}) ...", progress)
    posteriors = [posterior_of(msigma, data.test, 1000, rng, msigma_seconds),
                  posterior_of(npe, data.test, 1000, rng, npe.train_seconds)]
    posteriors += [posterior_of(PriorReweighted(est, data.hmf), data.test, 1000, rng,
                                secs, name=f"{est.name}_hmf")
                   for est, secs in ((msigma, msigma_seconds), (npe, npe.train_seconds))]
    flat = write_report(out / "flat_test",
                        [posterior_of(est, data.test_flat, 1000, rng, secs)
                         for est, secs in ((msigma, msigma_seconds), (npe, npe.train_seconds))],
                        seed=seed, title=f"Idealized setup ({size}): flat-prior test set",
                        top_level={"n_train": len(data.train)})
    rob = {est.name: robustness(est, data.test, rng, run_size.n_robust,
                               5 if size == "full" else 3)
           for est in (msigma, npe)}
    top = {
        "n_train": len(data.train), "n_val": len(data.val), "size": size,
        "fresh_training": fresh,
        "config": {"simulator": sim.to_dict(), "npe": asdict(config)},
        "simulation_seconds": data.seconds,
        "training": npe.result.to_dict(),
        "robustness": rob,
        "flat_test": {k: flat[k] for k in ("msigma", "npe_deepsets", "n_test")},
    }
    return write_report(out, posteriors, seed=seed, top_level=top,
                        title=f"Idealized setup ({size} size)",
                        extra_sections=prior_sections(flat, ["msigma", "npe_deepsets"])
                        + robustness_markdown(rob)
                        + ["", f"NPE training: {npe.result.epochs} epochs, best epoch "
                           f"{npe.result.best_epoch}, {npe.train_seconds:.0f} s."])


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    p = experiment_parser("python -m experiments.idealized", __doc__, SIZES,
                          "results/idealized", fresh=True)
    p.add_argument("--resume", action="store_true", help="continue an interrupted training")
    args = parse_experiment_args(p, argv)
    size = args.size or ("quick" if args.quick else "full")
    metrics = run(args.out, size, args.seed, args.device, args.resume, not args.no_progress,
                  args.data, args.max_seconds, args.fresh)
    for name in ("msigma", "npe_deepsets", "msigma_hmf", "npe_deepsets_hmf"):
        print(summary_line(name, metrics[name]))
    print(summary_legend(metrics["n_test"]))
    ratio = metrics["npe_deepsets"]["scatter_dex"] / metrics["msigma"]["scatter_dex"]
    flat = metrics["flat_test"]["npe_deepsets"]
    print(f"npe on the flat test set: HPD dev {flat['hpd_max_abs_dev']:.3f}  "
          f"TARP dev {flat['tarp_max_abs_dev']:.3f}")
    print(f"scatter ratio npe/msigma = {ratio:.3f}; wrote {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

