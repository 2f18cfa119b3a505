"""How close the NPE comes to the exact posterior: ``python -m experiments.information_limit``.

``[--quick] [--out DIR] [--jobs N] [--idealized-model DIR] [--fresh] [--max-epochs N]
[--exact-from DIR]``

On the spherical simulator (:meth:`SimulatorConfig.spherical`) the likelihood of the observed
galaxies is known, so ``jeans_exact`` (Pyro NUTS on it) is the best posterior the data allow.
The run

1. trains the Deep Sets NPE on spherical mocks (flat prior 13.5-15.5) and runs it and
   ``jeans_exact`` (richness ``"ancillary"``: like the mean-pooling NPE, no P(N | M) term) on
   the same test clusters; reports per cluster and overall the ratio of posterior standard
   deviations NPE / exact, their shift, Gaussian KL and W1 distance, both estimators' sigma_eps
   and coverage, NUTS diagnostics and the wall time per cluster of each;
2. checks the yardstick first: simulation-based calibration of the complete exact posterior
   (richness ``"poisson"``) on clusters drawn from its own prior (flat 13.5-14.5, where NUTS
   is fastest); its HPD and TARP coverage must lie within Monte-Carlo error;
3. applies ``jeans_exact`` to the full idealized simulator (triaxial halos, substructure,
   mergers) as a misspecified classical baseline, next to an NPE trained on that simulator
   (trained here, or loaded with ``--idealized-model``, e.g.
   ``results/idealized_full/models/npe_deepsets``), and breaks the residuals down by what the
   spherical model leaves out. With ``--data DIR`` (idealized catalogue mocks from
   ``pyro-clusters catalog``) this step uses the catalogue instead: its flat-prior
   test views, and an NPE trained on its train / val sets -- the classical Jeans analysis
   against the NPE on N-body data. Steps 1-2 need the exact likelihood, so they always run on
   the spherical simulator.

Writes DIR/metrics.json (the DESIGN.md contract for ``npe_deepsets`` and ``jeans_exact`` plus
``information_limit``, ``sbc``, ``misspecified`` and ``nuts`` sections), DIR/report.md,
DIR/figures/, DIR/per_cluster.csv, DIR/sbc/ and DIR/misspecified/ (their own reports).
With ``--fresh`` both NPEs train on new clusters of their simulator every epoch (the
training set still fixes the standardisation); the test, SBC and misspecified clusters are the
same as without it.

NUTS is the slow part (about 10 s per cluster on one core). To judge a new NPE -- another
encoder, more epochs -- against the exact posteriors an earlier run computed,
``--exact-from EARLIER_DIR`` (same ``--seed`` and ``--size``, so the same test clusters;
checked) trains only the NPE of step 1 and reads ``jeans_exact``'s posteriors and NUTS
diagnostics from EARLIER_DIR; steps 2 and 3 do not involve it and are not run again: the report
carries EARLIER_DIR's results of them, marked as such.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from pyro_clusters.data.dataset_dir import read_datasets
from pyro_clusters.defaults import TEST_RANGE, setup_of
from pyro_clusters.diagnostics import compare_posteriors
from pyro_clusters.diagnostics.information_limit import (
    TARGET_SIGMA_EPS,
    TARGET_STD_RATIO,
    hmf_limit_markdown,
    limit_markdown,
    plot_misspecified,
    plot_posterior_pairs,
    plot_std_ratio,
    residuals_by_subset,
    std_ratio_by_mass,
    write_per_cluster,
)
from pyro_clusters.diagnostics.metrics import residual_metrics
from pyro_clusters.diagnostics.posterior import load_posterior, save_posterior
from pyro_clusters.diagnostics.report import summary_legend, summary_line, write_report
from pyro_clusters.estimators import Splits, registry
from pyro_clusters.estimators.jeans_exact import JeansExactConfig, NutsDiagnostics
from pyro_clusters.estimators.npe_deepsets import HISTOGRAM_ENCODER
from pyro_clusters.pipeline.evaluation import posterior_of, richness_drift
from pyro_clusters.pipeline.options import experiment_parser, parse_experiment_args
from pyro_clusters.pipeline.sets import fresh_clusters
from pyro_clusters.pipeline.sizes import SIZES as RUN_SIZES
from pyro_clusters.pipeline.sizes import LimitSize
from pyro_clusters.simulator import (
    FlatLogMassPrior,
    HaloMassFunctionSampler,
    SimulatorConfig,
    simulate_selected,
)

__all__ = ["SBC_RANGE", "SIZES", "main", "run"]



SIZES = RUN_SIZES["information_limit"]
#: prior range of the SBC set (the exact posterior's own prior; low masses keep NUTS fast)
SBC_RANGE = (13.5, 14.5)
#: the generator stream of the HMF test clusters, apart from the run's own: adding them left
#: the other sets (and earlier runs' results) as they were
HMF_STREAM = 7


def _jeans_posterior(est, clusters, rng, name: str):
    """Run jeans_exact on ``clusters``; returns (posterior, its NUTS diagnostics).

    The recorded time per cluster is the single-core NUTS time, not the wall time divided by
    the number of workers.
    """
    info: dict = {}
    post = posterior_of(est, clusters, 1000, rng, 0.0, name=name, info=info)
    nuts = info["nuts"]
    post.attrs["infer_ms_per_cluster"] = 1e3 * float(np.mean(nuts.seconds))
    return post, nuts


#: the NPE encoders ``--encoder`` chooses from: the default, and the preset that reads the count
ENCODERS = {"deepsets": {}, "histogram": HISTOGRAM_ENCODER}


def _train_npe(train, val, run_size: LimitSize, seed, device, progress, models: Path,
               name: str, reuse: bool = False, fresh=None, encoder: str = "deepsets"):
    """Train (and save) the set NPE, or load the one this run saved before (``reuse``).

    ``fresh``: ``Splits.fresh``, new training clusters every epoch (None: ``train`` only);
    ``encoder``: a key of :data:`ENCODERS`.
    """
    if reuse and (models / name / "weights.pt").exists():
        return registry.load(models / name, device=device)
    config = replace(registry.get("npe_deepsets").configure(
        run_size.train_config(seed, device, progress)), **ENCODERS[encoder])
    npe = registry.build("npe_deepsets", config).fit(Splits(train, val, fresh=fresh))
    npe.save(models / name)
    return npe


def _null_to_nan(value):
    """metrics.json as written (NaN stored as null) with NaN back where null stands."""
    if isinstance(value, dict):
        return {k: _null_to_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_null_to_nan(v) for v in value]
    return float("nan") if value is None else value


def _earlier_exact(path: Path, test, seed: int, size: str):
    """``jeans_exact`` on ``test`` as an earlier run in ``path`` computed it.

    Returns (posterior, NUTS diagnostics, that run's metrics).

    Raises:
        SystemExit: ``path`` is not a finished run, or its test clusters are not ``test``.
    """
    files = [path / f for f in ("metrics.json", "posterior_jeans_exact.nc", "per_cluster.csv")]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise SystemExit(f"error: --exact-from {path}: no finished information_limit run "
                         f"there (missing {', '.join(missing)})")
    earlier = _null_to_nan(json.loads(files[0].read_text()))
    post = load_posterior(files[1])
    if (earlier.get("seed"), earlier.get("size")) != (seed, size) or not np.array_equal(
            post.truth, test.log_m):
        raise SystemExit(f"error: --exact-from {path}: that run had seed {earlier.get('seed')}"
                         f" and size {earlier.get('size')!r}, other test clusters than this "
                         f"one (seed {seed}, size {size!r}); use the same --seed and --size")
    table = np.genfromtxt(files[2], delimiter=",", names=True)
    diag = NutsDiagnostics(rhat=table["rhat"], ess_bulk=table["ess_bulk"],
                           divergences=table["divergences"].astype(np.int64),
                           seconds=table["nuts_seconds"])
    post.attrs["infer_ms_per_cluster"] = 1e3 * float(np.mean(diag.seconds))
    return post, diag, earlier


def _hmf_limit(npe, jeans, sph: SimulatorConfig, run_size: LimitSize, seed: int, out: Path,
               exact_from: Path | None, earlier_metrics: dict | None) -> dict:
    """Step 4: both posteriors on spherical clusters drawn from the halo mass function.

    The flat test set of step 1 judges the posteriors cluster by cluster; the estimator
    comparisons quote sigma_eps on the HMF population over :data:`TEST_RANGE` (mostly low
    masses, few galaxies), so the exact posterior's sigma_eps there is the count-blind limit of
    that number. The subsampled mass drift (:func:`richness_drift`) of both on the first
    ``run_size.n_drift`` clusters says what a count-blind posterior's drift is: not quite zero,
    since fewer galaxies widen it towards the prior. Posteriors are trained / defined on the
    flat prior, as in the comparisons. With ``exact_from`` (and ``earlier_metrics``, its
    metrics.json as read), the earlier run's exact posteriors and drift are reused when it has
    them for these clusters.

    Writes OUT/posterior_jeans_exact_hmf.nc and OUT/posterior_npe_deepsets_hmf.nc; returns the
    ``hmf_test`` metrics section.
    """
    rng = np.random.default_rng([seed, HMF_STREAM])
    test = simulate_selected(run_size.n_hmf, HaloMassFunctionSampler(*TEST_RANGE, z=sph.z),
                             sph, rng)[0]
    npe_post = posterior_of(npe, test, 1000, rng, npe.train_seconds)
    earlier = None
    if exact_from is not None and (exact_from / "posterior_jeans_exact_hmf.nc").is_file():
        old = load_posterior(exact_from / "posterior_jeans_exact_hmf.nc")
        prev = earlier_metrics["hmf_test"]
        if np.array_equal(old.truth, test.log_m) and prev["n_drift"] == run_size.n_drift:
            earlier = (old, prev)
    if earlier is None:
        exact_post, nuts = _jeans_posterior(jeans, test, rng, "jeans_exact")
        exact_drift = richness_drift(jeans, test, seed, run_size.n_drift)
        nuts_summary = nuts.summary()
    else:
        exact_post, prev = earlier
        exact_drift, nuts_summary = prev["jeans_exact"]["drift"], prev["nuts"]
    save_posterior(exact_post, out / "posterior_jeans_exact_hmf.nc")
    save_posterior(npe_post, out / "posterior_npe_deepsets_hmf.nc")
    section = {"n_clusters": len(test), "range": list(TEST_RANGE), "z": sph.z,
               "n_drift": run_size.n_drift, "nuts": nuts_summary,
               "reused_from": str(exact_from) if earlier is not None else None}
    drifts = {"npe_deepsets": richness_drift(npe, test, seed, run_size.n_drift),
              "jeans_exact": exact_drift}
    edges = np.array([TEST_RANGE[0], 14.5, 15.0, TEST_RANGE[1]])
    for post in (npe_post, exact_post):
        m = residual_metrics(post.samples, test.log_m, edges)
        section[post.estimator] = {
            **{k: m[k] for k in ("scatter_dex", "bias_dex", "mean_posterior_std_dex",
                                 "by_mass_bin")},
            "drift": drifts[post.estimator]}
    a, b = section["npe_deepsets"]["scatter_dex"], section["jeans_exact"]["scatter_dex"]
    section["sigma_eps_rel_diff"] = a / b - 1.0
    return section


def _ks_threshold(n: int) -> float:
    """95 % point of the one-sample Kolmogorov-Smirnov statistic, ~1.36 / sqrt(n)."""
    from scipy.stats import kstwo

    return float(kstwo.ppf(0.95, n))


def run(out: Path, size: str, seed: int, device: str, progress: bool, n_jobs: int,
        idealized_model: Path | None = None, data_path: Path | None = None,
        reuse: bool = False, max_seconds: float | None = None, fresh: bool = False,
        max_epochs: int | None = None, exact_from: Path | None = None,
        encoder: str = "deepsets") -> dict:
    """Run the experiment; returns the metrics written.

    ``max_seconds`` is a wall-clock budget of training (None: epochs and patience only);
    ``fresh`` trains the NPEs on new clusters every epoch (:func:`fresh_clusters`);
    ``max_epochs`` replaces the run size's epoch limit; ``exact_from``: an earlier run's
    directory whose exact posteriors (and SBC and misspecified results) are reused
    (:func:`_earlier_exact`); ``encoder``: the NPEs' encoder, a key of :data:`ENCODERS`.
    """
    if encoder not in ENCODERS:
        raise ValueError(f"encoder must be one of {sorted(ENCODERS)}, got {encoder!r}")
    run_size = replace(SIZES[size], max_seconds=max_seconds)
    if max_epochs is not None:
        run_size = replace(run_size, max_epochs=max_epochs)
    n_train, n_val, n_test = run_size.n_train, run_size.n_val, run_size.n_test
    n_sbc = run_size.n_sbc
    full_cfg = SimulatorConfig(setup="idealized")
    # refused here, before anything is written, when the idealized NPE would train on
    # catalogue sets
    fresh_full = (fresh_clusters(full_cfg, n_train, data_path)
                  if fresh and idealized_model is None else None)
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    models = out / "models"
    models.mkdir(exist_ok=True)
    sph = SimulatorConfig.spherical()
    flat = FlatLogMassPrior()
    t0 = time.perf_counter()
    train = simulate_selected(n_train, flat, sph, rng)[0]
    val = simulate_selected(n_val, flat, sph, rng)[0]
    test = simulate_selected(n_test, flat, sph, rng)[0]
    sbc = simulate_selected(n_sbc, FlatLogMassPrior(*SBC_RANGE), sph, rng)[0]
    sim_seconds = time.perf_counter() - t0

    # checked before the NPE trains: an unusable earlier run fails at once
    earlier = _earlier_exact(exact_from, test, seed, size) if exact_from is not None else None

    # 1. NPE vs the exact posterior on the same clusters.
    npe = _train_npe(train, val, run_size, seed, device, progress, models, "npe_deepsets",
                     reuse, fresh_clusters(sph, n_train) if fresh else None, encoder)
    jcfg = JeansExactConfig(richness="ancillary", warmup=run_size.warmup,
                            samples=run_size.draws, n_jobs=n_jobs, compile=run_size.compile,
                            progress=progress)
    jeans = registry.get("jeans_exact")(jcfg, model=sph)
    jeans.save(models / "jeans_exact")
    npe_post = posterior_of(npe, test, 1000, rng, npe.train_seconds)
    if earlier is None:
        jeans_post, nuts_test = _jeans_posterior(jeans, test, rng, "jeans_exact")
    else:
        jeans_post, nuts_test, earlier = earlier
    limit = compare_posteriors(npe_post.samples, jeans_post.samples, test.log_m)
    by_bin = std_ratio_by_mass(npe_post.samples, jeans_post.samples, test.log_m)
    limit.update({
        "meets_std_ratio_target": abs(limit["std_ratio_mean"] - 1.0) <= TARGET_STD_RATIO,
        "meets_std_ratio_target_every_bin": all(
            abs(r["std_ratio_mean"] - 1.0) <= TARGET_STD_RATIO for r in by_bin),
        "meets_sigma_eps_target": abs(limit["sigma_eps_rel_diff"]) <= TARGET_SIGMA_EPS,
        "targets": {"std_ratio_mean_within": TARGET_STD_RATIO,
                    "sigma_eps_within": TARGET_SIGMA_EPS},
        "npe_ms_per_cluster": npe_post.attrs["infer_ms_per_cluster"],
        # the earlier run's figure as it wrote it (per_cluster.csv keeps 6 digits)
        "jeans_exact_s_per_cluster": (
            float(np.mean(nuts_test.seconds)) if earlier is None
            else earlier["information_limit"]["jeans_exact_s_per_cluster"]),
        "by_mass_bin": by_bin,
    })
    write_per_cluster(out / "per_cluster.csv", test, npe_post, jeans_post, nuts_test)
    figs = out / "figures"
    figs.mkdir(exist_ok=True)
    plot_posterior_pairs(figs / "posterior_pairs.png", test, npe_post, jeans_post)
    plot_std_ratio(figs / "std_ratio_vs_mass.png", test, npe_post, jeans_post)
    top = {
        "n_train": len(train), "n_val": len(val), "size": size, "fresh_training": fresh,
        "max_epochs": run_size.max_epochs,
        "config": {"simulator": sph.to_dict(), "npe": asdict(npe.config),
                   "jeans_exact": asdict(jcfg)},
        "simulation_seconds": sim_seconds,
        "training": npe.result.to_dict() if npe.result else "reused",
        "information_limit": limit,
        "hmf_test": _hmf_limit(npe, jeans, sph, run_size, seed, out, exact_from, earlier),
    }
    if exact_from is not None:  # steps 2 and 3 do not involve this run's NPE
        reused = {"reused_from": str(exact_from)}
        top.update(nuts={**earlier["nuts"], **reused}, sbc={**earlier["sbc"], **reused},
                   misspecified={**earlier["misspecified"], **reused})
        return write_report(out, [npe_post, jeans_post], seed=seed, top_level=top,
                            title=f"Information limit: NPE vs the exact posterior ({size} "
                                  f"size; exact posteriors from {exact_from})",
                            extra_sections=limit_markdown(limit, top["nuts"], top["sbc"],
                                                            top["misspecified"], exact_from)
                            + hmf_limit_markdown(top["hmf_test"]))

    sbc_section = _sbc_step(jcfg, sph, sbc, rng, out, seed)
    mis_section = _misspecified_step(jcfg, run_size, size, seed, device, progress, rng, out,
                                     models, reuse, idealized_model, data_path, fresh_full,
                                     encoder, figs)
    top.update(nuts=nuts_test.summary(), sbc=sbc_section, misspecified=mis_section)
    return write_report(out, [npe_post, jeans_post], seed=seed, top_level=top,
                        title=f"Information limit: NPE vs the exact posterior ({size} size)",
                        extra_sections=limit_markdown(limit, nuts_test.summary(),
                                                        sbc_section, mis_section)
                        + hmf_limit_markdown(top["hmf_test"]))


def _sbc_step(jcfg: JeansExactConfig, sph: SimulatorConfig, sbc, rng: np.random.Generator,
              out: Path, seed: int) -> dict:
    """Step 2: SBC of the complete exact posterior (richness ``poisson``) on its own prior.

    Writes OUT/sbc/; returns the ``sbc`` metrics section.
    """
    full_post = registry.get("jeans_exact")(
        replace(jcfg, richness="poisson", prior_range=SBC_RANGE), model=sph)
    sbc_post, sbc_nuts = _jeans_posterior(full_post, sbc, rng, "jeans_exact")
    sbc_metrics = write_report(out / "sbc", [sbc_post], seed=seed,
                               title="Simulation-based calibration of jeans_exact "
                                     f"(richness 'poisson', flat prior {SBC_RANGE})",
                               top_level={"n_train": 0})
    ks95 = _ks_threshold(len(sbc))
    return {
        "n_clusters": len(sbc), "prior_range": list(SBC_RANGE), "richness": "poisson",
        "hpd_max_abs_dev": sbc_metrics["jeans_exact"]["hpd_max_abs_dev"],
        "tarp_max_abs_dev": sbc_metrics["jeans_exact"]["tarp_max_abs_dev"],
        "tarp_ks_pvalue": sbc_metrics["jeans_exact"]["tarp_ks_pvalue"],
        "ks_95_threshold": ks95,
        "within_monte_carlo_error": bool(sbc_metrics["jeans_exact"]["hpd_max_abs_dev"] <= ks95),
        "nuts": sbc_nuts.summary(),
    }


def _misspecified_step(jcfg, run_size: LimitSize, size: str, seed: int, device: str,
                       progress: bool, rng: np.random.Generator, out: Path, models: Path,
                       reuse: bool, idealized_model: Path | None, data_path: Path | None,
                       fresh_full, encoder: str, figs: Path) -> dict:
    """Step 3: ``jeans_exact`` misspecified, next to an NPE trained on the same clusters.

    On the full idealized simulator, or on catalogue mocks (``--data``). Writes
    OUT/misspecified/ and its figure; returns the ``misspecified`` metrics section.
    """
    n_train, n_val, n_mis = run_size.n_train, run_size.n_val, run_size.n_misspecified
    flat, full_cfg = FlatLogMassPrior(), SimulatorConfig(setup="idealized")
    # 3. jeans_exact misspecified: the full idealized simulator, or catalogue mocks (--data).
    catalogue = None
    if data_path is not None:  # flat-prior test views of the catalogue's test halos
        caps = None if size == "full" else {"train": n_train, "val": n_val, "test_flat": n_mis}
        catalogue = read_datasets(data_path, "idealized", rng, caps,
                                  splits=("train", "val", "test_flat"))
        mis = catalogue["test_flat"]
    else:
        mis = simulate_selected(n_mis, flat, full_cfg, rng)[0]
    if idealized_model is not None:
        npe_full = registry.load(idealized_model, device=device)
    else:
        tr, va = ((catalogue["train"], catalogue["val"]) if catalogue is not None else
                  (simulate_selected(n_train, flat, full_cfg, rng)[0],
                   simulate_selected(n_val, flat, full_cfg, rng)[0]))
        npe_full = _train_npe(tr, va, run_size, seed, device, progress, models,
                              "npe_deepsets_idealized", reuse, fresh_full, encoder)
    # the spherical model at the data's redshift (a catalogue snapshot may differ from 0.117)
    # galaxies no spherical halo of the prior can hold (far merger / group members) are
    # dropped and counted, as a classical analysis would have to
    jeans_mis = registry.get("jeans_exact")(
        replace(jcfg, unreachable="drop"),
        model=SimulatorConfig.spherical(z=setup_of(mis.attrs)["z"]))
    mis_npe = posterior_of(npe_full, mis, 1000, rng, npe_full.train_seconds)
    mis_jeans, mis_nuts = _jeans_posterior(jeans_mis, mis, rng, "jeans_exact")
    mis_posts = [mis_npe, mis_jeans]
    mis_metrics = write_report(out / "misspecified", mis_posts, seed=seed,
                               title="jeans_exact (spherical model) on the "
                                     + ("catalogue mocks" if catalogue else
                                        "full idealized simulator")
                                     + ", next to the NPE trained on them",
                               top_level={"n_train": n_train})
    where = residuals_by_subset(mis, mis_posts)
    plot_misspecified(figs / "misspecified_residuals.png", mis, mis_posts)
    return {"n_clusters": len(mis),
            "npe_deepsets": _brief(mis_metrics["npe_deepsets"]),
            "jeans_exact": _brief(mis_metrics["jeans_exact"]),
            "by_subset": where, "nuts": mis_nuts.summary(),
            "npe_model": str(idealized_model) if idealized_model else "trained here",
            "data": str(data_path) if data_path else "simulator"}


def _brief(m: dict) -> dict:
    return {k: m[k] for k in ("scatter_dex", "bias_dex", "hpd_max_abs_dev", "tarp_max_abs_dev",
                              "mean_posterior_std_dex", "infer_ms_per_cluster")}


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    p = experiment_parser("python -m experiments.information_limit", __doc__, SIZES,
                          "results/information_limit", fresh=True, max_epochs=True)
    p.add_argument("--jobs", type=int, default=2, help="worker processes for NUTS")
    p.add_argument("--reuse-models", action="store_true",
                   help="load the NPEs an earlier run saved under OUT/models instead of "
                        "training them again (same seed and size: same data)")
    p.add_argument("--idealized-model", type=Path, default=None,
                   help="an NPE trained on the full idealized simulator (npe_deepsets model "
                        "directory) for the misspecified comparison; trained here if absent")
    p.add_argument("--exact-from", type=Path, default=None, metavar="DIR",
                   help="read jeans_exact's posteriors from an earlier run in DIR (same "
                        "--seed and --size) instead of running NUTS again; train and judge "
                        "only the NPE (SBC and misspecified results are DIR's)")
    p.add_argument("--encoder", choices=sorted(ENCODERS), default="deepsets",
                   help="the NPEs' set encoder: the count-blind default, or the histogram "
                        "preset that reads the galaxy count (docs/estimators.md)")
    args = parse_experiment_args(p, argv)
    size = args.size or ("quick" if args.quick else "full")
    m = run(args.out, size, args.seed, args.device, not args.no_progress, args.jobs,
            args.idealized_model, args.data, args.reuse_models, args.max_seconds, args.fresh,
            args.max_epochs, args.exact_from, args.encoder)
    for name in ("npe_deepsets", "jeans_exact"):
        print(summary_line(name, m[name]))
    print(summary_legend(m["n_test"]))
    lim, sbc = m["information_limit"], m["sbc"]
    print(f"sd ratio NPE/exact {lim['std_ratio_mean']:.3f}, sigma_eps {lim['sigma_eps_a']:.3f}"
          f" vs {lim['sigma_eps_b']:.3f} ({lim['sigma_eps_rel_diff']:+.1%}); "
          f"SBC HPD dev {sbc['hpd_max_abs_dev']:.3f} (95 % band {sbc['ks_95_threshold']:.3f}); "
          f"wrote {args.out / 'report.md'}")
    h = m["hmf_test"]
    print(f"HMF test ({h['n_clusters']} clusters): sigma_eps NPE "
          f"{h['npe_deepsets']['scatter_dex']:.3f} vs exact {h['jeans_exact']['scatter_dex']:.3f}"
          f"; drift r={h['jeans_exact']['drift']['rates'][0]}: NPE "
          f"{h['npe_deepsets']['drift']['mean_dex'][0]:+.3f}, exact "
          f"{h['jeans_exact']['drift']['mean_dex'][0]:+.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
