"""Every estimator on one test set: ``python -m experiments.compare [--setup S] [--quick]``.

Simulates one flat-prior training set (with validation and a separate calibration set for the
KDE slice), an HMF-distributed test set over 14.0-15.3 and a flat-prior test set; trains or
reuses (``--reuse DIR``) every estimator on the same clusters:

    msigma          M-sigma relation, all galaxies (Ho et al. 2019)
    npe_deepsets    set network + Pyro spline flow on the M-sigma residual
                    (Wang, Thiele & Ho 2026)
    cnn_kde_slice   CNN on the 2D KDE image + bivariate-KDE slice
                    (Kodi Ramanah, Wojtak & Arendse 2021; Ho et al. 2019)
    mc_dropout      MC-dropout CNN with a Gaussian head (Ho et al. 2022)
    nf_kde2d        conditional Gaussian-flow stack on the flattened 2D KDE
                    (Kodi Ramanah et al. 2020)
    sbi_npe         sbi's NPE (neural spline flow) with our set embedding

and writes DIR/metrics.json (the DESIGN.md contract, one entry per estimator), DIR/report.md
(one comparison table, the inference-time ratio table, overlaid coverage and bias/std
figures), DIR/flat_test/ (the same on the flat-prior test set, where the training prior
holds) and DIR/models/. Every estimator sees the raw phase space; in the cylinder setup the
classifier-assisted NPE is ``python -m experiments.cylinder``'s business. Estimators are built
and loaded by name (:mod:`pyro_clusters.estimators.registry`), so a registered estimator of
one's own joins with ``--estimators msigma,my_estimator``.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from pyro_clusters.defaults import setup_of
from pyro_clusters.diagnostics.report import summary_legend, summary_line, write_report
from pyro_clusters.estimators import Splits, registry
from pyro_clusters.estimators.base import Estimator
from pyro_clusters.estimators.msigma import MSigmaConfig
from pyro_clusters.estimators.neural import NeuralModel
from pyro_clusters.pipeline.evaluation import posterior_of, richness_drift
from pyro_clusters.pipeline.options import experiment_parser, parse_experiment_args
from pyro_clusters.pipeline.sections import flat_table, richness_markdown
from pyro_clusters.pipeline.sets import fresh_clusters, get_sets
from pyro_clusters.pipeline.sizes import SIZES as RUN_SIZES
from pyro_clusters.simulator import FlatLogMassPrior, SimulatorConfig, simulate_selected

__all__ = ["ESTIMATORS", "SIZES", "main", "run"]

#: the estimators compared by default; ``--estimators`` takes any registered name.
ESTIMATORS = ("msigma", "npe_deepsets", "cnn_kde_slice", "mc_dropout", "nf_kde2d", "sbi_npe")



SIZES = RUN_SIZES["compare"]


def _model_path(models: Path, name: str) -> Path:
    """Where a model is saved; a format-1 single-file model (``NAME.json``) is still read."""
    legacy = models / f"{name}.json"
    return legacy if legacy.is_file() and not (models / name).exists() else models / name


def _check_reuse(reuse: Path, manifest: dict) -> None:
    f = reuse / "models" / "manifest.json"
    if not f.is_file():
        raise SystemExit(f"error: --reuse {reuse}: no models/manifest.json (not a compare run)")
    theirs = json.loads(f.read_text())
    if theirs != manifest:
        raise SystemExit(f"error: --reuse {reuse} was trained with {theirs}, this run is "
                         f"{manifest}; models are only reused on the same data")


def run(out: Path, setup: str, size: str, seed: int, device: str, progress: bool,
        reuse: Path | None = None, estimators: tuple[str, ...] = ESTIMATORS,
        data_path: Path | None = None, max_seconds: float | None = None,
        fresh: bool = False) -> dict:
    """Run the comparison; returns the metrics written.

    ``max_seconds`` is a wall-clock budget of each network (None: epochs and patience only);
    ``fresh`` trains every neural estimator (:class:`NeuralModel`) on new clusters every
    epoch (:func:`fresh_clusters`); the others (M-sigma, sbi's NPE) fit the training set.
    """
    run_size = replace(SIZES[size], max_seconds=max_seconds)
    manifest = {"setup": setup, "size": size, "seed": seed}
    if fresh:
        manifest["fresh"] = True
    if data_path is not None:
        manifest["data"] = str(data_path.resolve())
    if reuse is not None:
        _check_reuse(reuse, manifest)
    rng = np.random.default_rng(seed)
    sim = SimulatorConfig(setup=setup)
    new = fresh_clusters(sim, run_size.n_train, data_path) if fresh else None
    data = get_sets(sim, run_size.n_train, run_size.n_val, run_size.n_test, rng, data_path,
                    cap=size != "full")
    if data_path is None:
        calibration = simulate_selected(run_size.n_val, FlatLogMassPrior(), sim, rng)[0]
    else:  # the catalogue's validation halos, split in two: early stopping / calibration
        half = rng.permutation(len(data.val))
        calibration = data.val.select(np.sort(half[len(half) // 2:]))
        data.val = data.val.select(np.sort(half[: len(half) // 2]))
    splits = Splits(data.train, data.val, calibration, new)
    models = out / "models"
    models.mkdir(parents=True, exist_ok=True)
    (models / "manifest.json").write_text(json.dumps(manifest))

    # the M-sigma relation (msigma and the baseline of npe_deepsets): its mass cut is chosen
    # on the validation clusters, at the data's redshift
    msigma_config = MSigmaConfig(z=setup_of(data.train.attrs)["z"], mass_cut="auto")
    fitted, seconds, reused = {}, {}, []
    for name in estimators:
        source = _model_path(reuse / "models", name) if reuse is not None else None
        if source is not None and source.exists():
            est = registry.load(source, device)
            reused.append(name)
        else:
            est = registry.build(name, train=run_size.train_config_for(name, seed, device,
                                                                         progress),
                                 msigma=msigma_config)
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*not yet fully converged.*")
                est.fit(splits)
            seconds[name] = time.perf_counter() - t0
        est.save(models / name)
        fitted[name] = est
        if progress:
            print(f"{name}: {'reused' if name in reused else 'trained'}", file=sys.stderr)
    cuts = getattr(fitted.get("msigma"), "cut_scores", None)

    def train_secs(name: str):
        return getattr(fitted[name], "train_seconds", None) or seconds.get(name)

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*subsampled to n_max.*")
        posteriors = [posterior_of(fitted[n], data.test, 1000, rng, train_secs(n), name=n)
                      for n in estimators]
        flat_posteriors = [posterior_of(fitted[n], data.test_flat, 1000, rng, train_secs(n),
                                        name=n) for n in estimators]
        drift = {n: richness_drift(fitted[n], data.test, seed, run_size.n_drift)
                 for n in estimators}
    flat = write_report(out / "flat_test", flat_posteriors, seed=seed,
                        title=f"Estimator comparison, {setup} setup ({size}): flat-prior test",
                        top_level={"n_train": len(data.train)}, save_samples=False)
    times = {p.estimator: p.attrs["infer_ms_per_cluster"] for p in posteriors}
    ref = times.get("npe_deepsets")
    lines = ["", "## Inference time", "",
             "Posterior of 1000 draws per cluster, all test clusters in one call, this machine "
             "(KDE images included for the image estimators).", "",
             "| estimator | ms per cluster | ÷ npe_deepsets |", "|---|---|---|"]
    lines += [f"| `{n}` | {t:.3f} | " + (f"{t / ref:.2f}" if ref else "–") + " |"
              for n, t in times.items()]
    lines += ["", "## Calibration where the training prior holds", "",
              "The HMF test set above is drawn from a steeply falling mass function while "
              "every estimator was trained on a flat prior; on the flat-prior test set:", ""]
    lines += flat_table(flat, list(estimators))
    lines += richness_markdown(drift)
    lines += ["", f"Models reused from `{reuse}`: {', '.join(reused) or 'none'}. M–σ mass cut "
              f"chosen on validation: {cuts['chosen'] if cuts else '–'}."]
    top = {"n_train": len(data.train), "n_val": len(data.val), "n_calibration": len(calibration),
           "size": size, "setup": setup, "estimators": list(estimators), "reused": reused,
           "fresh_training": [n for n in estimators if fresh
                              and isinstance(fitted[n], NeuralModel)],
           "config": {"simulator": sim.to_dict()}, "simulation_seconds": data.seconds,
           "msigma_mass_cut": cuts, "infer_ms_per_cluster": times,
           "flat_test": {n: flat[n] for n in estimators}, "subsampling_drift": drift}
    return write_report(out, posteriors, seed=seed, top_level=top,
                        title=f"Estimator comparison, {setup} setup ({size} size)",
                        extra_sections=lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    p = experiment_parser("python -m experiments.compare", __doc__, SIZES, "results/compare",
                          fresh=True)
    p.add_argument("--setup", choices=("idealized", "cylinder"), default="idealized")
    p.add_argument("--reuse", type=Path, default=None,
                   help="run directory of an earlier compare run whose models to reuse")
    p.add_argument("--estimators", default=",".join(ESTIMATORS),
                   help="comma-separated registered estimator names (default: "
                        + ", ".join(ESTIMATORS) + ")")
    args = parse_experiment_args(p, argv)
    chosen = tuple(e.strip() for e in args.estimators.split(",") if e.strip())
    known = registry.names(Estimator)
    bad = [e for e in chosen if e not in known]
    if bad or not chosen:
        p.error(f"unknown estimator(s) {bad}; choose from {', '.join(known)}")
    size = args.size or ("quick" if args.quick else "full")
    try:
        metrics = run(args.out, args.setup, size, args.seed, args.device, not args.no_progress,
                      args.reuse, chosen, args.data, args.max_seconds, args.fresh)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for name in chosen:
        print(summary_line(name, metrics[name]))
    print(summary_legend(metrics["n_test"]))
    print(f"wrote {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
