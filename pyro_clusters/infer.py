r"""The posterior mass of an observed cluster from a redshift table.

Usage::

    python -m pyro_clusters infer --table FILE --ra RA --dec DEC --z Z [--model DIR]
        [--out DIR] [--prior {flat,hmf}] [--subsample N|auto] [--n-subsamples K]
        [--ra-col C] [--dec-col C] [--z-col C | --cz-col C] [--draws N] [--seed S]

The table goes through the observation model of the mocks (:mod:`pyro_clusters.observation`,
the model's own aperture and velocity window); the classifier of the model bundle
(:mod:`pyro_clusters.pretrained`, default: the one shipped with the package) gives each galaxy a
membership probability; the NPE gives posterior draws of log10(M200c / h^-1 Msun). Papers/003
section 6 and papers/004 apply the same kind of model to Coma and other nearby clusters.

Prior: ``flat`` (default) is the training prior, uniform in log M over the training range, so
the posterior is proportional to the likelihood there; ``hmf`` re-weights it to the halo mass
function at the cluster's redshift over the same range, the calibrated posterior for a cluster
drawn at random from the Universe (as :class:`~pyro_clusters.estimators.prior.PriorReweighted`).
Either way the flow's draws are resampled with weight prior / flat (sampling-importance-
resampling), which also rejects the draws the flow puts outside the prior's range ("leakage",
reported in the summary).

Mismatch with the training set is reported, not hidden (:func:`mismatch_warnings`): redshift
far from the training redshift, richness outside the training range, a table that does not
cover the aperture or the velocity window, a posterior pressed against the edge of the training
prior. ``--subsample`` draws K random subsets of N galaxies and mixes their posteriors in equal
parts (for fields richer than any training cluster, e.g. a deeper survey).

Outputs (``--out``): ``summary.json`` (percentiles, galaxies used, warnings, model provenance),
``posterior.nc`` (ArviZ DataTree: ``posterior/log10_M200c`` and the galaxies in
``observed_data``), ``galaxies.csv`` (the galaxies in the cylinder with p_member) and
``cluster.png`` (phase space coloured by membership probability, the sky positions and the
posterior). Exit code 0 with a posterior, 2 when none can be given (bad input, too few galaxies).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pyro_clusters.cosmology import get_cosmology
from pyro_clusters.data.clusters import ClusterSet
from pyro_clusters.observation import (
    FieldObservation,
    ObservationError,
    observe_field,
    read_redshift_table,
)

__all__ = ["ClusterPosterior", "infer_cluster", "main", "mismatch_warnings", "subsample_sets"]

#: |z - z_train| above max(DZ_ABS, DZ_REL * z_train) is reported as a redshift mismatch.
DZ_ABS, DZ_REL = 0.02, 0.2
#: percentiles reported, in per cent.
PERCENTILES = (2.5, 16.0, 50.0, 84.0, 97.5)
#: flow draws per returned draw (sampling-importance-resampling onto the prior).
OVERSAMPLE = 4
#: fraction of flow draws outside the prior range above which a warning is given.
LEAKAGE_WARN = 0.05


@dataclass
class ClusterPosterior:
    """Result of :func:`infer_cluster`.

    Attributes:
        observation: the cylinder as the model saw it.
        p_member: classifier membership probability of each galaxy in the cylinder, (n_gal,).
        draws: posterior draws of log10(M200c / h^-1 Msun), (n_draws,).
        msigma: the M-sigma baseline on the same galaxies: ``sigma_v`` [km/s] of classifier
            members, ``log_m`` point estimate, ``scatter_dex``.
        warnings: mismatch messages (empty when the observation is like the training data).
        settings: prior, subsampling, seed, draws.
        summary: percentiles and everything ``summary.json`` holds.
    """

    observation: FieldObservation
    p_member: np.ndarray
    draws: np.ndarray
    msigma: dict
    warnings: list[str]
    settings: dict
    summary: dict = field(default_factory=dict)


def mismatch_warnings(obs: FieldObservation, trained_on: dict, n_used: int | None = None
                      ) -> list[str]:
    """Ways the observation differs from what the model was trained on, each with a remedy.

    Args:
        obs: the observed cylinder.
        trained_on: the bundle's ``trained_on`` (z, aperture, v_cut, richness percentiles).
        n_used: galaxies per posterior after subsampling (default: all of the cylinder's).

    Returns:
        messages (empty if none applies).
    """
    out = []
    z, z_train = obs.center[2], trained_on["z"]
    retrain = (f"python -m pyro_clusters train --z {z:.4g} --aperture {trained_on['aperture']}"
               f" --v-cut {trained_on['v_cut']:g} --out DIR (about 20 min on 2 CPU cores), "
               "then --model DIR")
    if abs(z - z_train) > max(DZ_ABS, DZ_REL * z_train):
        out.append(f"redshift {z:.4g} is far from the training redshift {z_train:.4g}: the "
                   "aperture in h^-1 Mpc covers a different part of the cluster's "
                   f"galaxy population than in training; train a model for it: {retrain}")
    r = trained_on["richness"]
    lo, hi = float(r["1"]), float(r["99"])
    n = obs.n_gal if n_used is None else n_used
    if n > hi:
        out.append(f"{n} galaxies in the cylinder, more than 99 % of training clusters "
                   f"({hi:.0f}); a deeper survey than the mocks' galaxy selection? "
                   f"--subsample auto uses random subsets of {int(hi)} galaxies")
    elif n < lo:
        out.append(f"{n} galaxies in the cylinder, fewer than 99 % of training clusters "
                   f"({lo:.0f}): a shallow or incomplete survey; the posterior is wide and "
                   "the model has seen few such clusters")
    aperture, v_cut = trained_on["aperture"], trained_on["v_cut"]
    if obs.coverage_radius < 0.95 * aperture:
        out.append(f"the table reaches only {obs.coverage_radius:.2f} h^-1 Mpc from the centre "
                   f"(inside the velocity window) but the model's aperture is {aperture} h^-1 "
                   "Mpc: the outer cylinder is missing, so richness and interloper fraction "
                   f"differ from training; use a wider table or train with --aperture "
                   f"{obs.coverage_radius:.2f}")
    vmin, vmax = obs.velocity_span
    if obs.n_gal >= 30 and (vmin > -0.75 * v_cut or vmax < 0.75 * v_cut):
        out.append(f"inside the aperture the table spans only v_los = {vmin:.0f} .. {vmax:.0f} "
                   f"km/s of the model's +-{v_cut:g} km/s window: a pre-selected member list? "
                   "The model expects every galaxy in the window, interlopers included")
    return out


def _edge_warning(draws: np.ndarray, log_m_range: tuple[float, float]) -> str | None:
    lo, hi = log_m_range
    p_lo, p_hi = np.percentile(draws, [2.5, 97.5])
    if p_lo < lo + 0.05 or p_hi > hi - 0.05:
        side = "lower" if p_lo < lo + 0.05 else "upper"
        return (f"the posterior reaches the {side} edge of the training range "
                f"[{lo:.2f}, {hi:.2f}]; the mass may lie outside it and the posterior is "
                "truncated there")
    return None


def subsample_sets(clusters: ClusterSet, n: int, k: int, rng: np.random.Generator
                   ) -> tuple[ClusterSet, np.ndarray]:
    """K random subsets of n galaxies of a one-cluster set, as a K-cluster set.

    Returns:
        (the set, galaxy rows of the original cluster in each subset, (k, n)).
    """
    total = int(clusters.n_gal[0])
    if not 2 <= n < total:
        raise ValueError(f"subsample size must be in [2, {total}), got {n}")
    rows = np.stack([np.sort(rng.choice(total, n, replace=False)) for _ in range(k)])
    galaxies = {c: v[rows.ravel()] for c, v in clusters.galaxies.items()}
    return ClusterSet({"n_gal": np.full(k, n)}, galaxies, np.arange(k + 1) * n,
                      dict(clusters.attrs)), rows


def _percentiles(draws: np.ndarray) -> dict[str, float]:
    q = np.percentile(draws, PERCENTILES)
    out = {f"p{p:g}": float(v) for p, v in zip(PERCENTILES, q, strict=True)}
    out.update(median=out.pop("p50"), mean=float(draws.mean()), std=float(draws.std()))
    return out


def infer_cluster(obs: FieldObservation, model, n_draws: int = 4000, seed: int = 0,
                  prior: str = "flat", subsample: int | str | None = None,
                  n_subsamples: int = 20) -> ClusterPosterior:
    """Posterior of log10 M200c for an observed cylinder.

    Args:
        obs: the cylinder (:func:`pyro_clusters.observation.observe_field` with the model's
            aperture and v_cut).
        model: a :class:`~pyro_clusters.pretrained.CylinderModel`.
        n_draws: posterior draws.
        seed: seed of the flow's draws and of subsampling.
        prior: ``flat`` (training prior) or ``hmf`` (halo mass function at the cluster's z).
        subsample: galaxies per random subset, ``"auto"`` (the 99th percentile of the training
            richness, if the cylinder has more), or None (all galaxies).
        n_subsamples: subsets whose posteriors are mixed in equal parts.

    Returns:
        :class:`ClusterPosterior`.

    Raises:
        ObservationError: fewer galaxies than the model's N_min, or a bad option.
    """
    from pyro_clusters.baselines.msigma import velocity_dispersion
    from pyro_clusters.estimators.prior import resample_weighted
    from pyro_clusters.simulator.priors import HaloMassFunctionSampler

    trained_on = model.trained_on
    n_min = int(trained_on.get("n_min", 10))
    if obs.n_gal < n_min:
        raise ObservationError(
            f"only {obs.n_gal} galaxies in the cylinder (R <= {trained_on['aperture']} h^-1 "
            f"Mpc, |v_los| <= {trained_on['v_cut']:g} km/s); the model needs at least {n_min} "
            "(N_min of its training clusters)")
    if prior not in ("flat", "hmf"):
        raise ObservationError(f"prior must be 'flat' or 'hmf', got {prior!r}")
    if n_draws < 2 or n_subsamples < 1:
        raise ObservationError("need at least 2 draws and 1 subsample")
    rng = np.random.default_rng(seed)
    notes = []
    if subsample == "auto":
        cap = int(model.richness_range[1])
        subsample = cap if obs.n_gal > cap else None
        if subsample is None:
            notes.append(f"--subsample auto: {obs.n_gal} galaxies are within the training "
                         f"richness (99th percentile {cap}); no subsampling")
    elif subsample is not None:
        subsample = int(subsample)
        if not n_min <= subsample < obs.n_gal:
            raise ObservationError(f"--subsample must be in [{n_min}, {obs.n_gal}) for this "
                                   f"cylinder of {obs.n_gal} galaxies, got {subsample}")
    annotated = model.annotate(obs.clusters)
    p_member = annotated.galaxies["p_member"].astype(np.float64)
    lo, hi = trained_on.get("prior_range", trained_on["log_m_range"])
    if prior == "hmf":
        weight = HaloMassFunctionSampler(lo, hi, z=obs.center[2]).density
    else:  # the training prior: flat, zero outside its range
        def weight(x):
            return ((x >= lo) & (x <= hi)).astype(np.float64)
    if subsample is None:
        sets, k = annotated, 1
    else:
        sets, _ = subsample_sets(obs.clusters, subsample, n_subsamples, rng)
        sets, k = model.annotate(sets), n_subsamples
    per = -(-n_draws // k)
    raw = model.npe.sample(sets, OVERSAMPLE * per, rng)  # (k, OVERSAMPLE * per)
    w = weight(raw)
    leakage = float(np.mean((raw < lo) | (raw > hi)))
    if not np.all(w.sum(axis=1) > 0):
        raise ObservationError(
            f"the posterior lies entirely outside the model's prior range [{lo}, {hi}] in "
            "log10 M: this cluster is outside what the model was trained on")
    draws = rng.permutation(resample_weighted(raw, w, per, rng).ravel())[:n_draws]
    members = p_member > 0.5
    sigma_v = float(velocity_dispersion(obs.clusters, members)[0])
    msig = {"sigma_v_kms": sigma_v, "n_members": int(members.sum()),
            "log_m": float(model.msigma.predict(annotated)[0]),
            "scatter_dex": float(model.msigma.scatter_dex)}
    warn = mismatch_warnings(obs, trained_on, subsample)
    edge = _edge_warning(draws, (lo, hi))
    if edge:
        warn.append(edge)
    if leakage > LEAKAGE_WARN:
        warn.append(f"{100 * leakage:.0f} % of the flow's draws fell outside the prior range "
                    f"[{lo}, {hi}] and were rejected: the cluster is at the edge of, or "
                    "outside, what the model was trained on")
    settings = {"prior": prior, "subsample": subsample, "n_subsamples": n_subsamples
                if subsample else None, "seed": seed, "n_draws": int(draws.size),
                "leakage_fraction": leakage, "notes": notes}
    post = ClusterPosterior(obs, p_member, draws, msig, warn, settings)
    post.summary = _summary(post, model)
    return post


def _summary(post: ClusterPosterior, model) -> dict:
    h = float(get_cosmology().h)
    obs = post.observation
    pct = _percentiles(post.draws)
    m14 = {k: 10.0 ** (v - 14.0) for k, v in pct.items() if k not in ("mean", "std")}
    return {
        "center": {"ra_deg": obs.center[0], "dec_deg": obs.center[1], "z": obs.center[2]},
        "log10_M200c_hinv_Msun": pct,
        "M200c_1e14_hinv_Msun": m14,
        "M200c_1e14_Msun": {k: v / h for k, v in m14.items()},
        "h": h,
        "n_table_rows": obs.n_rows,
        "n_rows_dropped_missing": obs.n_dropped,
        "n_table_galaxies": obs.n_table,
        "n_galaxies_in_cylinder": obs.n_gal,
        "n_members_classifier": int((post.p_member > 0.5).sum()),
        "sum_p_member": float(post.p_member.sum()),
        "msigma": post.msigma,
        "warnings": post.warnings,
        "settings": post.settings,
        "coverage_radius_hinv_Mpc": obs.coverage_radius,
        "velocity_span_kms": list(obs.velocity_span),
        "model": {"path": str(model.path) if model.path else None,
                  "trained_on": model.trained_on, "command": model.info.get("command"),
                  "test_metrics": model.info.get("test_metrics")},
    }


def format_summary(s: dict) -> str:
    """Human-readable lines for the terminal."""
    c, p = s["center"], s["log10_M200c_hinv_Msun"]
    m, mh = s["M200c_1e14_hinv_Msun"], s["M200c_1e14_Msun"]
    t = s["model"]["trained_on"]
    lines = [
        f"Cluster at RA {c['ra_deg']:.5f} deg, Dec {c['dec_deg']:.5f} deg, z {c['z']:.5f}",
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


def main(argv: list[str] | None = None) -> int:
    """``python -m pyro_clusters infer``; returns the exit code."""
    p = argparse.ArgumentParser(prog="python -m pyro_clusters infer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", type=Path, required=True,
                   help="CSV or whitespace table with RA, Dec [deg] and z (or cz [km/s])")
    p.add_argument("--ra", type=float, required=True, help="cluster centre RA [deg]")
    p.add_argument("--dec", type=float, required=True, help="cluster centre Dec [deg]")
    p.add_argument("--z", type=float, required=True, help="cluster redshift")
    p.add_argument("--model", type=Path, default=None,
                   help="model bundle directory (default: the one shipped with the package)")
    p.add_argument("--out", type=Path, default=Path("results/infer"))
    p.add_argument("--ra-col", default=None)
    p.add_argument("--dec-col", default=None)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--z-col", default=None, help="redshift column")
    g.add_argument("--cz-col", default=None, help="c z column [km/s]")
    p.add_argument("--prior", choices=("flat", "hmf"), default="flat")
    p.add_argument("--subsample", default=None,
                   help="galaxies per random subset, or 'auto' (training richness)")
    p.add_argument("--n-subsamples", type=int, default=20)
    p.add_argument("--draws", type=int, default=4000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    from pyro_clusters.pretrained import CylinderModel

    try:
        model = CylinderModel.load(args.model, args.device)
        table = read_redshift_table(args.table, args.ra_col, args.dec_col, args.z_col,
                                    args.cz_col)
        obs = observe_field(table, args.ra, args.dec, args.z, model.trained_on["aperture"],
                            model.trained_on["v_cut"])
        sub = args.subsample
        if sub is not None and sub != "auto":
            try:
                sub = int(sub)
            except ValueError:
                raise ObservationError(f"--subsample takes an integer or 'auto', got {sub!r}"
                                       ) from None
        post = infer_cluster(obs, model, args.draws, args.seed, args.prior, sub,
                             args.n_subsamples)
    except (ObservationError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    paths = save_outputs(post, args.out)
    print(format_summary(post.summary))
    print("wrote " + ", ".join(str(v) for v in paths.values()))
    return 0
