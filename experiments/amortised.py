"""One model for every redshift and survey depth: ``python -m experiments.amortised [--quick]``.

Trains (or loads, ``--model DIR``) an amortised real-field bundle -- classifier + NPE over the
observing conditions of :class:`~pyro_clusters.simulator.conditions.ObservingConditions`
(redshift 0.01-0.3, stellar-mass limit 10^8-10^10.5 h^-1 Msun, redshift errors 0-100 km/s),
the networks given the redshift, the galaxy count and the background density -- and validates
it on mocks:

- a grid of cells in redshift x depth (4 x 3 by default): sigma_eps, bias, HPD and TARP
  deviations of the flat-prior posteriors on fresh clusters of each cell;
- the cell of the shipped single-setup model (z = 0.117, depth 10^9.5, no errors): both
  models on the same clusters;
- two named cases, 200 mock realisations each: a deep nearby cluster (log M = 15.0 at
  z = 0.023 seen down to 10^8 h^-1 Msun, ~1,000 galaxies, like Coma in a deep survey) and a
  z = 0.3 cluster (log M = 14.8 in a survey reaching 10^10.3): the share of realisations whose
  truth lies in the central 68 % interval, for this model and the single-setup one;
- the centre and the redshift taken as given: on the deep nearby case, how far the posterior
  medians move when the centre is off on the sky or the cluster velocity is off
  (:func:`~pyro_clusters.diagnostics.robustness.centre_shift`), and what ``--refine-z``
  (:func:`~pyro_clusters.realfield.redshift.refine_redshift`) does to a redshift 300 km/s
  off and to a correct one;
- the cluster physics the models assume: the deep nearby case again with every cluster
  relaxed, merging, with an infalling group, on isotropic orbits or spherical, and with
  tracers of another velocity bias or concentration (the simulator's
  :class:`~pyro_clusters.simulator.config.HaloConfig` fields), both models on each.

Writes DIR/metrics.json, DIR/report.md, DIR/figures/ and (when trained here) DIR/model/.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import patheffects  # noqa: E402

from pyro_clusters import __version__  # noqa: E402
from pyro_clusters.diagnostics.coverage import (  # noqa: E402
    calibrated_max_dev,
    hpd_coverage,
    tarp_coverage,
)
from pyro_clusters.diagnostics.report import to_json_safe  # noqa: E402
from pyro_clusters.diagnostics.robustness import centre_shift  # noqa: E402
from pyro_clusters.pipeline import train_bundle  # noqa: E402
from pyro_clusters.pipeline.options import experiment_parser  # noqa: E402
from pyro_clusters.pipeline.sizes import SIZES as RUN_SIZES  # noqa: E402
from pyro_clusters.realfield.bundle import CylinderModel  # noqa: E402
from pyro_clusters.simulator import (  # noqa: E402
    FlatLogMassPrior,
    SimulatorConfig,
    simulate_selected,
)
from pyro_clusters.simulator.conditions import ObservingConditions  # noqa: E402
from pyro_clusters.simulator.depth import at_depth  # noqa: E402

__all__ = ["SIZES", "main", "run"]

#: the validation grid: redshifts and stellar-mass limits log10(M* / h^-1 Msun)
GRID_Z = (0.02, 0.08, 0.15, 0.28)
GRID_DEPTH = (10.0, 9.0, 8.2)
#: the shipped model's setup
DEFAULT_CELL = (0.117, 9.5)
#: the named cases: (z, depth, log M)
CASES = {"deep_nearby": (0.023, 8.0, 15.0), "z0.3": (0.3, 10.3, 14.8)}



SIZES = RUN_SIZES["amortised"]


def _cell_metrics(model: CylinderModel, clusters, rng: np.random.Generator,
                  n_draws: int = 1000) -> tuple[dict, np.ndarray]:
    draws = model.sample(clusters, n_draws, rng)
    eps = np.median(draws, axis=1) - clusters.log_m
    lo, hi = np.percentile(draws, [16, 84], axis=1)
    return {"n": len(clusters), "scatter_dex": float(np.std(eps)),
            "bias_dex": float(np.mean(eps)),
            "hpd_max_abs_dev": hpd_coverage(draws, clusters.log_m).max_abs_dev,
            "tarp_max_abs_dev": tarp_coverage(draws, clusters.log_m, rng,
                                              n_bootstrap=0).max_abs_dev,
            "within_68": float(np.mean((clusters.log_m >= lo) & (clusters.log_m <= hi))),
            "median_n_gal": float(np.median(clusters.n_gal))}, draws


#: the deep nearby case's clusters with other physics: HaloConfig fields changed
CLUSTER_PHYSICS = {
    "as trained": {},
    "relaxed: no infalling group, no merger": {"substructure_fraction": 0.0,
                                               "merger_fraction": 0.0},
    "every cluster merging": {"merger_fraction": 1.0},
    "every cluster with an infalling group": {"substructure_fraction": 1.0},
    "isotropic orbits": {"anisotropic": False},
    "spherical halo": {"triaxial": False},
    "galaxies as cold as the dark matter (b_v = 1)": {"satellite_velocity_bias": 1.0},
    "galaxies hotter (b_v = 1.2)": {"satellite_velocity_bias": 1.2},
    "galaxies less concentrated (c_gal / c_DM = 0.4)": {"tracer_concentration_ratio": 0.4},
    "galaxies as concentrated as the dark matter (1.0)": {"tracer_concentration_ratio": 1.0},
}
#: random stream of the cluster-physics section (apart, so the sections before it draw
#: the same clusters with or without it)
PHYSICS_STREAM = 11


#: displacements of the centre [h^-1 Mpc] and of the cluster velocity [km/s] tried, and the
#: wider cylinder the displaced ones are cut from
CENTRE_OFFSETS, VELOCITY_OFFSETS = (0.1, 0.2, 0.4), (150.0, 300.0, 400.0)
WIDE_APERTURE, WIDE_V_CUT = 2.0, 2600.0


def _clusters(n: int, z: float, depth: float, rng: np.random.Generator,
              prior=None, velocity_error: float = 0.0, aperture: float | None = None,
              v_cut: float | None = None, halo: dict | None = None):
    base = SimulatorConfig(setup="cylinder", z=z)
    obs = base.observation
    base = base.replace(observation=dataclasses.replace(
        obs, velocity_error_kms=velocity_error, aperture=aperture or obs.aperture,
        v_cut=v_cut or obs.v_cut), halo=dataclasses.replace(base.halo, **(halo or {})))
    cs = simulate_selected(n, prior or FlatLogMassPrior(), at_depth(base, depth), rng)[0]
    cs.clusters["z"] = np.full(len(cs), z)
    return cs


def _cluster_physics(models: dict[str, CylinderModel], n: int, seed: int) -> list[dict]:
    """Bias and 68 % coverage of each model on the deep nearby case under other physics.

    Every variant gets the same random stream, so the variants differ by their change alone.
    """
    z, depth, log_m = CASES["deep_nearby"]
    rows = []
    for name, changes in CLUSTER_PHYSICS.items():
        rng = np.random.default_rng([seed, PHYSICS_STREAM])
        cs = _clusters(n, z, depth, rng, FlatLogMassPrior(log_m - 0.02, log_m + 0.02),
                       halo=changes)
        row = {"variant": name, "changes": changes, "median_n_gal": float(np.median(cs.n_gal))}
        for label, model in models.items():
            m, _ = _cell_metrics(model, cs, rng, n_draws=500)
            row[label] = {k: m[k] for k in ("bias_dex", "scatter_dex", "within_68")}
        rows.append(row)
    return rows


def _refine_z_shift(model: CylinderModel, wide, z: float, dv: float = 300.0,
                    n_draws: int = 500) -> list[dict]:
    """Posterior-median shifts with ``--refine-z``, as rows of :func:`centre_shift`.

    Each cluster of ``wide`` is written as a redshift table at (150, 20) deg and cut about
    the true redshift (the reference), about a redshift ``dv`` too high, and about the
    redshifts :func:`refine_redshift` finds from the correct and from the displaced start.
    """
    from pyro_clusters.cosmology import C_KMS
    from pyro_clusters.data.clusters import ClusterSet
    from pyro_clusters.realfield.redshift import refine_redshift
    from pyro_clusters.realfield.table import RedshiftTable, cluster_to_table, observe_field

    t = model.trained_on
    z_off = z + (1.0 + z) * dv / C_KMS
    cuts: dict[str, list] = {"true": [], "off": [], "refined_true": [], "refined_off": []}
    shifts: dict[str, list] = {"refined_true": [], "refined_off": []}
    for i in range(len(wide)):
        ra, dec, cz = cluster_to_table(wide, i, 150.0, 20.0, z)
        table = RedshiftTable(ra, dec, cz, np.arange(ra.size), ra.size, 0, {}, "mock")
        zs = {"true": z, "off": z_off}
        for start in ("true", "off"):
            r = refine_redshift(table, 150.0, 20.0, zs[start], model)
            zs[f"refined_{start}"] = r.z
            shifts[f"refined_{start}"].append(r.shift_kms + (dv if start == "off" else 0.0))
        for key, zc in zs.items():
            cuts[key].append(observe_field(table, 150.0, 20.0, zc, t["aperture"],
                                           t["v_cut"]).clusters)
    med = {}
    for key, sets in cuts.items():
        cs = ClusterSet.concatenate(sets)
        med[key] = np.median(model.sample(cs, n_draws, np.random.default_rng(0)), axis=1)
    rows = []
    for key, label in (("refined_true", 0.0), ("refined_off", dv)):
        d = med[key] - med["true"]
        q16, q50, q84 = np.percentile(d, [16, 50, 84])
        rows.append({"offset_hinv_mpc": 0.0, "dv_kms": label, "refined": True,
                     "median_shift_dex": float(q50), "p16_shift_dex": float(q16),
                     "p84_shift_dex": float(q84),
                     "residual_velocity_median_abs_kms": float(np.median(np.abs(
                         shifts[key]))),
                     "mean_n_gal": float(np.mean([c.n_gal[0] for c in cuts[key]]))})
    return rows


def run(out: Path, size: str, seed: int, device: str, progress: bool,
        model_path: Path | None = None, max_seconds: float | None = None,
        fresh: bool = False, workers: int = 1, train_only: bool = False,
        classifier_from: Path | None = None, n_case: int | None = None) -> dict:
    """Train or load the amortised bundle and validate it; returns the metrics written.

    With ``train_only`` the bundle is trained and saved (DIR/model) and the validation is
    left to a later ``--model DIR`` run (e.g. training on a GPU machine, validating on CPU).
    With ``classifier_from`` (an amortised bundle) its membership classifier is reused and
    only the M-sigma baseline and the NPE are trained. ``n_case`` replaces the size's
    realisations per named case (the coverage's binomial error is sqrt(0.68 x 0.32 / n):
    0.033 at 200).
    """
    if train_only and model_path is not None:
        raise ValueError("train_only trains a model; it cannot be given one")
    if classifier_from is not None and model_path is not None:
        raise ValueError("classifier_from trains a model; it cannot be given one")
    run_size = SIZES[size]
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    if model_path is None:
        clf = None
        if classifier_from is not None:
            given = CylinderModel.load(classifier_from, device)
            if not given.trained_on.get("amortised"):
                raise SystemExit(f"error: {classifier_from} is not an amortised bundle")
            clf = given.classifier
        command = " ".join(["python -m experiments.amortised", f"--size {size}",
                            f"--seed {seed}"] + ["--fresh"] * fresh
                           + [f"--classifier-from {classifier_from}"] * (
                               classifier_from is not None))
        model = train_bundle(SimulatorConfig(setup="cylinder"), run_size.bundle_size, seed,
                             device, progress, command, None,
                             max_seconds, ObservingConditions(), fresh, workers, clf)
        if classifier_from is not None:
            model.info["classifier_from"] = str(classifier_from)
        model.save(out / "model")
    else:
        model = CylinderModel.load(model_path, device)
        if not model.trained_on.get("amortised"):
            raise SystemExit(f"error: {model_path} is not an amortised bundle")
    train_seconds = time.perf_counter() - t0
    if train_only:
        metrics = {"size": size, "seed": seed, "package_version": __version__,
                   "train_seconds": train_seconds, "trained_on": model.trained_on,
                   "bundle_test_metrics": model.info.get("test_metrics"),
                   "n_train": model.info["n_train"], "n_test": model.info["test_metrics"][
                       "n_test"], "config": model.info["simulator"]}
        (out / "metrics.json").write_text(json.dumps(to_json_safe(metrics), indent=2))
        return metrics
    grid = []
    for z in GRID_Z:
        for depth in GRID_DEPTH:
            cs = _clusters(run_size.n_cell, z, depth, rng)
            m, _ = _cell_metrics(model, cs, rng)
            grid.append({"z": z, "log_mstar_min": depth, **m})
    shipped = CylinderModel.load()
    cs = _clusters(run_size.n_cell, *DEFAULT_CELL, rng)
    default_cell = {"z": DEFAULT_CELL[0], "log_mstar_min": DEFAULT_CELL[1],
                    "amortised": _cell_metrics(model, cs, rng)[0],
                    "shipped_single_setup": _cell_metrics(shipped, cs, rng)[0]}
    cases = {}
    for name, (z, depth, log_m) in CASES.items():
        cs = _clusters(n_case or run_size.n_case, z, depth, rng,
                       FlatLogMassPrior(log_m - 0.02, log_m + 0.02))
        cases[name] = {"z": z, "log_mstar_min": depth, "log_m": log_m,
                       **_cell_metrics(model, cs, rng)[0],
                       "single_setup": _cell_metrics(shipped, cs, rng)[0]}
    z, depth, log_m = CASES["deep_nearby"]
    wide = _clusters(run_size.n_case // 2, z, depth, rng,
                     FlatLogMassPrior(log_m - 0.02, log_m + 0.02),
                     aperture=WIDE_APERTURE, v_cut=WIDE_V_CUT)
    t = model.trained_on
    systematics = {label: centre_shift(m, wide, rng, t["aperture"], t["v_cut"],
                                       CENTRE_OFFSETS, VELOCITY_OFFSETS)
                                  + _refine_z_shift(m, wide, z)
                   for label, m in (("amortised", model), ("single_setup", shipped))}
    physics = _cluster_physics({"amortised": model, "single_setup": shipped},
                               run_size.n_case, seed)
    metrics = {"size": size, "seed": seed, "package_version": __version__,
               "train_seconds": train_seconds, "trained_on": model.trained_on,
               "bundle_test_metrics": model.info.get("test_metrics"), "grid": grid,
               "default_cell": default_cell, "cases": cases,
               "centre_and_redshift": systematics, "cluster_physics": physics}
    (out / "metrics.json").write_text(json.dumps(to_json_safe(metrics), indent=2))
    _figure(grid, out / "figures" / "grid.png")
    _report(metrics, out)
    return metrics


def _figure(grid: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), layout="constrained")
    for ax, key, label, cmap, lim in (
            (axes[0], "scatter_dex", r"$\sigma_\epsilon$ [dex]", "viridis", None),
            (axes[1], "bias_dex", "bias [dex]", "RdBu_r", 0.15),
            (axes[2], "hpd_max_abs_dev", "HPD max deviation", "magma_r", None)):
        img = np.array([[c[key] for c in grid if c["z"] == z] for z in GRID_Z])
        kw = {"vmin": -lim, "vmax": lim} if lim else {}
        im = ax.imshow(img, cmap=cmap, origin="lower", aspect="auto", **kw)
        ax.set(xticks=range(len(GRID_DEPTH)), xticklabels=[f"{d:g}" for d in GRID_DEPTH],
               yticks=range(len(GRID_Z)), yticklabels=[f"{z:g}" for z in GRID_Z],
               xlabel=r"survey depth $\log_{10} M_{*,\min}$ [$h^{-1}M_\odot$]",
               ylabel="redshift", title=label)
        for (i, j), v in np.ndenumerate(img):  # black on a white halo: legible on any cell
            ax.text(j, i, f"{v:.3f}", ha="center", va="center", fontsize=8, color="k",
                    path_effects=[patheffects.withStroke(linewidth=2.5, foreground="w")])
        fig.colorbar(im, ax=ax)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _report(m: dict, out: Path) -> None:
    lines = [f"# One amortised model over redshift and survey depth ({m['size']} size)", "",
             f"Trained on {m['trained_on'].get('z_range')} in z, "
             f"{m['trained_on'].get('log_mstar_range')} in log10 M*_min, "
             f"{m['trained_on'].get('velocity_error_range')} km/s redshift errors; flat "
             "prior in log M. Each cell: fresh clusters of the flat prior at that redshift "
             "and depth.", "",
             "| z | log M*_min | n | median galaxies | σ_ε [dex] | bias [dex] | HPD dev | "
             "TARP dev | truth in 68 % |", "|---|---|---|---|---|---|---|---|---|"]
    for c in m["grid"]:
        lines.append(f"| {c['z']:g} | {c['log_mstar_min']:g} | {c['n']} | "
                     f"{c['median_n_gal']:.0f} | {c['scatter_dex']:.3f} | "
                     f"{c['bias_dex']:+.3f} | {c['hpd_max_abs_dev']:.3f} | "
                     f"{c['tarp_max_abs_dev']:.3f} | {c['within_68']:.2f} |")
    n_cell = m["grid"][0]["n"]
    lines += ["", f"A calibrated posterior on {n_cell} clusters shows a max deviation of "
              f"{calibrated_max_dev(n_cell, 0.5):.3f} (median) and above "
              f"{calibrated_max_dev(n_cell, 0.95):.3f} in 5 % of sets "
              "(`calibrated_max_dev`): deviations below that are within sampling noise."]
    d = m["default_cell"]
    lines += ["", f"The shipped model's setup (z = {d['z']}, log M*_min = {d['log_mstar_min']}), "
              "the same clusters:", "",
              "| model | σ_ε [dex] | bias [dex] | HPD dev | TARP dev |", "|---|---|---|---|---|"]
    for name in ("amortised", "shipped_single_setup"):
        c = d[name]
        lines.append(f"| {name} | {c['scatter_dex']:.3f} | {c['bias_dex']:+.3f} | "
                     f"{c['hpd_max_abs_dev']:.3f} | {c['tarp_max_abs_dev']:.3f} |")
    lines += ["", "| case | z | log M*_min | log M | realisations | median galaxies | "
              "truth in 68 % | bias [dex] | single-setup model: in 68 % | its bias [dex] |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for name, c in m["cases"].items():
        s = c["single_setup"]
        lines.append(f"| {name} | {c['z']:g} | {c['log_mstar_min']:g} | {c['log_m']:g} | "
                     f"{c['n']} | {c['median_n_gal']:.0f} | {c['within_68']:.2f} | "
                     f"{c['bias_dex']:+.3f} | {s['within_68']:.2f} | {s['bias_dex']:+.3f} |")
    lines += ["", "Centre and redshift taken as given (deep nearby case, "
              f"{CASES['deep_nearby']}): shift of the posterior medians against the "
              "correctly centred cylinders, median (16-84 %) [dex]:", "",
              "| displacement | amortised | single-setup model |", "|---|---|---|"]
    sys_a, sys_s = (m["centre_and_redshift"][k] for k in ("amortised", "single_setup"))
    for a, b in zip(sys_a, sys_s, strict=True):
        what = (f"centre {a['offset_hinv_mpc']:g} h^-1 Mpc" if a["offset_hinv_mpc"] else
                f"velocity {a['dv_kms']:g} km/s")
        if a.get("refined"):
            what += (", --refine-z (then off the halo's velocity by a median "
                     f"{a['residual_velocity_median_abs_kms']:.0f} km/s)")
        lines.append(f"| {what} | " + " | ".join(
            f"{r['median_shift_dex']:+.3f} ({r['p16_shift_dex']:+.3f}, "
            f"{r['p84_shift_dex']:+.3f})" for r in (a, b)) + " |")
    lines += ["", f"Cluster physics (deep nearby case, {CASES['deep_nearby']}, the same "
              "random stream in every variant): bias [dex] / truth in 68 %:", "",
              "| clusters | median galaxies | amortised | single-setup model |",
              "|---|---|---|---|"]
    for r in m["cluster_physics"]:
        lines.append(f"| {r['variant']} | {r['median_n_gal']:.0f} | " + " | ".join(
            f"{r[k]['bias_dex']:+.3f} / {r[k]['within_68']:.2f}"
            for k in ("amortised", "single_setup")) + " |")
    lines += ["", "![grid](figures/grid.png)", ""]
    (out / "report.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    p = experiment_parser("python -m experiments.amortised", __doc__, SIZES,
                          "results/amortised", fresh=True)
    p.add_argument("--model", type=Path, default=None,
                   help="validate this amortised bundle instead of training one")
    p.add_argument("--workers", type=int, default=1,
                   help="processes simulating the training clusters (the clusters do not "
                        "depend on it)")
    p.add_argument("--train-only", action="store_true",
                   help="train and save DIR/model, validate later with --model DIR/model")
    p.add_argument("--n-case", type=int, default=None, metavar="N",
                   help="realisations per named case (default: the size's, 200 at full "
                        "size)")
    p.add_argument("--classifier-from", type=Path, default=None, metavar="BUNDLE",
                   help="reuse this amortised bundle's membership classifier; train only "
                        "the M-sigma baseline and the NPE")
    args = p.parse_args(argv)
    if args.train_only and args.model is not None:
        p.error("--train-only trains a model; drop --model")
    if args.n_case is not None and args.n_case < 1:
        p.error("--n-case must be at least 1")
    if args.classifier_from is not None and args.model is not None:
        p.error("--classifier-from trains a model; drop --model")
    size = args.size or ("quick" if args.quick else "full")
    m = run(args.out, size, args.seed, args.device, not args.no_progress, args.model,
            args.max_seconds, args.fresh, args.workers, args.train_only,
            args.classifier_from, args.n_case)
    if args.train_only:
        t = m["bundle_test_metrics"]
        print(f"trained in {m['train_seconds']:.0f} s; test sigma_eps {t['scatter_dex']:.3f}, "
              f"bias {t['bias_dex']:+.3f}; wrote {args.out / 'model'}")
        return 0
    worst = max(m["grid"], key=lambda c: abs(c["bias_dex"]))
    print(f"grid: sigma_eps {min(c['scatter_dex'] for c in m['grid']):.3f}-"
          f"{max(c['scatter_dex'] for c in m['grid']):.3f} dex; worst bias "
          f"{worst['bias_dex']:+.3f} (z {worst['z']}, depth {worst['log_mstar_min']}); "
          f"HPD dev up to {max(c['hpd_max_abs_dev'] for c in m['grid']):.3f}")
    for name, c in m["cases"].items():
        print(f"{name}: truth in 68 % interval in {c['within_68']:.2f} of {c['n']}")
    print(f"wrote {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
