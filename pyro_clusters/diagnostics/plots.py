"""Figures of the diagnostics, for one or several estimators side by side.

Each function takes evaluated results (:class:`~pyro_clusters.diagnostics.report.Evaluation`)
and writes one PNG; masses are log10(M200c / h^-1 Msun), residuals in dex.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = [
    "DISPLAY_NAMES",
    "display_name",
    "plot_bias_std_vs_mass",
    "plot_coverage",
    "plot_predicted_vs_true",
    "plot_residuals",
    "plot_std_vs_scatter",
]

_MASS = r"$\log_{10} M_{200c}\ [h^{-1}M_\odot]$"

#: figure labels of the package's estimator names (metrics.json keeps the names)
DISPLAY_NAMES = {
    "msigma": "M–σ",
    "msigma_contaminated": "M–σ, all galaxies",
    "msigma_pure": "M–σ, true members",
    "npe_deepsets": "set NPE",
    "cnn_kde_slice": "CNN + KDE slice",
    "mc_dropout": "MC-dropout CNN",
    "nf_kde2d": "Gaussian flow on KDE image",
    "sbi_npe": "sbi NPE",
    "jeans_exact": "exact Jeans posterior",
}


def display_name(name: str) -> str:
    """The figure label of an estimator name: ``npe_deepsets_hmf`` -> "set NPE, HMF prior".

    A trailing ``_hmf`` is the posterior reweighted to the halo-mass-function prior; names the
    package does not know are shown as they are.
    """
    base, hmf = (name[:-4], True) if name.endswith("_hmf") else (name, False)
    label = DISPLAY_NAMES.get(base, base)
    return f"{label}, HMF prior" if hmf else label


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_predicted_vs_true(evaluations, path: Path, n_violins: int = 40, seed: int = 0) -> Path:
    """Posterior violins of a mass-spread subset of clusters at their true mass.

    As Wang, Thiele & Ho 2026, Fig. 6: every cluster's posterior median (grey points) and the
    full posterior (violins) of ``n_violins`` clusters spread evenly in true mass.
    """
    from matplotlib.patches import Patch

    k = len(evaluations)
    fig, axes = plt.subplots(1, k, figsize=(5.2 * k, 4.8), squeeze=False)
    for ax, ev in zip(axes[0], evaluations, strict=True):
        post = ev.posterior
        t = post.truth
        # Clusters spread evenly in true mass (not in number), the same for every estimator.
        targets = np.linspace(t.min(), t.max(), n_violins)
        pick = np.unique(np.abs(t[None, :] - targets[:, None]).argmin(axis=1))
        med = np.median(post.samples, axis=1)
        ax.scatter(t, med, s=2, alpha=0.2, color="0.5", rasterized=True, label="posterior median")
        width = 0.8 * (t.max() - t.min()) / max(n_violins, 1)
        parts = ax.violinplot(list(post.samples[pick]), positions=t[pick], widths=width,
                              showextrema=False)
        for body in parts["bodies"]:
            body.set_alpha(0.5)
        lims = [t.min() - 0.1, t.max() + 0.1]
        ax.plot(lims, lims, "k-", lw=1, label="predicted = true")
        ax.set(xlim=lims, ylim=lims, xlabel="true " + _MASS, ylabel="predicted " + _MASS,
               title=display_name(ev.name))
        handles, _ = ax.get_legend_handles_labels()
        handles.append(Patch(color=parts["bodies"][0].get_facecolor()[0], alpha=0.5,
                             label=f"posterior of {len(pick)} clusters"))
        ax.legend(handles=handles, fontsize=8, loc="upper left", markerscale=4)
    return _save(fig, path)


def plot_coverage(evaluations, path: Path) -> Path:
    """HPD (solid) and TARP (dashed) empirical coverage against the credibility level.

    As Wang, Thiele & Ho 2026, Fig. 7 left; the band is TARP's bootstrap +-2 sigma.
    """
    fig, ax = plt.subplots(figsize=(5.2, 5))
    ax.plot([0, 1], [0, 1], color="k", lw=1)
    for i, ev in enumerate(evaluations):
        c = f"C{i}"
        ax.plot(ev.hpd.levels, ev.hpd.ecp, color=c, label=f"{display_name(ev.name)}: HPD")
        ax.plot(ev.tarp.levels, ev.tarp.ecp, color=c, ls="--",
                label=f"{display_name(ev.name)}: TARP")
        if np.any(ev.tarp.ecp_std > 0):
            ax.fill_between(ev.tarp.levels, ev.tarp.ecp - 2 * ev.tarp.ecp_std,
                            ev.tarp.ecp + 2 * ev.tarp.ecp_std, color=c, alpha=0.15, lw=0)
    ax.set(xlabel="credibility level", ylabel="empirical coverage", xlim=(0, 1), ylim=(0, 1),
           aspect="equal", title="coverage (above diagonal: conservative)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _bins(ev):
    rows = [b for b in ev.metrics["by_mass_bin"] if b["n"] >= 2]
    centre = np.array([0.5 * (b["lo"] + b["hi"]) for b in rows])
    return rows, centre


def plot_bias_std_vs_mass(evaluations, path: Path) -> Path:
    """Bias (solid), empirical scatter (dashed) and mean posterior std (dotted) per mass bin."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.axhline(0, color="k", lw=0.8)
    for i, ev in enumerate(evaluations):
        rows, centre = _bins(ev)
        c = f"C{i}"
        ax.plot(centre, [b["bias_dex"] for b in rows], color=c, marker="o", ms=3,
                label=f"{display_name(ev.name)}: bias")
        ax.plot(centre, [b["scatter_dex"] for b in rows], color=c, ls="--",
                label=f"{display_name(ev.name)}: empirical scatter")
        ax.plot(centre, [b["mean_posterior_std_dex"] for b in rows], color=c, ls=":",
                label=f"{display_name(ev.name)}: mean posterior std")
    ax.set(xlabel="true " + _MASS, ylabel="dex", title="bias and scatter vs mass")
    ax.legend(fontsize=7, ncol=1, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(fig, path)


def plot_std_vs_scatter(evaluations, path: Path) -> Path:
    """Mean posterior std against empirical scatter per mass bin, with the 1:1 line."""
    fig, ax = plt.subplots(figsize=(5, 5))
    top = 0.0
    for i, ev in enumerate(evaluations):
        rows, _ = _bins(ev)
        x = np.array([b["scatter_dex"] for b in rows])
        y = np.array([b["mean_posterior_std_dex"] for b in rows])
        n = np.array([b["n"] for b in rows])
        if n.size == 0:  # no mass bin holds two clusters (tiny test sets)
            continue
        ax.scatter(x, y, s=10 + 40 * n / max(n.max(), 1), color=f"C{i}",
                   label=display_name(ev.name), alpha=0.8)
        top = max(top, np.nanmax(np.concatenate([x, y])))
    top = top or 1.0
    ax.plot([0, 1.1 * top], [0, 1.1 * top], "k-", lw=1)
    ax.set(xlabel="empirical scatter [dex]", ylabel="mean posterior std [dex]",
           xlim=(0, 1.1 * top), ylim=(0, 1.1 * top), aspect="equal",
           title="predicted std vs empirical scatter")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_residuals(evaluations, path: Path) -> Path:
    """Distribution of epsilon = median - truth per estimator."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    eps_all = [np.median(ev.posterior.samples, axis=1) - ev.posterior.truth for ev in evaluations]
    lim = max(np.percentile(np.abs(e), 99.5) for e in eps_all)
    bins = np.linspace(-lim, lim, 60)
    for i, (ev, eps) in enumerate(zip(evaluations, eps_all, strict=True)):
        ax.hist(eps, bins=bins, histtype="step", density=True, color=f"C{i}",
                label=f"{display_name(ev.name)}: σ = {ev.metrics['scatter_dex']:.3f} dex")
    ax.axvline(0, color="k", lw=0.8)
    ax.set(xlabel=r"$\epsilon = \log M_{\rm pred} - \log M_{\rm true}$ [dex]", ylabel="density",
           title="residuals")
    ax.legend(fontsize=8)
    return _save(fig, path)
