"""What ``infer`` shows and writes for one cluster: terminal summary, files and figure.

``summary.json`` (percentiles, galaxies used, warnings, model provenance), ``posterior.nc``
(ArviZ DataTree: ``posterior/log10_M200c`` and the galaxies in ``observed_data``),
``galaxies.csv`` (the galaxies in the cylinder with p_member) and ``cluster.png`` (phase space
coloured by membership probability, the sky positions and the posterior).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from pyro_clusters.realfield.inference import ClusterPosterior

__all__ = ["check_output_dir", "format_summary", "plot_cluster", "save_outputs"]


def check_output_dir(path: str | os.PathLike) -> Path:
    """Raise ``OSError`` now, before any work, if ``path`` cannot become an output folder.

    Nothing is created: the nearest existing folder on the way must be a folder and take a
    file (tried with a temporary one, which also catches read-only file systems).

    Args:
        path: the output folder (it may exist, or be created later with its parents).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        NotADirectoryError: ``path``, or a folder on the way, is a file.
        PermissionError: the nearest existing folder is not writable.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"output folder {path} exists and is a file")
    base = path
    while not base.exists():
        base = base.parent
    if not base.is_dir():
        raise NotADirectoryError(f"cannot create the output folder {path}: {base} is a file")
    try:
        with tempfile.TemporaryFile(dir=base):
            pass
    except OSError:
        raise PermissionError(f"output folder {base} is not writable") from None
    return path


def format_summary(s: dict) -> str:
    """Human-readable lines for the terminal."""
    c, p = s["center"], s["log10_M200c_hinv_Msun"]
    m, mh = s["M200c_1e14_hinv_Msun"], s["M200c_1e14_Msun"]
    t = s["model"]["trained_on"]
    where = ("amortised over z " + "-".join(f"{v:g}" for v in t["z_range"])
             if "z_range" in t else f"trained at z = {t['z']:g}")
    lines = [
        f"Cluster at RA {c['ra_deg']:.5f} deg, Dec {c['dec_deg']:.5f} deg, z {c['z']:.5f}",
        f"  model: {s['model'].get('name') or s['model']['path']} ({where}, R_ap = "
        f"{t['aperture']} h^-1 Mpc, v_cut = {t['v_cut']:g} km/s)",
        f"  galaxies: {s['n_galaxies_in_cylinder']} in the cylinder (R <= {t['aperture']} h^-1 "
        f"Mpc, |v_los| <= {t['v_cut']:g} km/s) of {s['n_table_galaxies']} in the table; "
        f"classifier members (p > 0.5): {s['n_members_classifier']} "
        f"(sum of p: {s['sum_p_member']:.1f})",
        f"  log10(M200c / h^-1 Msun) = {p['median']:.3f} +{p['p84'] - p['median']:.3f} "
        f"-{p['median'] - p['p16']:.3f} (median, 16-84 %); 95 %: "
        f"[{p['p2.5']:.3f}, {p['p97.5']:.3f}]",
        f"  M200c = {m['median']:.2f} (16-84 %: {m['p16']:.2f}-{m['p84']:.2f}; 95 %: "
        f"{m['p2.5']:.2f}-{m['p97.5']:.2f}) x 10^14 h^-1 Msun = {mh['median']:.2f} x 10^14 "
        f"Msun (h = {s['h']:.4f})",
        f"  M-sigma on classifier members: sigma_v = {s['msigma']['sigma_v_kms']:.0f} km/s -> "
        f"log10 M = {s['msigma']['log_m']:.3f} +- {s['msigma']['scatter_dex']:.3f}",
        f"  prior: {s['settings']['prior']}"
        + (f"; {s['settings']['n_subsamples']} subsamples of {s['settings']['subsample']} "
           "galaxies" if s["settings"]["subsample"] else ""),
    ]
    if s["n_rows_dropped_missing"]:
        lines.append(f"  note: {s['n_rows_dropped_missing']} of {s['n_table_rows']} table rows "
                     "dropped for a missing or NaN value")
    if s.get("n_rows_dropped_negative_z"):
        lines.append(f"  note: {s['n_rows_dropped_negative_z']} of {s['n_table_rows']} table "
                     "rows dropped for a negative redshift (taken as 'no redshift')")
    lines += [f"  note: {n}" for n in s["settings"]["notes"]]
    lines += [f"  WARNING: {w}" for w in s["warnings"]]
    return "\n".join(lines)


def save_outputs(post: ClusterPosterior, out: Path) -> dict[str, Path]:
    """Write summary.json, posterior.nc, galaxies.csv and cluster.png to ``out``."""
    import arviz_base

    from pyro_clusters.diagnostics.report import to_json_safe

    out.mkdir(parents=True, exist_ok=True)
    obs = post.observation
    g = obs.clusters.galaxies
    paths = {"summary": out / "summary.json", "posterior": out / "posterior.nc",
             "galaxies": out / "galaxies.csv", "figure": out / "cluster.png"}
    paths["summary"].write_text(json.dumps(to_json_safe(post.summary), indent=2))
    gal = {"row": obs.row, "ra": obs.ra, "dec": obs.dec, "cz": obs.cz,
           "x_proj": g["x_proj"], "y_proj": g["y_proj"], "v_los": g["v_los"],
           "p_member": post.p_member}
    tree = arviz_base.from_dict(
        {"posterior": {"log10_M200c": post.draws[None, :]},
         "observed_data": {k: np.asarray(v, dtype=np.float64) for k, v in gal.items()}},
        dims={k: ["galaxy"] for k in gal})
    c = obs.center
    tree.attrs.update({"units": "log10(M200c / h^-1 Msun)", "ra_deg": c[0], "dec_deg": c[1],
                       "z": c[2], "prior": post.settings["prior"],
                       "model": str(post.summary["model"]["path"])})
    tmp = paths["posterior"].with_name(".posterior.nc.tmp")
    tree.to_netcdf(tmp, engine="h5netcdf")
    tmp.replace(paths["posterior"])
    header = ",".join(gal)
    np.savetxt(paths["galaxies"], np.column_stack([np.asarray(v, np.float64)
                                                   for v in gal.values()]),
               delimiter=",", header=header, comments="", fmt="%.10g")
    plot_cluster(post, paths["figure"])
    return paths


def plot_cluster(post: ClusterPosterior, path: Path) -> None:
    """Phase space and sky coloured by p_member, and the posterior with its percentiles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    obs, s = post.observation, post.summary
    g = obs.clusters.galaxies
    t = s["model"]["trained_on"]
    r = np.hypot(g["x_proj"], g["y_proj"])
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), layout="constrained")
    kw = {"c": post.p_member, "cmap": "coolwarm_r", "vmin": 0, "vmax": 1, "s": 14,
          "edgecolors": "k", "linewidths": 0.2}
    sc = axes[0].scatter(r, g["v_los"], **kw)
    axes[0].set(xlabel=r"$R_\mathrm{proj}$ [$h^{-1}$ Mpc]", ylabel=r"$v_\mathrm{los}$ [km/s]",
                xlim=(0, t["aperture"]), ylim=(-t["v_cut"], t["v_cut"]),
                title=f"phase space ({obs.n_gal} galaxies)")
    axes[1].scatter(g["x_proj"], g["y_proj"], **kw)
    axes[1].add_patch(plt.Circle((0, 0), t["aperture"], fill=False, ls="--", color="0.4"))
    axes[1].set(xlabel=r"$x$ (east) [$h^{-1}$ Mpc]", ylabel=r"$y$ (north) [$h^{-1}$ Mpc]",
                aspect="equal", title="projected positions")
    axes[1].invert_xaxis()  # east to the left, as on the sky
    fig.colorbar(sc, ax=axes[1], label=r"membership probability $p_\mathrm{member}$")
    p = s["log10_M200c_hinv_Msun"]
    ax = axes[2]
    ax.hist(post.draws, bins=60, density=True, color="C0", alpha=0.6, label="NPE posterior")
    ax.axvspan(p["p2.5"], p["p97.5"], color="C0", alpha=0.08, label="95 %")
    ax.axvspan(p["p16"], p["p84"], color="C0", alpha=0.15, label="68 %")
    ax.axvline(p["median"], color="C0", lw=1.5)
    ms = s["msigma"]
    grid = np.linspace(*np.percentile(post.draws, [0.1, 99.9]), 200)
    grid = np.linspace(min(grid[0], ms["log_m"] - 3 * ms["scatter_dex"]),
                       max(grid[-1], ms["log_m"] + 3 * ms["scatter_dex"]), 300)
    ax.plot(grid, np.exp(-0.5 * ((grid - ms["log_m"]) / ms["scatter_dex"]) ** 2)
            / (np.sqrt(2 * np.pi) * ms["scatter_dex"]), "k--", lw=1, label="M–σ")
    ax.set(xlabel=r"$\log_{10}(M_\mathrm{200c}\,/\,h^{-1}M_\odot)$", ylabel="density",
           title=f"posterior: {p['median']:.2f} +{p['p84'] - p['median']:.2f} "
                 f"-{p['median'] - p['p16']:.2f} ({s['settings']['prior']} prior)")
    ax.legend(fontsize=8)
    c = obs.center
    fig.suptitle(f"RA {c[0]:.4f}, Dec {c[1]:.4f}, z {c[2]:.4f}"
                 + ("  —  see warnings in summary.json" if post.warnings else ""))
    fig.savefig(path, dpi=120)
    plt.close(fig)
