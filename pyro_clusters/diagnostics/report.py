"""Evaluate posteriors and write a run's ``metrics.json``, ``report.md`` and figures.

:func:`evaluate` turns one :class:`PosteriorSamples` into every metric of the DESIGN.md
contract (residuals, HPD and TARP coverage, per-mass-bin table, richness split when richness is
known). :func:`write_report` does it for one or several estimators on the same test set and
writes::

    <out>/metrics.json            {<estimator>: {...contract...}, n_train, n_test, seed, config,
                                   package_version, ...}
    <out>/report.md               comparison table + figures
    <out>/figures/*.png
    <out>/posterior_<name>.nc     the samples (ArviZ DataTree, see docs/posterior_format.md)
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pyro_clusters import __version__
from pyro_clusters.diagnostics import plots
from pyro_clusters.diagnostics.coverage import (
    CoverageResult,
    TarpResult,
    calibrated_max_dev,
    hpd_coverage,
    tarp_coverage,
)
from pyro_clusters.diagnostics.metrics import default_mass_edges, residual_metrics, richness_split
from pyro_clusters.diagnostics.posterior import PosteriorSamples, save_posterior

__all__ = ["Evaluation", "estimator_rng", "evaluate", "summary_legend", "summary_line",
           "to_json_safe",
           "without_timings", "write_report"]

#: metadata keys tried, in order, as the richness N of Kodi Ramanah et al. 2020 eq. 8.
RICHNESS_KEYS = ("richness", "n_members", "n_gal")


@dataclass
class Evaluation:
    """The diagnostics of one estimator on one test set."""

    name: str
    posterior: PosteriorSamples
    metrics: dict
    hpd: CoverageResult
    tarp: TarpResult


def evaluate(posterior: PosteriorSamples, rng: np.random.Generator,
             mass_edges: np.ndarray | None = None, n_bootstrap: int = 100) -> Evaluation:
    """Every contract metric of one estimator.

    Args:
        posterior: samples, truths and metadata.
        rng: generator for TARP's reference points and bootstrap.
        mass_edges: log10 M bin edges (default 0.1 dex over the truths).
        n_bootstrap: TARP bootstrap resamples for the ECP band in the figure.

    Returns:
        :class:`Evaluation`; ``metrics`` holds the contract keys (``train_seconds`` and
        ``infer_ms_per_cluster`` from the posterior's attributes, or None).
    """
    metrics = residual_metrics(posterior.samples, posterior.truth, mass_edges)
    hpd = hpd_coverage(posterior.samples, posterior.truth)
    tarp = tarp_coverage(posterior.samples, posterior.truth, rng, n_bootstrap=n_bootstrap)
    metrics.update({
        "hpd_ecp": hpd.to_dict(),
        "tarp_ecp": tarp.to_dict(),
        "hpd_max_abs_dev": hpd.max_abs_dev,
        "tarp_max_abs_dev": tarp.max_abs_dev,
        "tarp_atc": tarp.atc,
        "tarp_ks_pvalue": tarp.ks_pvalue,
        "train_seconds": posterior.attrs.get("train_seconds"),
        "infer_ms_per_cluster": posterior.attrs.get("infer_ms_per_cluster"),
    })
    key = next((k for k in RICHNESS_KEYS if k in posterior.meta), None)
    if key is not None and posterior.n_clusters >= 3:
        eps = np.median(posterior.samples, axis=1) - posterior.truth
        split = richness_split(eps, np.maximum(posterior.meta[key], 1))
        metrics["richness_split"] = {**split.to_dict(), "richness_key": key}
    return Evaluation(posterior.estimator, posterior, metrics, hpd, tarp)


def estimator_rng(seed: int, name: str) -> np.random.Generator:
    """The generator of one estimator's TARP reference points and bootstrap.

    Keyed by ``seed`` and the estimator's name (CRC-32 of its UTF-8 bytes as the spawn key), so
    an estimator's TARP numbers do not depend on which other posteriors are evaluated with it,
    nor in which order.
    """
    key = zlib.crc32(name.encode("utf-8"))
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(key,)))


#: metrics.json keys that hold wall-clock measurements (suffixes and prefixes).
TIMING_SUFFIXES = ("seconds", "_ms_per_cluster")
TIMING_PREFIXES = ("clusters_per_second",)


def without_timings(metrics):
    """``metrics`` (a metrics.json tree) without its wall-clock measurements, recursively.

    What is left is what the seed determines: two runs of an experiment with the same seed,
    size and data on the same software give equal results (training times, inference times
    and throughputs differ with machine load and are removed: keys ending in ``seconds`` or
    ``_ms_per_cluster``, or starting with ``clusters_per_second``).
    """
    if isinstance(metrics, dict):
        return {k: without_timings(v) for k, v in metrics.items()
                if not (str(k).endswith(TIMING_SUFFIXES)
                        or str(k).startswith(TIMING_PREFIXES))}
    if isinstance(metrics, list):
        return [without_timings(v) for v in metrics]
    return metrics


def summary_legend(n_test: int) -> str:
    """What the columns of :func:`summary_line` mean, with the coverage noise on ``n_test``.

    Args:
        n_test: test clusters the metrics were measured on.
    """
    from pyro_clusters.diagnostics.coverage import calibrated_max_dev

    return (f"(on {n_test} test clusters -- scatter: std of eps = log M_median - log M_true "
            "[dex]; bias: mean eps [dex]; HPD dev / TARP dev: largest |coverage - credibility| "
            "of the HPD intervals / TARP, 0 for a calibrated posterior, up to "
            f"{calibrated_max_dev(n_test):.3f} by chance (95 %); post. std: mean posterior "
            "standard deviation [dex])")


def summary_line(name: str, m: dict) -> str:
    """One line per estimator for terminal output: scatter, bias, coverage, posterior width."""
    return (f"{name:17s} scatter {m['scatter_dex']:.4f} dex  bias {m['bias_dex']:+.4f}  "
            f"HPD dev {m['hpd_max_abs_dev']:.3f}  TARP dev {m['tarp_max_abs_dev']:.3f}  "
            f"post. std {m['mean_posterior_std_dex']:.3f}")


def to_json_safe(obj):
    """Replace NaN/inf by None and numpy scalars/arrays by Python types, recursively."""
    if isinstance(obj, dict):
        return {str(k): to_json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _fmt(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _table(evaluations: list[Evaluation]) -> list[str]:
    cols = [("σ_ε [dex]", "scatter_dex"), ("bias [dex]", "bias_dex"),
            ("ε 16% [dex]", "residual_p16_dex"), ("ε 84% [dex]", "residual_p84_dex"),
            ("mean post. std [dex]", "mean_posterior_std_dex"),
            ("HPD max dev", "hpd_max_abs_dev"), ("TARP max dev", "tarp_max_abs_dev"),
            ("skew", "skewness"), ("exc. kurt.", "kurtosis"),
            ("train s", "train_seconds"), ("infer ms/cluster", "infer_ms_per_cluster")]
    lines = ["| estimator | " + " | ".join(c for c, _ in cols) + " |",
             "|---" * (len(cols) + 1) + "|"]
    for ev in evaluations:
        lines.append(f"| `{ev.name}` | " + " | ".join(_fmt(ev.metrics.get(k)) for _, k in cols)
                     + " |")
    return lines


def _richness_note(name: str, split: dict) -> str:
    """Why a fitted sigma_N sits at zero, when it does."""
    if split["sigma_n_dex"] >= 1e-3:
        return ""
    note = (" σ_N ≈ 0 is the fit's lower bound: the residual scatter shows no growth with 1/N "
            "on this test set")
    if name.endswith("_hmf"):
        note += (" (likely the HMF prior: it confines the poorest clusters, which are the "
                 "lowest in mass, to the lower end of the test range, bounding their residuals)")
    return note + "."


def write_report(
    out: str | Path,
    posteriors: list[PosteriorSamples],
    seed: int = 0,
    top_level: dict | None = None,
    title: str = "Posterior diagnostics",
    extra_sections: list[str] | None = None,
    save_samples: bool = True,
    mass_edges: np.ndarray | None = None,
) -> dict:
    """Evaluate every posterior and write metrics.json, report.md, figures and samples.

    Args:
        out: run directory (created).
        posteriors: one per estimator, all on the same test clusters.
        seed: seed of the TARP reference points (per estimator name, :func:`estimator_rng`).
        top_level: extra top-level metrics.json fields (n_train, config, ...).
        title: report heading.
        extra_sections: Markdown lines appended to the report (e.g. robustness tables).
        save_samples: also write ``posterior_<name>.nc`` per estimator.
        mass_edges: log10 M bin edges shared by all estimators (default 0.1 dex over the
            truths).

    Returns:
        The metrics dict that was written.
    """
    if not posteriors:
        raise ValueError("no posteriors to report on")
    names = [p.estimator for p in posteriors]
    if len(set(names)) != len(names):
        raise ValueError(f"estimator names must be unique, got {names}")
    n = posteriors[0].n_clusters
    for p in posteriors[1:]:
        if p.n_clusters != n or not np.array_equal(p.truth, posteriors[0].truth):
            raise ValueError("all posteriors must be on the same test clusters (same truths)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    edges = default_mass_edges(posteriors[0].truth) if mass_edges is None else mass_edges
    evaluations = [evaluate(p, estimator_rng(seed, p.estimator), edges) for p in posteriors]
    metrics = {ev.name: ev.metrics for ev in evaluations}
    metrics.update({"n_test": n, "seed": seed, "package_version": __version__,
                    "mass_bin_edges": np.asarray(edges).tolist()})
    metrics.update(top_level or {})
    metrics.setdefault("n_train", None)
    metrics.setdefault("config", None)
    metrics = to_json_safe(metrics)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))

    fig_dir = out / "figures"
    figures = [
        plots.plot_predicted_vs_true(evaluations, fig_dir / "predicted_vs_true.png", seed=seed),
        plots.plot_coverage(evaluations, fig_dir / "coverage.png"),
        plots.plot_bias_std_vs_mass(evaluations, fig_dir / "bias_std_vs_mass.png"),
        plots.plot_std_vs_scatter(evaluations, fig_dir / "std_vs_scatter.png"),
        plots.plot_residuals(evaluations, fig_dir / "residuals.png"),
    ]
    if save_samples:
        for p in posteriors:
            save_posterior(p, out / f"posterior_{p.estimator}.nc")

    lines = [f"# {title}", "", f"{n} test clusters; package {__version__}; seed {seed}.", ""]
    lines += _table(evaluations)
    lines += ["", f"Coverage noise: a calibrated posterior on {n} clusters shows a max deviation "
              f"of {calibrated_max_dev(n, 0.5):.3f} (median), above "
              f"{calibrated_max_dev(n, 0.95):.3f} in 5 % of test sets (`calibrated_max_dev`)."]
    for ev in evaluations:
        split = ev.metrics.get("richness_split")
        if split:
            lines += ["", f"`{ev.name}` richness split (Kodi Ramanah et al. 2020 eq. 8, N = "
                      f"`{split['richness_key']}`): σ_N = {split['sigma_n_dex']:.3f} dex, "
                      f"σ_0 = {split['sigma_0_dex']:.3f} dex." + _richness_note(ev.name, split)]
    for ev in evaluations:
        lines += ["", f"## `{ev.name}` by mass bin", "",
                  "| log M | n | bias [dex] | scatter [dex] | mean post. std [dex] |",
                  "|---|---|---|---|---|"]
        lines += [f"| {b['lo']:.2f}–{b['hi']:.2f} | {b['n']} | {_fmt(b['bias_dex'])} | "
                  f"{_fmt(b['scatter_dex'])} | {_fmt(b['mean_posterior_std_dex'])} |"
                  for b in ev.metrics["by_mass_bin"]]
    lines += ["", "## Figures", ""]
    lines += [f"![{f.stem}](figures/{f.name})" for f in figures]
    lines += extra_sections or []
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return metrics
