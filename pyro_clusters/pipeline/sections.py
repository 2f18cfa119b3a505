"""Report sections every experiment shares (Markdown lines for ``write_report``).

Which prior the posteriors are calibrated for, the flat-test table, the richness (drift)
table and the robustness table, from the numbers of :mod:`~pyro_clusters.pipeline.evaluation`.
"""

from __future__ import annotations

import numpy as np

from pyro_clusters.pipeline.evaluation import DRIFT_RATES

__all__ = ["flat_table", "prior_sections", "richness_markdown", "robustness_markdown"]


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
