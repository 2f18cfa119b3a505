r"""Mock observations of catalogue halos, written as the package's train / val / test datasets.

Usage::

    python -m pyro_clusters catalog --catalog FILE --setup {idealized,cylinder} --out DIR
        [--log-m-min 13.5] [--stellar-mass-min 3.16e9] [--density 6.3e-6] [--seed S]
        [--workers W] [--scheduler ADDRESS] [--columns JSON]

writes DIR/train.h5, DIR/val.h5 (flat mass function), DIR/test.h5 (natural mass function,
three axis views) and DIR/test_flat.h5 (the test halos with the flat mass function, for
calibration checks under the training prior), in the format of
:mod:`pyro_clusters.data.hdf5`; every experiment reads them with ``--data DIR``.

The recipe is Ho et al. 2019 (sections 2.2-2.4 and appendix) with the two changes of
Wang, Thiele & Ho 2026 section 4.1:

- cluster candidates are host halos with M200c >= 10^13.5 h^-1 Msun, galaxies those with
  M* >= 10^9.5 h^-1 Msun; true membership is ``host_id == halo id`` (bound to the halo);
- displacements use the minimum image in the periodic box (Wang, Thiele & Ho 2026) instead of
  padding the box (Ho et al. 2019), so no galaxy is missing or duplicated at a box face;
- centrals of neighbouring halos stay in the cylinder as interlopers (Wang, Thiele & Ho 2026;
  the code of Ho et al. 2019 dropped them);
- each view goes through the simulator's own observation code
  (:func:`pyro_clusters.simulator.observe.observe`): comoving displacements become physical
  (/(1 + z)), v_los is the relativistic composition of Hubble flow and peculiar velocities in
  the catalogue's cosmology (Ho et al. 2019, eqs. 17-22), then the idealized (members at any radius)
  or cylinder (R_proj <= R_ap, |v_los| <= v_cut) selection and N >= N_min.

Cylinders are found in the periodic box of :class:`~pyro_clusters.catalog.box.CatalogBox`
(a KD-tree ball per halo that provably holds every galaxy its cylinders can select). Work
streams over chunks of halos (memory bounded by the chunk), on local threads or on a Dask
cluster when a scheduler address is given.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from pyro_clusters.catalog.box import (
    FLAT_DENSITY,
    STELLAR_MASS_MIN,
    CatalogBox,
    CatalogMockConfig,
    min_image,
)
from pyro_clusters.catalog.schema import Catalog, CatalogError, read_catalog
from pyro_clusters.catalog.sightlines import (
    Sightlines,
    flat_sightlines,
    natural_sightlines,
    sky_basis,
    split_halos,
)
from pyro_clusters.data.clusters import GALAXY_SOURCES, ClusterSet
from pyro_clusters.data.dataset_dir import SPLITS
from pyro_clusters.data.hdf5 import DatasetWriter
from pyro_clusters.simulator.config import ObservationConfig
from pyro_clusters.simulator.observe import observe

__all__ = ["FLAT_DENSITY", "STELLAR_MASS_MIN", "CatalogBox", "CatalogMockConfig",
           "build_datasets", "check_plan", "observe_sightlines", "plot_mass_functions"]

def observe_sightlines(box: CatalogBox, lines: Sightlines, rng: np.random.Generator
                       ) -> ClusterSet:
    """Observe the given views and keep those with N >= N_min.

    Args:
        box: the prepared catalogue.
        lines: views (sorted by halo).
        rng: random generator (velocity errors, incompleteness, galaxy order).

    Returns:
        A :class:`ClusterSet` with the simulator's galaxy columns and the cluster columns
        ``log_m``, ``n_gal``, ``n_members``, ``richness_3d``, ``r200c`` [physical h^-1 Mpc],
        ``vpec_los`` [km/s], ``halo_id``, ``view``, ``los_x``, ``los_y``, ``los_z``.
    """
    src = GALAXY_SOURCES
    parts = []
    for k, (row, direction) in enumerate(zip(lines.halo, lines.direction, strict=True)):
        near = box.candidates(row, direction)
        d = min_image(box.pos[near] - box.halo_pos[row], box.box) / (1.0 + box.z)
        basis = sky_basis(direction)
        parts.append((k, near, d @ basis.T, (box.vel[near] - box.halo_vel[row]) @ basis.T,
                      box.host[near] == box.halo_id[row], float(box.halo_vel[row] @ basis[2])))
    n_views = len(lines)
    if not parts:
        return _empty(box)
    # parts[k] is view k (lines are sorted by halo, views in order)
    view_of = np.concatenate([np.full(p[1].size, p[0]) for p in parts])
    gal = np.concatenate([p[1] for p in parts])
    pos = np.concatenate([p[2] for p in parts])
    vel = np.concatenate([p[3] for p in parts])
    member = np.concatenate([p[4] for p in parts])
    vpec_view = np.array([p[5] for p in parts])
    x, y, v, keep = observe(pos, vel, member, vpec_view[view_of], box.sim, rng, table=box.table,
                            cluster=view_of)
    n_gal = np.bincount(view_of[keep], minlength=n_views)
    ok = n_gal >= box.config.observation.n_min
    keep &= ok[view_of]
    idx = np.flatnonzero(keep)
    idx = idx[np.lexsort((rng.random(idx.size), view_of[idx]))]
    central, host = box.central[gal[idx]], box.host[gal[idx]]
    m = member[idx]
    source = np.where(m, np.where(central, src["central"], src["satellite"]),
                      np.where(host == -1, src["field"],
                               np.where(central, src["neighbour_central"],
                                        src["neighbour_satellite"]))).astype(np.int8)
    views = np.flatnonzero(ok)
    n_kept = n_gal[views]
    halo = lines.halo[views]
    galaxies = {"x_proj": x[idx].astype(np.float32), "y_proj": y[idx].astype(np.float32),
                "v_los": v[idx].astype(np.float32), "member": m, "source": source}
    clusters = {
        "log_m": box.log_m[halo],
        "n_gal": n_kept.astype(np.int64),
        "n_members": np.bincount(view_of[idx], weights=m, minlength=n_views)[views]
        .astype(np.int64),
        "richness_3d": box.richness_3d[halo].astype(np.int64),
        "r200c": box.r200c[halo],
        "vpec_los": vpec_view[views],
        "halo_id": box.halo_id[halo],
        "view": lines.view[views].astype(np.int64),
        **{f"los_{a}": lines.direction[views, i] for i, a in enumerate("xyz")},
    }
    return ClusterSet(clusters, galaxies, np.concatenate([[0], np.cumsum(n_kept)]),
                      _attrs(box))


def _attrs(box: CatalogBox) -> dict:
    obs = box.config.observation
    return {"setup": box.config.setup, "z": box.z, "aperture": obs.aperture,
            "v_cut": obs.v_cut, "n_min": obs.n_min, "source": "catalog"}


def _empty(box: CatalogBox) -> ClusterSet:
    cols = ("log_m", "n_gal", "n_members", "richness_3d", "r200c", "vpec_los", "halo_id",
            "view", "los_x", "los_y", "los_z")
    gal = {"x_proj": np.zeros(0, np.float32), "y_proj": np.zeros(0, np.float32),
           "v_los": np.zeros(0, np.float32), "member": np.zeros(0, bool),
           "source": np.zeros(0, np.int8)}
    return ClusterSet({c: np.zeros(0) for c in cols}, gal, np.zeros(1, np.int64), _attrs(box))


def plan_sightlines(box: CatalogBox) -> tuple[dict[str, Sightlines], dict]:
    """The views of every split: flat train / val / test_flat, natural test (by halo id).

    Returns:
        {split: Sightlines} and a summary (halos per split, per-bin targets and views).
    """
    cfg = box.config
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 1]))
    cand = np.flatnonzero(box.log_m >= cfg.log_m_min)
    masks = split_halos(box.halo_id[cand], cfg.fractions, cfg.seed)
    volume = box.box**3
    lines, summary = {}, {"n_candidates": int(cand.size)}
    for name, mask, share in (("train", masks[0], cfg.fractions[0]),
                              ("val", masks[1], cfg.fractions[1]),
                              ("test_flat", masks[2], cfg.fractions[2])):
        rows = cand[mask]
        lines[name], bins = flat_sightlines(rows, box.log_m[rows], volume, cfg.density * share,
                                            rng, cfg.bin_width, cfg.max_views)
        summary[name] = {"n_halos": int(rows.size), "n_views": len(lines[name]), **bins}
    rows = cand[masks[2]]
    if cfg.test_range is not None:
        lo, hi = cfg.test_range
        rows = rows[(box.log_m[rows] >= lo) & (box.log_m[rows] <= hi)]
    lines["test"] = natural_sightlines(rows)
    summary["test"] = {"n_halos": int(rows.size), "n_views": len(lines["test"])}
    return lines, summary


def check_plan(lines: dict[str, Sightlines], summary: dict, box: CatalogBox) -> None:
    """Raise :class:`CatalogError` naming the first split that would be empty, why, and the fix.

    A flat split holds, per mass bin, density x share x volume x bin width views on average; in
    a small box that is far below one and nothing is drawn.
    """
    cfg = box.config
    volume = box.box**3
    if summary["n_candidates"] == 0:
        raise CatalogError(
            f"no halo of the catalogue has log10 M200c >= {cfg.log_m_min} (the largest is "
            f"{float(box.log_m.max(initial=np.nan)):.2f}): lower --log-m-min")
    for name in SPLITS:
        if len(lines[name]):
            continue
        n_halos = summary[name]["n_halos"]
        if n_halos == 0:
            raise CatalogError(
                f"the {name} set gets none of the {summary['n_candidates']} candidate halos "
                f"(split {cfg.fractions} by halo id"
                + (f", test range {cfg.test_range}" if name == "test" and cfg.test_range else "")
                + "): use a larger box, a lower --log-m-min or other --fractions")
        share = dict(zip(("train", "val", "test_flat"), cfg.fractions, strict=True))[name]
        per_bin = cfg.density * share * volume * cfg.bin_width
        need = 10.0 / (share * volume * cfg.bin_width)
        raise CatalogError(
            f"the {name} set is empty: its flat mass function asks for {per_bin:.3g} views per "
            f"{cfg.bin_width} dex bin (--density {cfg.density:.3g} views h^3 Mpc^-3 dex^-1 x "
            f"share {share:g} x volume {volume:.3g} h^-3 Mpc^3), and none was drawn from its "
            f"{n_halos} halos. For ~10 views per bin in this box give --density {need:.3g} "
            "(views of the rare massive halos are repeated up to --max-views along random "
            "directions), or use a larger box")


def _chunks(lines: Sightlines, chunk_halos: int) -> list[Sightlines]:
    rows, first = np.unique(lines.halo, return_index=True)
    cuts = first[chunk_halos::chunk_halos]
    return [Sightlines(h, d, v) for h, d, v in zip(np.split(lines.halo, cuts),
                                                   np.split(lines.direction, cuts),
                                                   np.split(lines.view, cuts), strict=True)]


@lru_cache(maxsize=2)
def _box_from_file(path: str, columns_json: str, config_json: str) -> CatalogBox:
    """A worker's copy of the prepared catalogue (read once per process)."""
    cfg = json.loads(config_json)
    cfg["observation"] = ObservationConfig(**cfg["observation"])
    for k in ("fractions", "test_range"):
        if cfg[k] is not None:
            cfg[k] = tuple(cfg[k])
    return CatalogBox(read_catalog(path, json.loads(columns_json) or None),
                      CatalogMockConfig(**cfg))


def _remote_chunk(path: str, columns_json: str, config_json: str, lines: Sightlines,
                  seed: np.random.SeedSequence) -> ClusterSet:
    return observe_sightlines(_box_from_file(path, columns_json, config_json), lines,
                              np.random.default_rng(seed))


def build_datasets(catalog: Catalog | str | Path, out: str | Path,
                   config: CatalogMockConfig | None = None, *, columns: dict | None = None,
                   workers: int = 1, scheduler: str | None = None,
                   progress: bool = True) -> dict:
    """Make DIR/train.h5, val.h5, test.h5 and test_flat.h5 from a catalogue.

    Args:
        catalog: a :class:`Catalog` or the path of a catalogue file.
        out: output directory (created).
        config: mock configuration.
        columns: column renaming for :func:`read_catalog` (paths only).
        workers: local threads for the chunks.
        scheduler: address of a Dask scheduler (``tcp://host:8786``): chunks run on its workers,
            each reading the catalogue file (a path, visible to the workers) once.
        progress: show a progress bar per split.

    Returns:
        Summary: paths, views and clusters per split, halos per split, timing of the parts.
    """
    import time

    config = config or CatalogMockConfig()
    t0 = time.perf_counter()
    path = None
    if not isinstance(catalog, Catalog):
        path = str(Path(catalog).resolve())
        catalog = read_catalog(path, columns)
    elif scheduler is not None:
        raise ValueError("a Dask scheduler needs the catalogue as a file path")
    box = CatalogBox(catalog, config)
    t_prep = time.perf_counter() - t0
    lines, summary = plan_sightlines(box)
    check_plan(lines, summary, box)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # "config" carries z and the observation like a simulated dataset's (read back as attrs)
    meta = {"config": {**config.to_dict(), "z": box.z}, "catalog": str(catalog.source),
            "snapshot_redshift": box.snapshot_z,
            "box_size": box.box, "cosmology": box.cosmology, "setup": config.setup,
            "seed": config.seed,
            "units": {"log_m": "log10(M200c / h^-1 Msun)", "x_proj": "h^-1 Mpc (physical)",
                      "y_proj": "h^-1 Mpc (physical)", "v_los": "km/s"}}
    client = None
    if scheduler is not None:
        try:
            from dask.distributed import Client
        except ImportError as err:
            raise ImportError("--scheduler needs dask.distributed: pip install "
                              "'pyro-clusters[dask]'") from err
        client = Client(scheduler)
    seeds = np.random.SeedSequence([config.seed, 2]).spawn(len(SPLITS))
    t1 = time.perf_counter()
    cluster_masses: dict[str, np.ndarray] = {}
    try:
        for name, seed in zip(SPLITS, seeds, strict=True):
            chunks = _chunks(lines[name], config.chunk_halos)
            chunk_seeds = seed.spawn(len(chunks))
            n_clusters, masses = 0, []
            with DatasetWriter(out / f"{name}.h5", {**meta, "split": name,
                                                     "prior": _prior(name, config, box)}) as w, \
                    tqdm(total=len(lines[name]), unit="view", desc=name,
                         disable=not progress) as bar:
                for chunk, cs in _run(chunks, chunk_seeds, box, path, columns, config, workers,
                                      client):
                    w.append(cs)
                    n_clusters += len(cs)
                    masses.append(cs.log_m)
                    bar.update(len(chunk))
                w.set_attrs(n_views=len(lines[name]))
                if n_clusters == 0:
                    raise CatalogError(
                        f"the {name} set has {len(lines[name])} views but no cluster with at "
                        f"least N_min = {config.observation.n_min} galaxies of M* >= "
                        f"{config.stellar_mass_min:.3g} h^-1 Msun in the cylinder: lower "
                        "--n-min or --stellar-mass-min, or --log-m-min for richer clusters only")
            summary[name]["n_clusters"] = n_clusters
            summary[name]["path"] = str(out / f"{name}.h5")
            cluster_masses[name] = np.concatenate(masses) if masses else np.zeros(0)
    finally:
        if client is not None:
            client.close()
    summary["seconds"] = {"prepare": t_prep, "observe": time.perf_counter() - t1}
    (out / "catalog_summary.json").write_text(json.dumps(summary, indent=2))
    summary["figure"] = str(plot_mass_functions(out / "mass_function.png", cluster_masses,
                                                box.log_m[box.log_m >= config.log_m_min],
                                                box.box**3, config))
    return summary


def plot_mass_functions(path: Path, cluster_masses: dict[str, np.ndarray],
                        halo_log_m: np.ndarray, volume: float, config: CatalogMockConfig
                        ) -> Path:
    """The mass functions of the written sets (Ho et al. 2019 Fig. 2), as a PNG.

    Clusters per volume per dex [h^3 Mpc^-3 dex^-1] of each split, divided by the split's share
    of the halos (so every flat split should sit on the target density and the test set on
    three times the catalogue's halo mass function), with the target and the catalogue's halo
    mass function above the candidate threshold.

    Args:
        path: PNG file to write.
        cluster_masses: split -> log10 M of its clusters (after N >= N_min).
        halo_log_m: log10 M of every candidate halo of the catalogue.
        volume: box volume [h^-3 Mpc^3].
        config: the mock configuration (threshold, density, shares).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hi = max([float(halo_log_m.max(initial=config.log_m_min))]
             + [float(m.max(initial=config.log_m_min)) for m in cluster_masses.values()])
    edges = np.arange(config.log_m_min, hi + config.bin_width, config.bin_width)
    centre = 0.5 * (edges[1:] + edges[:-1])
    share = dict(zip(("train", "val", "test"), config.fractions, strict=True))
    share["test_flat"] = share["test"]
    fig, ax = plt.subplots(figsize=(6, 4))
    n_h = np.histogram(halo_log_m, edges)[0]
    ax.step(centre, np.where(n_h > 0, n_h, np.nan) / volume / config.bin_width, where="mid",
            color="k", lw=1, label="catalogue halos (HMF)")
    ax.step(centre, 3 * np.where(n_h > 0, n_h, np.nan) / volume / config.bin_width,
            where="mid", color="0.6", lw=1, ls="--", label="3 × HMF")
    ax.axhline(config.density, color="C3", lw=1, ls=":", label="flat target")
    for i, name in enumerate(SPLITS):
        n = np.histogram(cluster_masses.get(name, np.zeros(0)), edges)[0].astype(float)
        dens = np.where(n > 0, n, np.nan) / volume / config.bin_width / max(share[name], 1e-12)
        ax.step(centre, dens, where="mid", color=f"C{i}", label=f"{name} / its share")
    ax.set(yscale="log", xlabel=r"$\log_{10} M_{200c}$ [$h^{-1} M_\odot$]",
           ylabel=r"clusters per $h^{-3}$ Mpc$^3$ per dex",
           title=f"mock mass functions ({config.setup})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _prior(name: str, config: CatalogMockConfig, box: CatalogBox) -> dict:
    if name == "test":
        lo, hi = config.test_range or (config.log_m_min, float(box.log_m.max(initial=0.0)))
        return {"name": "hmf", "lo": lo, "hi": hi, "z": box.z, "from": "catalogue"}
    return {"name": "flat", "lo": config.log_m_min, "hi": float(box.log_m.max(initial=0.0)),
            "from": "catalogue"}


def _run(chunks, seeds, box, path, columns, config, workers, client):
    """Yield (chunk, ClusterSet) in chunk order, locally or on Dask."""
    if client is not None:
        cj, fj = json.dumps(columns or {}), json.dumps(config.to_dict())
        futures = [client.submit(_remote_chunk, path, cj, fj, c, s, pure=False)
                   for c, s in zip(chunks, seeds, strict=True)]
        for c, f in zip(chunks, futures, strict=True):
            yield c, f.result()
        return
    if workers > 1:
        from joblib import Parallel, delayed

        jobs = (delayed(observe_sightlines)(box, c, np.random.default_rng(s))
                for c, s in zip(chunks, seeds, strict=True))
        results = Parallel(n_jobs=workers, backend="threading", return_as="generator")(jobs)
        yield from zip(chunks, results, strict=True)
        return
    for c, s in zip(chunks, seeds, strict=True):
        yield c, observe_sightlines(box, c, np.random.default_rng(s))
