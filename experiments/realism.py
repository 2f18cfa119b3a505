"""Realism report of the embedded simulator: ``python -m experiments.realism [--quick] --out DIR``.

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
from pyro_clusters.pipeline.sets import load_sets  # noqa: E402
from pyro_clusters.pipeline.sizes import SIZES as RUN_SIZES  # noqa: E402
from pyro_clusters.simulator import (  # noqa: E402
    FlatLogMassPrior,
    HaloMassFunctionSampler,
    SimulatorConfig,
    simulate_selected,
)

SIZES = RUN_SIZES["realism"]


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


#: survey depths of the richness-mass comparison, log10(M* / h^-1 Msun): the default, deeper
DEPTHS = (9.5, 8.0)


def richness_by_depth(n: int, rng: np.random.Generator, z: float) -> dict:
    """Median galaxies in the cylinder and members per mass bin at :data:`DEPTHS`.

    The same flat-prior halo masses are observed at each depth
    (:func:`pyro_clusters.simulator.depth.at_depth`).
    """
    from pyro_clusters.simulator.depth import at_depth

    edges = np.round(np.arange(14.0, 15.21, 0.2), 2)
    out = {}
    base = SimulatorConfig(setup="cylinder", z=z)
    for depth in DEPTHS:
        cs = simulate_selected(n, FlatLogMassPrior(14.0, 15.2), at_depth(base, depth), rng)[0]
        rows = []
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            m = (cs.log_m >= lo) & (cs.log_m < hi)
            rows.append({"lo": float(lo), "hi": float(hi), "n_clusters": int(m.sum()),
                         "median_n_gal": float(np.median(cs.n_gal[m])) if m.any() else None,
                         "median_members": float(np.median(cs.clusters["n_members"][m]))
                         if m.any() else None})
        out[f"{depth:g}"] = rows
    return out


def _plot_depths(by_depth: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for i, (depth, rows) in enumerate(by_depth.items()):
        c = [0.5 * (r["lo"] + r["hi"]) for r in rows]
        ax.plot(c, [r["median_n_gal"] for r in rows], "o-", color=f"C{i}",
                label=rf"$M_* > 10^{{{depth}}}$: galaxies in the cylinder")
        ax.plot(c, [r["median_members"] for r in rows], "s--", color=f"C{i}",
                label=rf"$M_* > 10^{{{depth}}}$: members")
    ax.set(yscale="log", xlabel=r"$\log_{10} M_{200c}\ [h^{-1}M_\odot]$",
           ylabel="median number of galaxies", title="richness-mass at two survey depths")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


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
    if "richness_by_depth" in metrics:
        depths = list(metrics["richness_by_depth"])
        lines += ["", "Richness-mass at two survey depths (log10 M* / h^-1 Msun limit; median "
                  "galaxies in the cylinder / true members; `pyro_clusters.simulator.depth`):",
                  "", "| log M bin | " + " | ".join(f"M* > 10^{d}" for d in depths) + " |",
                  "|---" * (len(depths) + 1) + "|"]
        rows = zip(*metrics["richness_by_depth"].values(), strict=True)
        for cells in rows:
            lines.append(f"| {cells[0]['lo']:.1f}–{cells[0]['hi']:.1f} | " + " | ".join(
                "–" if c["median_n_gal"] is None
                else f"{c['median_n_gal']:.0f} / {c['median_members']:.0f}" for c in cells)
                + " |")
    lines += [""] + [f"![{Path(f).stem}]({f})" for f in figures]
    (out / "report.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    p = argparse.ArgumentParser(prog="python -m experiments.realism", description=__doc__)
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
    n_train, n_test = SIZES[size].n_train, SIZES[size].n_test
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
        metrics["richness_by_depth"] = richness_by_depth(max(n_test // 2, 100), rng, cyl.z)
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
    if "richness_by_depth" in metrics:
        _plot_depths(metrics["richness_by_depth"], args.out / "figures" / "richness_depth.png")
        figures.append("figures/richness_depth.png")
    write_report(metrics, figures, args.out, size)
    for k in REALISM_BANDS:
        print(f"{k:40s} {metrics[k]:10.4g}  {'ok' if metrics['in_band'][k] else 'OUT OF BAND'}")
    print(f"wrote {args.out / 'metrics.json'} and {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
