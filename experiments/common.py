"""Pieces every experiment shares: data sets, timing, posteriors, robustness section."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pyro_clusters.data.clusters import ClusterSet
from pyro_clusters.defaults import TEST_RANGE, setup_of
from pyro_clusters.diagnostics import (
    PosteriorSamples,
    subsampling_drift,
    velocity_error_shift,
)
from pyro_clusters.simulator import (
    FlatLogMassPrior,
    HaloMassFunctionSampler,
    SimulatorConfig,
    simulate_selected,
)
from pyro_clusters.simulator.conditions import ObservingConditions, simulate_conditions
from pyro_clusters.simulator.config import SUPPORTED_LOG_MASS_RANGE

__all__ = ["DRIFT_RATES", "DataSets", "experiment_parser", "flat_table", "fresh_clusters",
           "get_sets", "load_sets", "posterior_of", "prior_sections", "richness_drift",
           "richness_markdown", "robustness", "robustness_markdown", "simulate_sets"]

#: galaxy sampling rates of the richness check (:func:`richness_drift`)
DRIFT_RATES = (0.5, 0.7)


@dataclass
class DataSets:
    """Training and validation clusters (flat prior), the HMF test set and a flat test set.

    Attributes:
        train, val: flat prior over the training range.
        test: halo mass function over ``hmf.lo``-``hmf.hi`` (the papers' test sets).
        test_flat: flat prior (the calibration check with the training prior).
        hmf: the test set's theta distribution (its ``density`` is the test population's prior).
        seconds: simulation wall time.
    """

    train: ClusterSet
    val: ClusterSet
    test: ClusterSet
    test_flat: ClusterSet
    hmf: HaloMassFunctionSampler
    seconds: float


def simulate_sets(config: SimulatorConfig, n_train: int, n_val: int, n_test: int,
                  rng: np.random.Generator, test_range: tuple[float, float] = TEST_RANGE,
                  n_test_flat: int | None = None) -> DataSets:
    """Simulate the four sets (``n_test_flat`` defaults to half of ``n_test``)."""
    t0 = time.perf_counter()
    flat = FlatLogMassPrior()
    hmf = HaloMassFunctionSampler(*test_range, z=config.z)
    train = simulate_selected(n_train, flat, config, rng)[0]
    val = simulate_selected(n_val, flat, config, rng)[0]
    test = simulate_selected(n_test, hmf, config, rng)[0]
    test_flat = simulate_selected(n_test_flat or max(n_test // 2, 2), flat, config, rng)[0]
    return DataSets(train, val, test, test_flat, hmf, time.perf_counter() - t0)


def load_sets(data: Path, setup: str, rng: np.random.Generator,
              sizes: tuple[int, int, int] | None = None) -> DataSets:
    """Read the four sets of a dataset directory instead of simulating them.

    ``python -m pyro_clusters catalog --out DIR`` writes DIR/train.h5, val.h5, test.h5 and
    test_flat.h5 (flat, flat, natural mass function, flat). ``data`` may be that directory or
    one holding ``idealized/`` and ``cylinder/`` such directories
    (:func:`pyro_clusters.data.splits.read_datasets`).

    Args:
        data: the directory.
        setup: the experiment's setup; every file must have been made for it.
        rng: draws the random subsets when ``sizes`` caps a set.
        sizes: at most (train, val, test) clusters (test_flat: half of test); None keeps all.

    Returns:
        The sets; ``hmf`` is the Tinker et al. 2008 mass function (package cosmology) over the
        test set's mass range, the population prior of the natural test set.
    """
    from pyro_clusters.data.splits import read_datasets

    t0 = time.perf_counter()
    caps = None
    if sizes is not None:
        caps = dict(zip(("train", "val", "test", "test_flat"),
                        (*sizes, max(sizes[2] // 2, 2)), strict=True))
    sets = read_datasets(data, setup, rng, caps)
    test = sets["test"]
    lo_ok, hi_ok = SUPPORTED_LOG_MASS_RANGE
    lo = max(float(test.log_m.min()), lo_ok)
    hi = min(max(float(test.log_m.max()), lo + 0.1), hi_ok)
    hmf = HaloMassFunctionSampler(lo, hi, z=setup_of(test.attrs)["z"])
    return DataSets(sets["train"], sets["val"], test, sets["test_flat"], hmf,
                    time.perf_counter() - t0)


def get_sets(config: SimulatorConfig, n_train: int, n_val: int, n_test: int,
             rng: np.random.Generator, data: Path | None = None, cap: bool = True
             ) -> DataSets:
    """Simulate the sets, or read them from ``data`` when given.

    Read sets are capped at the sizes if ``cap`` (full-size runs take every cluster).
    """
    if data is None:
        return simulate_sets(config, n_train, n_val, n_test, rng)
    return load_sets(data, config.setup, rng, (n_train, n_val, n_test) if cap else None)


def posterior_of(estimator, test: ClusterSet, n_draws: int, rng: np.random.Generator,
                 train_seconds: float | None, name: str | None = None,
                 info: dict | None = None) -> PosteriorSamples:
    """Sample an estimator on the test set, timing inference per cluster.

    ``info``, if given, receives what the call learned besides the draws
    (:meth:`~pyro_clusters.estimators.base.Estimator.sample_with_info`).
    """
    t0 = time.perf_counter()
    result = estimator.sample_with_info(test, n_draws, rng)
    ms = 1e3 * (time.perf_counter() - t0) / len(test)
    draws = result.draws
    if info is not None:
        info.update(result.info)
    meta = {"n_gal": test.n_gal}
    if "n_members" in test.clusters:
        meta["n_members"] = test.clusters["n_members"]
    return PosteriorSamples(draws, test.log_m, meta, name or estimator.label,
                            {"train_seconds": train_seconds, "infer_ms_per_cluster": ms})


def prior_sections(flat_metrics: dict, names: list[str]) -> list[str]:
    """Report lines explaining the three views of calibration, with the flat-test numbers."""
    lines = ["", "## Which prior?", "",
             "The estimators are trained on a flat prior in log M. On the HMF test set their "
             "posteriors (`msigma`, `npe_deepsets`) are the papers' numbers but not calibrated "
             "for that population; `*_hmf` are the same posteriors times HMF/flat (Bayes, "
             "sampling-importance-resampling), the calibrated posterior for clusters drawn "
             "from the HMF over the test range -- that prior also knows the range, which "
             "narrows the low-mass posteriors. The flat test set checks calibration where the "
             "prior matches training:", ""] + flat_table(flat_metrics, names)
    lines += ["", "Flat-test figures and per-bin tables: "
              "[flat_test/report.md](flat_test/report.md)."]
    return lines


def flat_table(flat_metrics: dict, names: list[str]) -> list[str]:
    """Markdown table of the flat-prior test metrics of ``names``."""
    lines = ["| estimator on the flat test set | σ_ε [dex] | bias [dex] | HPD max dev | "
             "TARP max dev | mean post. std [dex] |", "|---|---|---|---|---|---|"]
    for n in names:
        m = flat_metrics[n]
        lines.append(f"| `{n}` | {m['scatter_dex']:.3f} | {m['bias_dex']:+.3f} | "
                     f"{m['hpd_max_abs_dev']:.3f} | {m['tarp_max_abs_dev']:.3f} | "
                     f"{m['mean_posterior_std_dex']:.3f} |")
    return lines


def robustness(estimator, test: ClusterSet, rng: np.random.Generator, n_clusters: int,
               n_repeats: int) -> dict:
    """Subsampling drift (Ho et al. 2019 eq. 14) and 100 km/s velocity-error shift on a subset."""
    sub = test.select(np.sort(rng.choice(len(test), min(n_clusters, len(test)), replace=False)))
    drift = subsampling_drift(estimator, sub, rng, rates=np.round(np.arange(0.2, 1.01, 0.1), 2),
                              n_repeats=n_repeats)
    return {"n_clusters": len(sub), "subsampling": drift.to_dict(),
            "velocity_error_100kms": velocity_error_shift(estimator, sub, rng, 100.0)}


def richness_drift(estimator, test: ClusterSet, seed: int, n_clusters: int) -> dict:
    """How much an estimator reads the galaxy count: its subsampled mass drift.

    Measured on the first ``n_clusters`` of ``test`` (one rule, so that the ablation, the
    comparison and ``experiments.richness`` judge the same clusters): the mean change of the
    posterior median (Ho et al. 2019 eq. 14) when every cluster keeps a random fraction r of
    its galaxies, r in :data:`DRIFT_RATES`, two subsamplings per cluster, 200 draws, the
    generator ``[seed, 2]`` (the same numbers for the same model and clusters in every
    experiment). Blind to the count: about zero (an M-sigma fit: a few 0.01 dex, from the
    noisier dispersion); reading the mass off the count alone (N proportional to M):
    log10(r), -0.30 at r = 0.5.
    """
    clusters = test.select(np.arange(min(n_clusters, len(test))))
    d = subsampling_drift(estimator, clusters, np.random.default_rng([seed, 2]),
                          rates=np.array(DRIFT_RATES), n_repeats=2, n_draws=200)
    return {"n_clusters": len(clusters), "rates": list(DRIFT_RATES),
            "mean_dex": d.epsilon.mean(axis=1).tolist(), "median_dex": d.median.tolist()}


def richness_markdown(drift: dict[str, dict]) -> list[str]:
    """A report section from {estimator: :func:`richness_drift` result}."""
    n = next(iter(drift.values()))["n_clusters"] if drift else 0
    lines = ["", "## Does it read the galaxy count?", "",
             f"Subsampled mass drift on {n} HMF test clusters: the mean change of the posterior "
             "median when every cluster keeps a random fraction r of its galaxies. Blind to the "
             "count: ≈ 0; the mass read off the count alone: "
             + ", ".join(f"{np.log10(r):+.2f} at r = {r}" for r in DRIFT_RATES) + ".", "",
             "| estimator | " + " | ".join(f"drift r = {r} [dex]" for r in DRIFT_RATES) + " |",
             "|---|" + "---|" * len(DRIFT_RATES)]
    for name, d in drift.items():
        lines.append(f"| `{name}` | " + " | ".join(f"{e:+.3f}" for e in d["mean_dex"]) + " |")
    return lines


def robustness_markdown(results: dict[str, dict]) -> list[str]:
    """A report section from {estimator: robustness dict}."""
    lines = ["", "## Robustness", "",
             "Subsampled mass drift ε(r) over 0.6 ≤ r ≤ 0.8 (Ho et al. 2019 Table 4) and the shift "
             "of posterior medians under 100 km/s velocity errors.", "",
             "| estimator | clusters | ε(0.6–0.8) median | 16% | 84% | width | "
             "v-error shift median | v-error std ratio |", "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        nan = float("nan")
        s = r["subsampling"]["summary_0608"] or {}
        v = r["velocity_error_100kms"]
        cells = [s.get(k, nan) for k in ("median_dex", "p16_dex", "p84_dex", "width_dex")]
        lines.append(f"| `{name}` | {r['n_clusters']} | "
                     + " | ".join(f"{c:.3f}" for c in cells)
                     + f" | {v['median_shift_dex']:+.3f} | {v['std_ratio']:.3f} |")
    return lines


def fresh_clusters(config: SimulatorConfig, n: int, data: Path | None = None,
                   depth_range: tuple[float, float] | None = None):
    """``Splits.fresh`` for a run: ``n`` new flat-prior clusters of ``config`` per epoch.

    ``depth_range``: survey depth, log10(M* / h^-1 Msun), drawn per chunk of clusters
    uniformly in this range (:func:`~pyro_clusters.simulator.conditions.simulate_conditions`,
    redshift and redshift errors those of ``config``) instead of ``config``'s: the
    richness-mass normalisation becomes a nuisance the network cannot read the mass from.

    Raises:
        SystemExit: with ``data`` (catalogue sets): fresh clusters need the simulator.
    """
    if data is not None:
        raise SystemExit("error: --fresh simulates new training clusters every epoch; it "
                         "cannot be combined with --data")
    prior = FlatLogMassPrior()
    if depth_range is not None:
        error = config.observation.velocity_error_kms
        conditions = ObservingConditions(z_range=(config.z, config.z),
                                         log_mstar_range=tuple(depth_range),
                                         velocity_error_range=(error, error))

        def fresh(rng: np.random.Generator) -> ClusterSet:
            return simulate_conditions(n, prior, config, conditions, rng)
    else:
        def fresh(rng: np.random.Generator) -> ClusterSet:
            return simulate_selected(n, prior, config, rng)[0]

    return fresh


def experiment_parser(prog: str, doc: str, sizes: dict, default_out: str,
                      fresh: bool = False, max_epochs: bool = False) -> argparse.ArgumentParser:
    """Parser with the options every experiment takes (callers add their own).

    --quick, --size (one of ``sizes``), --out (default ``default_out``), --seed, --device,
    --no-progress, --max-seconds (an explicit wall-clock budget, never a default), --data
    (datasets made from an N-body catalogue, :func:`load_sets`); with ``fresh``, --fresh
    (train the networks on new clusters every epoch, :func:`fresh_clusters`); with
    ``max_epochs``, --max-epochs (an epoch limit instead of the run size's).
    """
    p = argparse.ArgumentParser(prog=prog, description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small run (a few minutes)")
    p.add_argument("--size", choices=sorted(sizes), default=None,
                   help="explicit size (overrides --quick); 'tiny' is for the test suite")
    p.add_argument("--out", type=Path, default=Path(default_out))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--max-seconds", type=float, default=None, metavar="S",
                   help="wall-clock budget of each network's training [s]; training stops "
                        "after the epoch that passes it (default: none, so that a seed "
                        "reproduces a run: runs stop by epochs and patience)")
    p.add_argument("--data", type=Path, default=None,
                   help="read train/val/test sets from this directory (python -m "
                        "pyro_clusters catalog --out DIR) instead of simulating; capped at "
                        "the run size")
    if fresh:
        p.add_argument("--fresh", action="store_true",
                       help="train the networks on as many newly simulated clusters every "
                            "epoch as the training set holds (their constants are still "
                            "fitted on the training set; reproducible by --seed)")
    if max_epochs:
        p.add_argument("--max-epochs", type=int, default=None,
                       help="epoch limit instead of the size's (recorded in metrics.json)")
    return p
