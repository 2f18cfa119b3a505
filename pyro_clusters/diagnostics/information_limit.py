"""The information-limit comparison: an NPE against the exact posterior, in numbers and figures.

The helpers of ``python -m experiments.information_limit`` that judge a posterior against
the exact one (``jeans_exact`` on the spherical simulator): per-mass-bin sd ratios, residuals
on the subsets a spherical model gets wrong, the per-cluster table, the figures and the report
sections. :func:`~pyro_clusters.diagnostics.comparison.compare_posteriors` gives the overall
numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pyro_clusters.diagnostics.comparison import per_cluster_comparison

__all__ = ["TARGET_SIGMA_EPS", "TARGET_STD_RATIO", "hmf_limit_markdown", "limit_markdown",
           "plot_misspecified", "plot_posterior_pairs", "plot_std_ratio", "residuals_by_subset",
           "std_ratio_by_mass", "write_per_cluster"]

#: the targets: mean posterior sd ratio NPE / exact within 1 +- 0.10, sigma_eps within 5 %
TARGET_STD_RATIO, TARGET_SIGMA_EPS = 0.10, 0.05


def std_ratio_by_mass(a, b, truth, edges=(13.5, 14.0, 14.5, 15.0, 15.5)) -> list[dict]:
    """Mean per-cluster posterior sd ratio a / b in bins of the true log10 M.

    Args:
        a: draws of the first posterior (the NPE), (n_clusters, n_draws), log10 M.
        b: draws of the reference (the exact posterior), likewise.
        truth: true log10(M200c / h^-1 Msun), (n_clusters,).
        edges: bin edges in log10 M.

    Returns:
        per non-empty bin: lo, hi, n, std_ratio_mean, std_exact_mean, std_npe_mean [dex].
    """
    c = per_cluster_comparison(a, b)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (truth >= lo) & (truth < hi)
        if m.any():
            rows.append({"lo": lo, "hi": hi, "n": int(m.sum()),
                         "std_ratio_mean": float(c["std_ratio"][m].mean()),
                         "std_exact_mean": float(c["std_b"][m].mean()),
                         "std_npe_mean": float(c["std_a"][m].mean())})
    return rows


def residuals_by_subset(clusters, posts) -> dict:
    """sigma_eps and bias of each estimator on subsets the spherical model gets wrong."""
    c = clusters.clusters
    subsets = {"all": np.ones(len(clusters), bool)}
    if "has_substructure" in c:  # simulator truth (catalogue mocks do not carry it)
        los_major = np.asarray(c["los_major_cos"])
        subsets.update({
            "substructure": np.asarray(c["has_substructure"], bool),
            "merger": np.asarray(c["has_merger"], bool),
            "relaxed": ~np.asarray(c["has_substructure"], bool)
            & ~np.asarray(c["has_merger"], bool),
            "los_near_major_axis": los_major > 0.8,
            "los_near_minor_plane": los_major < 0.3,
        })
    for lo, hi in ((13.5, 14.0), (14.0, 14.5), (14.5, 15.5)):
        subsets[f"log_m_{lo}_{hi}"] = (clusters.log_m >= lo) & (clusters.log_m < hi)
    out = {}
    for name, m in subsets.items():
        if m.sum() < 2:
            continue
        row = {"n": int(m.sum())}
        for p in posts:
            eps = np.median(p.samples[m], 1) - p.truth[m]
            row[p.estimator] = {"scatter_dex": float(eps.std(ddof=1)),
                                "bias_dex": float(eps.mean())}
        out[name] = row
    return out


def write_per_cluster(path: Path, test, npe_post, jeans_post, diag) -> None:
    """``per_cluster.csv``: truth, both posteriors' medians and sds, their distances, NUTS."""
    c = per_cluster_comparison(npe_post.samples, jeans_post.samples)
    cols = {"log_m_true": test.log_m, "n_gal": test.n_gal,
            "concentration": test.clusters["concentration"],
            "beta_inf": test.clusters["beta_inf"],
            "npe_median": np.median(npe_post.samples, 1),
            "exact_median": np.median(jeans_post.samples, 1),
            "npe_std": c["std_a"], "exact_std": c["std_b"], "std_ratio": c["std_ratio"],
            "shift": c["shift"], "kl_gauss": c["kl_gauss"], "w1": c["w1"],
            "rhat": diag.rhat, "ess_bulk": diag.ess_bulk, "divergences": diag.divergences,
            "nuts_seconds": diag.seconds}
    header = ",".join(cols)
    np.savetxt(path, np.column_stack(list(cols.values())), delimiter=",", header=header,
               comments="", fmt="%.6g")


def plot_posterior_pairs(path: Path, test, npe_post, jeans_post, n: int = 6) -> None:
    """Both posteriors of ``n`` test clusters spread over mass, truth dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = np.argsort(test.log_m)[np.linspace(0, len(test) - 1, min(n, len(test))).astype(int)]
    fig, axes = plt.subplots(1, len(idx), figsize=(2.6 * len(idx), 2.6), squeeze=False)
    for ax, i in zip(axes[0], idx, strict=True):
        lo = min(npe_post.samples[i].min(), jeans_post.samples[i].min())
        hi = max(npe_post.samples[i].max(), jeans_post.samples[i].max())
        bins = np.linspace(lo, hi, 40)
        ax.hist(jeans_post.samples[i], bins, density=True, histtype="step", lw=1.5,
                label="jeans_exact")
        ax.hist(npe_post.samples[i], bins, density=True, histtype="step", lw=1.5,
                label="npe_deepsets")
        ax.axvline(test.log_m[i], color="k", ls="--", lw=1)
        ax.set_title(f"N = {test.n_gal[i]}", fontsize=9)
        ax.set_xlabel(r"$\log_{10} M_{200c}$")
        ax.set_yticks([])
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_std_ratio(path: Path, test, npe_post, jeans_post) -> None:
    """Posterior sd ratio NPE / exact against true mass (coloured by N), and sd against sd."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = per_cluster_comparison(npe_post.samples, jeans_post.samples)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    sc = axes[0].scatter(test.log_m, c["std_ratio"], c=np.log10(test.n_gal), s=10,
                         cmap="viridis")
    axes[0].axhline(1.0, color="k", lw=1)
    axes[0].axhspan(1 - TARGET_STD_RATIO, 1 + TARGET_STD_RATIO, color="0.85", zorder=0)
    axes[0].set_xlabel(r"true $\log_{10} M_{200c}$")
    axes[0].set_ylabel("posterior sd: NPE / exact")
    fig.colorbar(sc, ax=axes[0], label=r"$\log_{10} N_{gal}$")
    axes[1].scatter(c["std_b"], c["std_a"], s=10)
    lim = [0, 1.05 * max(c["std_a"].max(), c["std_b"].max())]
    axes[1].plot(lim, lim, "k-", lw=1)
    axes[1].set_xlabel("exact posterior sd [dex]")
    axes[1].set_ylabel("NPE posterior sd [dex]")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_misspecified(path: Path, clusters, posts) -> None:
    """Residuals of each posterior against true mass and the line of sight (or N)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = clusters.clusters
    # simulator: the angle to the major axis; catalogue: the galaxy count
    second = ((np.asarray(c["los_major_cos"]), "|cos| (line of sight, major axis)")
              if "los_major_cos" in c else (clusters.n_gal, "galaxies N"))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for p in posts:
        eps = np.median(p.samples, 1) - p.truth
        axes[0].scatter(p.truth, eps, s=8, label=p.estimator)
        axes[1].scatter(second[0], eps, s=8, label=p.estimator)
    for ax in axes:
        ax.axhline(0, color="k", lw=1)
        ax.set_ylabel(r"median $-$ true [dex]")
    axes[0].set_xlabel(r"true $\log_{10} M_{200c}$")
    axes[1].set_xlabel(second[1])
    if "los_major_cos" not in c:
        axes[1].set_xscale("log")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def limit_markdown(limit: dict, nuts: dict, sbc: dict, mis: dict,
                     earlier: Path | None = None) -> list[str]:
    """Markdown of the information limit, NUTS, SBC and misspecified results.

    ``earlier``: the run the NUTS, SBC and misspecified results come from (``--exact-from``);
    their sections say so and link to its files.
    """
    f = lambda x: f"{x:.3f}"  # noqa: E731
    there = "" if earlier is None else f"{earlier.as_posix()}/"
    from_earlier = ("" if earlier is None else
                    f" (from the earlier run in `{there}`: not run again)")
    lines = ["", "## Information limit (spherical simulator, same test clusters)", "",
             "`jeans_exact` uses richness `ancillary` (no P(N | M) term), matching the "
             "mean-pooling NPE that never sees the galaxy count.", "",
             "| quantity | value | target |", "|---|---|---|",
             f"| mean per-cluster posterior sd ratio NPE / exact | "
             f"{f(limit['std_ratio_mean'])} (median {f(limit['std_ratio_median'])}, "
             f"16–84 % {f(limit['std_ratio_p16'])}–{f(limit['std_ratio_p84'])}) | "
             f"1 ± {TARGET_STD_RATIO} → {'met' if limit['meets_std_ratio_target'] else 'missed'}"
             " |",
             f"| σ_ε NPE / exact | {f(limit['sigma_eps_a'])} / {f(limit['sigma_eps_b'])} "
             f"({limit['sigma_eps_rel_diff']:+.1%}) | ± {TARGET_SIGMA_EPS:.0%} → "
             f"{'met' if limit['meets_sigma_eps_target'] else 'missed'} |",
             f"| median \\|shift\\| of medians [exact sd] | {f(limit['shift_median_abs'])} | |",
             f"| Gaussian KL(exact ‖ NPE), mean / median [nats] | {f(limit['kl_gauss_mean'])} / "
             f"{f(limit['kl_gauss_median'])} | |",
             f"| median W1 / exact sd | {f(limit['w1_median'])} | |",
             f"| time per cluster: NPE / jeans_exact (one core) | "
             f"{limit['npe_ms_per_cluster']:.2f} ms / {limit['jeans_exact_s_per_cluster']:.1f} s"
             " | |", "",
             f"Every mass bin's mean sd ratio within 1 ± {TARGET_STD_RATIO}: "
             f"{'met' if limit['meets_std_ratio_target_every_bin'] else 'missed'}.", "",
             "| mass bin | n | exact sd [dex] | NPE sd [dex] | mean sd ratio |",
             "|---|---|---|---|---|"]
    for r in limit["by_mass_bin"]:
        lines.append(f"| {r['lo']:.1f}–{r['hi']:.1f} | {r['n']} | {f(r['std_exact_mean'])} | "
                     f"{f(r['std_npe_mean'])} | {f(r['std_ratio_mean'])} |")
    lines += ["", "![posterior pairs](figures/posterior_pairs.png)", "",
              "![sd ratio](figures/std_ratio_vs_mass.png)", "",
              f"## NUTS diagnostics (every test cluster){from_earlier}", "",
              f"r-hat max {nuts['rhat_max']:.3f} ({nuts['n_rhat_above_threshold']} clusters "
              f"above {nuts['rhat_threshold']}), bulk ESS min {nuts['ess_bulk_min']:.0f} "
              f"(median {nuts['ess_bulk_median']:.0f}), divergences {nuts['divergences_total']} "
              f"in {nuts['n_clusters_with_divergences']} clusters; "
              f"{nuts['seconds_per_cluster_mean']:.1f} s per cluster on one core (mean).", "",
              f"## Is the yardstick right? SBC of the complete exact posterior{from_earlier}",
              "",
              f"{sbc['n_clusters']} clusters from the flat prior {sbc['prior_range']}, richness "
              f"`poisson`: HPD max |ECP − α| = {f(sbc['hpd_max_abs_dev'])}, TARP max dev "
              f"{f(sbc['tarp_max_abs_dev'])} (KS p = {sbc['tarp_ks_pvalue']:.2f}); the 95 % "
              f"Monte-Carlo band for {sbc['n_clusters']} clusters is {f(sbc['ks_95_threshold'])}"
              f" → {'within' if sbc['within_monte_carlo_error'] else 'OUTSIDE'} Monte-Carlo "
              f"error. NUTS: r-hat max {sbc['nuts']['rhat_max']:.3f}, divergences "
              f"{sbc['nuts']['divergences_total']}. Details: "
              f"[sbc/report.md]({there}sbc/report.md).", "",
              "## Misspecified: jeans_exact on "
              + ("the full idealized simulator" if mis["data"] == "simulator"
                 else f"catalogue mocks ({mis['data']})") + from_earlier, "",
              "| subset | n | NPE σ_ε | NPE bias | jeans_exact σ_ε | jeans_exact bias |",
              "|---|---|---|---|---|---|"]
    for name, row in mis["by_subset"].items():
        a, b = row["npe_deepsets"], row["jeans_exact"]
        lines.append(f"| {name} | {row['n']} | {f(a['scatter_dex'])} | {a['bias_dex']:+.3f} | "
                     f"{f(b['scatter_dex'])} | {b['bias_dex']:+.3f} |")
    lines += ["", f"Coverage: NPE HPD dev {f(mis['npe_deepsets']['hpd_max_abs_dev'])}, "
              f"jeans_exact HPD dev {f(mis['jeans_exact']['hpd_max_abs_dev'])}. NPE model: "
              f"{mis['npe_model']}. Galaxies beyond every halo of the spherical prior "
              f"(R ≥ 3 R200c at log M = 15.5: far merger or group members) dropped: "
              f"{mis['nuts'].get('galaxies_dropped_total', 0)} in "
              f"{mis['nuts'].get('n_clusters_with_dropped', 0)} clusters. "
              f"Details: [misspecified/report.md]({there}misspecified/report.md).",
              "", f"![misspecified]({there}figures/misspecified_residuals.png)"]
    return lines


def hmf_limit_markdown(h: dict) -> list[str]:
    """The report section of the HMF test population (the count-blind limit)."""
    f = lambda x: "–" if x is None or not np.isfinite(x) else f"{x:.3f}"  # noqa: E731
    npe, ex = h["npe_deepsets"], h["jeans_exact"]
    reused = ("" if h["reused_from"] is None else
              f" The exact posteriors and their drift are the earlier run's in "
              f"`{h['reused_from']}`.")
    lines = ["", "## The count-blind limit on the HMF test population", "",
             f"{h['n_clusters']} spherical clusters drawn from the halo mass function over "
             f"{h['range'][0]}–{h['range'][1]} at z = {h['z']} (the population the estimator "
             "comparisons quote σ_ε on), flat-prior posteriors as there. `jeans_exact` ignores "
             "the galaxy count, so its σ_ε is the least a count-blind estimator can reach on "
             "these clusters; its drift is what a count-blind posterior's is (fewer galaxies "
             f"widen it towards the prior; first {h['n_drift']} clusters).{reused}", "",
             "| estimator | σ_ε [dex] | bias [dex] | mean posterior sd [dex] | "
             + " | ".join(f"drift r = {r}" for r in ex["drift"]["rates"]) + " |",
             "|---|---|---|---|" + "---|" * len(ex["drift"]["rates"])]
    for name, m in (("npe_deepsets", npe), ("jeans_exact", ex)):
        lines.append(f"| `{name}` | {f(m['scatter_dex'])} | {m['bias_dex']:+.3f} | "
                     f"{f(m['mean_posterior_std_dex'])} | "
                     + " | ".join(f"{d:+.3f}" for d in m["drift"]["mean_dex"]) + " |")
    lines += ["", f"σ_ε NPE / exact: {h['sigma_eps_rel_diff']:+.1%}.", "",
              "| mass bin | n | NPE σ_ε | exact σ_ε | NPE bias | exact bias |",
              "|---|---|---|---|---|---|"]
    for a, b in zip(npe["by_mass_bin"], ex["by_mass_bin"], strict=True):
        lines.append(f"| {a['lo']:.1f}–{a['hi']:.1f} | {a['n']} | {f(a['scatter_dex'])} | "
                     f"{f(b['scatter_dex'])} | "
                     + " | ".join("–" if x is None or not np.isfinite(x) else f"{x:+.3f}"
                                  for x in (a["bias_dex"], b["bias_dex"])) + " |")
    return lines
