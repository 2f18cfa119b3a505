"""Realism report of the embedded simulator: ``python -m experiments.mocks [--quick] --out DIR``.

Simulates flat-prior training sets and HMF test sets in the idealized and cylinder setups,
computes the numbers that N-body mocks are known for (:mod:`pyro_clusters.diagnostics.realism`),
measures the simulator's speed, and writes ``DIR/metrics.json``, ``DIR/report.md`` and figures
under ``DIR/figures/``: M-sigma for members and for the cylinder, richness-mass, interloper
fraction vs mass, and one cluster's projected phase space (Ho et al. 2019 Fig. 1).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.common import load_sets  # noqa: E402
from pyro_clusters import __version__  # noqa: E402
from pyro_clusters.data.clusters import ClusterSet  # noqa: E402
from pyro_clusters.diagnostics.realism import (  # noqa: E402
    REALISM_BANDS,
    MockSets,
    in_band,
    realism_metrics,
)
from pyro_clusters.estimators.msigma import MSigmaFit
from pyro_clusters.features.dispersion import velocity_dispersion  # noqa: E402
from pyro_clusters.simulator import (  # noqa: E402
    FlatLogMassPrior,
    HaloMassFunctionSampler,
    SimulatorConfig,
    simulate_selected,
)

SIZES = {  # (flat training clusters, HMF test clusters) per setup
    "tiny": (600, 300),
    "quick": (4000, 2000),
    "full": (40000, 10000),
}


def _throughput(config: SimulatorConfig, n: int, seed: int) -> float:
    """Selected clusters per second of one process, tables already built."""
    rng = np.random.default_rng(seed)
    simulate_selected(50, FlatLogMassPrior(), config, rng)  # warm the cached tables
    t0 = time.perf_counter()
    simulate_selected(n, FlatLogMassPrior(), config, rng)
    return n / (time.perf_counter() - t0)


def _binned(x, y, edges):
    centres, med, lo, hi = [], [], [], []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        m = (x >= a) & (x < b) & np.isfinite(y)
        if m.sum() >= 5:
            centres.append(0.5 * (a + b))
            q = np.percentile(y[m], [16, 50, 84])
            lo.append(q[0]), med.append(q[1]), hi.append(q[2])
    return np.array(centres), np.array(med), np.array(lo), np.array(hi)


def _plot_msigma(ax, clusters: ClusterSet, fit: MSigmaFit, title: str) -> None:
    sigma = velocity_dispersion(clusters)
    ax.scatter(clusters.log_m, np.log10(sigma), s=2, alpha=0.25, color="0.4", rasterized=True)
    c, med, lo, hi = _binned(clusters.log_m, np.log10(sigma), np.arange(13.5, 15.51, 0.1))
    ax.fill_between(c, lo, hi, alpha=0.3, color="C0", label="16-84%")
    ax.plot(c, med, color="C0", label="median")
    grid = np.linspace(13.5, 15.5, 50)
    ax.plot(grid, fit.predict_log_sigma(grid), "k--",
            label=f"fit: slope {fit.slope:.3f}, $\\sigma_{{15}}$ {fit.sigma15:.0f} km/s")
    ax.axvline(fit.mass_cut, color="k", ls=":", lw=1)
    ax.set(xlabel=r"$\log_{10} M_{200c}\ [h^{-1}M_\odot]$",
           ylabel=r"$\log_{10} \sigma_v$ [km/s]", title=title)
    ax.legend(fontsize=8, loc="upper left")


def make_figures(sets: MockSets, fits: dict, metrics: dict, out: Path, seed: int) -> list[str]:
    """Write the report's figures; returns their paths relative to ``out``."""
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    names = []

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    _plot_msigma(axes[0], sets.pure_train, fits["pure"], "members only (idealized)")
    _plot_msigma(axes[1], sets.cylinder_train, fits["contaminated"], "cylinder (with interlopers)")
    fig.tight_layout()
    fig.savefig(fig_dir / "msigma.png", dpi=120)
    plt.close(fig)
    names.append("figures/msigma.png")

    cyl = sets.cylinder_train
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.scatter(cyl.log_m, cyl.clusters["n_members"], s=2, alpha=0.25, color="C0",
               label="members in the cylinder", rasterized=True)
    ax.scatter(cyl.log_m, cyl.clusters["richness_3d"], s=2, alpha=0.15, color="C1",
               label="all bound members (3D)", rasterized=True)
    ax.scatter([14.2], [metrics["median_richness_at_14p2"]], color="k", zorder=3,
               label="median at log M = 14.2")
    ax.axhspan(*REALISM_BANDS["median_richness_at_14p2"], xmin=0.3, xmax=0.4, color="0.8")
    ax.set(yscale="log", xlabel=r"$\log_{10} M_{200c}\ [h^{-1}M_\odot]$",
           ylabel="number of member galaxies", title="richness-mass")
    ax.legend(fontsize=8, markerscale=4)
    fig.tight_layout()
    fig.savefig(fig_dir / "richness_mass.png", dpi=120)
    plt.close(fig)
    names.append("figures/richness_mass.png")

    fr = metrics["interloper_fraction_by_mass"]
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.plot([0.5 * (f["lo"] + f["hi"]) for f in fr], [f["fraction"] for f in fr], "o-")
    ax.axhline(0.3, color="k", ls=":", lw=1, label="0.3 (required at log M = 14.0)")
    ax.set(xlabel=r"$\log_{10} M_{200c}\ [h^{-1}M_\odot]$", ylabel="interloper fraction",
           title="interlopers in the cylinder", ylim=(0, 1))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(fig_dir / "interloper_fraction.png", dpi=120)
    plt.close(fig)
    names.append("figures/interloper_fraction.png")

    # One cluster near log M = 14.3, as Ho et al. 2019 Fig. 1.
    i = int(np.argmin(np.abs(cyl.log_m - 14.3) + 10 * (cyl.n_gal < 20)))
    g = cyl.galaxies_of(i)
    mem = g["member"]
    r = np.hypot(g["x_proj"], g["y_proj"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for sel, colour, label in ((mem, "C0", "members"), (~mem, "C3", "interlopers")):
        axes[0].scatter(r[sel], g["v_los"][sel], s=12, color=colour, label=label)
        axes[1].scatter(g["x_proj"][sel], g["y_proj"][sel], s=12, color=colour, label=label)
    axes[0].set(xlabel=r"$R_{\rm proj}\ [h^{-1}$Mpc]", ylabel=r"$v_{\rm los}$ [km/s]",
                title=f"log M = {cyl.log_m[i]:.2f}: projected phase space")
    axes[1].set(xlabel=r"$x_{\rm proj}\ [h^{-1}$Mpc]", ylabel=r"$y_{\rm proj}\ [h^{-1}$Mpc]",
                title="plane of the sky", aspect="equal")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(fig_dir / "phase_space_example.png", dpi=120)
    plt.close(fig)
    names.append("figures/phase_space_example.png")
    return names


def write_report(metrics: dict, figures: list[str], out: Path, size: str) -> None:
    """Write ``report.md``: a table of metrics against their bands, then the figures."""
    title = ("Simulator realism report" if "data" not in metrics
             else f"Catalogue mocks realism report ({metrics['data']})")
    lines = [f"# {title} ({size} size)", "",
             "| metric | value | band | in band |", "|---|---|---|---|"]
    for name, (lo, hi) in REALISM_BANDS.items():
        v = metrics[name]
        band = f"{'' if lo is None else lo} – {'' if hi is None else hi}"
        lines.append(f"| `{name}` | {v:.4g} | {band} | {'yes' if in_band(name, v) else '**no**'} |")
    lines += ["", "Also measured:", ""]
    for name in ("msigma_contaminated_slope", "msigma_contaminated_sigma15_kms",
                 "msigma_pure_mass_scatter_dex", "msigma_contaminated_mass_scatter_dex",
                 "clusters_per_second_idealized", "clusters_per_second_cylinder"):
        if name in metrics:
            lines.append(f"- `{name}`: {metrics[name]:.4g}")
    lines += ["", "| log M bin | clusters | interloper fraction |", "|---|---|---|"]
    lines += [f"| {f['lo']:.3f}–{f['hi']:.3f} | {f['n_clusters']} | {f['fraction']:.3f} |"
              for f in metrics["interloper_fraction_by_mass"]]
    lines += [""] + [f"![{Path(f).stem}]({f})" for f in figures]
    (out / "report.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    p = argparse.ArgumentParser(prog="python -m experiments.mocks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="a few thousand clusters (~1 minute)")
    p.add_argument("--size", choices=sorted(SIZES), default=None,
                   help="explicit size (overrides --quick); 'tiny' is for the test suite")
    p.add_argument("--out", type=Path, default=Path("results/mocks"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", type=Path, default=None,
                   help="report on catalogue mocks instead: a directory with idealized/ and "
                        "cylinder/ made by pyro-clusters catalog (train: flat, "
                        "test: natural mass function)")
    args = p.parse_args(argv)
    size = args.size or ("quick" if args.quick else "full")
    n_train, n_test = SIZES[size]
    args.out.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(args.seed)
    pure, cyl = SimulatorConfig(setup="idealized"), SimulatorConfig(setup="cylinder")
    flat, hmf = FlatLogMassPrior(), HaloMassFunctionSampler(14.0, 15.0, z=pure.z)
    t0 = time.perf_counter()
    if args.data is None:
        sets = MockSets(
            pure_train=simulate_selected(n_train, flat, pure, rng)[0],
            cylinder_train=simulate_selected(n_train, flat, cyl, rng)[0],
            pure_test=simulate_selected(n_test, hmf, pure, rng)[0],
            cylinder_test=simulate_selected(n_test, hmf, cyl, rng)[0],
            z=pure.z,
        )
    else:
        caps = None if size == "full" else (n_train, 2, n_test)
        ideal, contaminated = (load_sets(args.data, s, rng, caps)
                               for s in ("idealized", "cylinder"))
        sets = MockSets(pure_train=ideal.train, cylinder_train=contaminated.train,
                        pure_test=ideal.test, cylinder_test=contaminated.test,
                        z=float(ideal.test.attrs["z"]))
    sim_seconds = time.perf_counter() - t0
    metrics, fits = realism_metrics(sets)
    if args.data is None:
        n_speed = min(n_train, 5000)
        metrics["clusters_per_second_idealized"] = _throughput(pure, n_speed, args.seed + 1)
        metrics["clusters_per_second_cylinder"] = _throughput(cyl, n_speed, args.seed + 2)
    else:
        metrics["data"] = str(args.data)
    metrics.update({
        "n_train": len(sets.pure_train) + len(sets.cylinder_train),
        "n_test": len(sets.pure_test) + len(sets.cylinder_test), "seed": args.seed, "size": size,
        "simulation_seconds": sim_seconds,
        "config": {"idealized": pure.to_dict(), "cylinder": cyl.to_dict()},
        "package_version": __version__,
        "in_band": {k: bool(in_band(k, metrics[k])) for k in REALISM_BANDS},
    })
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    figures = make_figures(sets, fits, metrics, args.out, args.seed)
    write_report(metrics, figures, args.out, size)
    for k in REALISM_BANDS:
        print(f"{k:40s} {metrics[k]:10.4g}  {'ok' if metrics['in_band'][k] else 'OUT OF BAND'}")
    print(f"wrote {args.out / 'metrics.json'} and {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
