"""N-body catalogue mocks: schema, errors, periodic boundaries, KD-tree, sightlines, CLI."""

from __future__ import annotations

import dataclasses
import json

import h5py
import numpy as np
import pytest

from pyro_clusters.catalog import Catalog, CatalogError, read_catalog, write_catalog
from pyro_clusters.catalog.mocks import (
    CatalogBox,
    CatalogMockConfig,
    build_datasets,
    observe_sightlines,
)
from pyro_clusters.catalog.sightlines import (
    AXES,
    Sightlines,
    fibonacci_directions,
    flat_sightlines,
    natural_sightlines,
    random_rotation,
    sky_basis,
    split_halos,
)
from pyro_clusters.catalog.synthetic import main as synthetic_main
from pyro_clusters.catalog.synthetic import synthetic_catalog
from pyro_clusters.cli.catalog import main as catalog_main
from pyro_clusters.data import read_dataset

BOX = 120.0
# small test boxes are shallower than an off-axis cylinder can reach; that is what it says
pytestmark = pytest.mark.filterwarnings("ignore:a cylinder seen off the box axes")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return synthetic_catalog(BOX, seed=3)


def _copy(cat: Catalog, **changes) -> Catalog:
    halos = {k: v.copy() for k, v in cat.halos.items()}
    galaxies = {k: v.copy() for k, v in cat.galaxies.items()}
    return dataclasses.replace(cat, halos=halos, galaxies=galaxies, **changes)


def _views(cat: Catalog, n_halos: int = 25, extra: int = 4) -> Sightlines:
    """Axis views of the most massive halos plus a few Fibonacci views of each."""
    rows = np.argsort(cat.halos["m200c"])[::-1][:n_halos]
    axis = natural_sightlines(rows)
    rng = np.random.default_rng(0)
    dirs = [fibonacci_directions(extra) @ random_rotation(rng).T for _ in rows]
    return Sightlines(np.concatenate([axis.halo, np.repeat(rows, extra)]),
                      np.concatenate([axis.direction, *dirs]),
                      np.concatenate([axis.view, np.tile(3 + np.arange(extra), rows.size)]))


def _sorted_galaxies(cs, i):
    g = cs.galaxies_of(i)
    order = np.lexsort((g["v_los"], g["y_proj"], g["x_proj"]))
    return np.column_stack([g["x_proj"][order], g["y_proj"][order], g["v_los"][order],
                            g["member"][order], g["source"][order]])


# ---------------------------------------------------------------- schema, reader, errors


def test_synthetic_catalogue_follows_the_schema(catalog):
    cat = catalog
    assert cat.n_halos > 1000 and cat.n_galaxies > cat.n_halos
    # the stellar-mass cut keeps exactly the HOD's galaxies: one central per halo + satellites
    host, cen = cat.galaxies["host_id"], cat.galaxies["central"]
    assert np.all(np.bincount(np.searchsorted(np.sort(cat.halos["id"]), host[cen]),
                              minlength=cat.n_halos) == 1)
    bright = cat.galaxies["stellar_mass"] >= 10**9.5
    assert 0.4 < np.mean(bright[host == -1]) < 0.8  # 60 % of the field above the cut
    assert not np.array_equal(cat.halos["id"], np.arange(cat.n_halos))  # ids are not rows


def test_write_read_roundtrip_and_renamed_columns(catalog, tmp_path):
    path = write_catalog(tmp_path / "cat.h5", catalog)
    again = read_catalog(path)
    for k in catalog.halos:
        np.testing.assert_array_equal(again.halos[k], catalog.halos[k])
    for k in catalog.galaxies:
        np.testing.assert_array_equal(again.galaxies[k], catalog.galaxies[k])
    assert again.box_size == BOX and again.cosmology["Om0"] == catalog.cosmology["Om0"]

    # the adapter example: a Rockstar/UniverseMachine-style file with other column names
    rename = {"halos": {"id": "halo_id", "m200c": "M200c", "x": "X", "y": "Y", "z": "Z",
                        "vx": "VX", "vy": "VY", "vz": "VZ"},
              "galaxies": {"host_id": "upid", "stellar_mass": "SM", "central": "is_central"}}
    other = tmp_path / "renamed.h5"
    with h5py.File(path) as src, h5py.File(other, "w") as dst:
        for k, v in src.attrs.items():
            dst.attrs[k] = v
        for group in ("halos", "galaxies"):
            for k in src[group]:
                dst[f"{group}/{rename[group].get(k, k)}"] = src[group][k][()]
    with pytest.raises(CatalogError, match=r"lacks column\(s\) \['id', 'm200c'"):
        read_catalog(other)
    renamed = read_catalog(other, rename)
    np.testing.assert_array_equal(renamed.halos["m200c"], catalog.halos["m200c"])
    np.testing.assert_array_equal(renamed.galaxies["host_id"], catalog.galaxies["host_id"])


@pytest.mark.parametrize("break_it, message", [
    (lambda c: c.halos.pop("vz"), r"halos table .* lacks column\(s\) \['vz'\]"),
    (lambda c: c.galaxies.pop("central"), r"galaxies table .* lacks column\(s\) \['central'\]"),
    (lambda c: c.galaxies["host_id"].__setitem__(slice(0, 3), 987654321),
     r"3 galaxies .* host_id that is neither -1 nor a halo id, e.g. \[987654321\]"),
    (lambda c: c.halos["id"].__setitem__(1, c.halos["id"][0]), r"halos/id is not unique"),
    (lambda c: c.galaxies["x"].__setitem__(7, BOX + 1.0),
     r"galaxies position\(s\) .* outside the box \[0, 120.0\) along x, e.g. row 7"),
    (lambda c: c.halos["z"].__setitem__(2, -0.5), r"halos position\(s\) .* along z, e.g. row 2"),
    (lambda c: c.halos["m200c"].__setitem__(0, np.nan), r"halos/m200c .* non-finite"),
    (lambda c: c.cosmology.pop("Om0"), r"cosmology attribute lacks \['Om0'\]"),
    (lambda c: c.galaxies["central"].__setitem__(
        np.flatnonzero(~c.galaxies["central"] & (c.galaxies["host_id"] >= 0))[0], True),
     r"more than one central"),
])
def test_bad_catalogue_is_named(catalog, break_it, message):
    cat = _copy(catalog, cosmology=dict(catalog.cosmology))
    break_it(cat)
    with pytest.raises(CatalogError, match=message):
        cat.validate()


def test_bad_files_are_named(catalog, tmp_path):
    path = write_catalog(tmp_path / "cat.h5", catalog)
    with h5py.File(path, "a") as f:
        del f.attrs["cosmology"]
    with pytest.raises(CatalogError, match=r"lacks the root attribute\(s\) \['cosmology'\]"):
        read_catalog(path)
    not_hdf5 = tmp_path / "table.csv"
    not_hdf5.write_text("id,m200c\n1,1e14\n")
    with pytest.raises(CatalogError, match="not an HDF5 file"):
        read_catalog(not_hdf5)
    ok = write_catalog(tmp_path / "ok.h5", catalog)
    with pytest.raises(CatalogError, match="unknown halos column"):
        read_catalog(ok, {"halos": {"mvir": "Mvir"}})
    with pytest.raises(FileNotFoundError):
        read_catalog(tmp_path / "missing.h5")


# ---------------------------------------------------------------- geometry


def test_fibonacci_lattice_and_sky_basis():
    d = fibonacci_directions(200)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(d.mean(axis=0), 0.0, atol=0.01)  # balanced on the sphere
    # nearly even: nearest-neighbour angles within a factor 1.5 of each other
    cos = d @ d.T - 2.0 * np.eye(len(d))
    nn = np.arccos(cos.max(axis=1))
    assert nn.max() / nn.min() < 1.5
    for v in [*AXES, *d[:20]]:
        b = sky_basis(v)
        np.testing.assert_allclose(b @ b.T, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(b[2], v / np.linalg.norm(v), atol=1e-12)
        assert np.linalg.det(b) > 0
    np.testing.assert_array_equal(sky_basis(AXES[2]), np.eye(3))  # along z: (x, y) as is


@pytest.mark.parametrize("setup", ["idealized", "cylinder"])
def test_periodic_boundaries_do_not_depend_on_the_box_origin(catalog, setup):
    """Shifting the origin moves halos across the faces; every view must stay identical."""
    shift = np.array([0.5 * BOX + 3.7, 0.31 * BOX, 0.77 * BOX])
    moved = _copy(catalog)
    for t in (moved.halos, moved.galaxies):
        for i, k in enumerate("xyz"):
            t[k] = np.mod(t[k] + shift[i], BOX)
            t[k][t[k] >= BOX] = 0.0
    moved.validate()
    lines = _views(catalog)
    cfg = CatalogMockConfig(setup=setup)
    a = observe_sightlines(CatalogBox(catalog, cfg), lines, np.random.default_rng(1))
    b = observe_sightlines(CatalogBox(moved, cfg), lines, np.random.default_rng(1))
    assert len(a) == len(b) > 30
    np.testing.assert_array_equal(a.n_gal, b.n_gal)
    np.testing.assert_array_equal(a.clusters["halo_id"], b.clusters["halo_id"])
    for i in range(len(a)):
        np.testing.assert_allclose(_sorted_galaxies(a, i), _sorted_galaxies(b, i), atol=2e-3)
    # the test is not vacuous: some observed galaxy lies across a face from its cluster
    # in one of the two boxes (raw displacement > half the box)
    crossing = 0
    for cat in (catalog, moved):
        box = CatalogBox(cat, cfg)
        for row in np.unique(lines.halo):
            near = box.candidates(row, AXES[2])
            raw = box.pos[near] - box.halo_pos[row]
            crossing += np.sum(np.any(np.abs(raw) > BOX / 2, axis=1)
                               & np.all(np.abs(raw - BOX * np.round(raw / BOX)) < 2.0, axis=1))
    assert crossing > 0


def test_cylinder_candidates_miss_nothing(catalog, monkeypatch):
    """The KD-tree candidates give the same views as checking every galaxy of the box."""
    box = CatalogBox(catalog, CatalogMockConfig(setup="cylinder"))
    lines = _views(catalog, n_halos=40, extra=3)
    fast = observe_sightlines(box, lines, np.random.default_rng(2))
    everything = np.arange(box.pos.shape[0])
    monkeypatch.setattr(box, "candidates", lambda row, direction: everything)
    slow = observe_sightlines(box, lines, np.random.default_rng(2))
    assert len(fast) == len(slow) > 100
    np.testing.assert_array_equal(fast.offsets, slow.offsets)
    for k in fast.galaxies:
        np.testing.assert_array_equal(fast.galaxies[k], slow.galaxies[k])
    # interlopers of every kind are there, neighbouring centrals included (Wang, Thiele & Ho 2026)
    src = np.bincount(fast.galaxies["source"], minlength=7)
    assert src[0] == len(fast) and src[1] > 0 and src[4] > 0 and src[5] > 0 and src[6] > 0


def test_cylinder_candidates_cover_velocity_errors(catalog):
    """With redshift errors sigma, the candidates hold every galaxy within v_cut + 6 sigma."""
    from pyro_clusters.catalog.box import min_image
    from pyro_clusters.simulator.observe import observe

    obs = CatalogMockConfig().observation
    noisy = CatalogBox(catalog, CatalogMockConfig(observation=dataclasses.replace(
        obs, velocity_error_kms=150.0)))
    wide = CatalogBox(catalog, CatalogMockConfig(observation=dataclasses.replace(
        obs, v_cut=obs.v_cut + 6 * 150.0)))
    lines = _views(catalog, n_halos=15, extra=2)
    n_checked = 0
    for row, direction in zip(lines.halo, lines.direction, strict=True):
        b = sky_basis(direction)
        d = min_image(wide.pos - wide.halo_pos[row], BOX) / (1.0 + wide.z) @ b.T
        member = wide.host == wide.halo_id[row]
        *_, keep = observe(d, (wide.vel - wide.halo_vel[row]) @ b.T, member,
                           np.full(member.size, wide.halo_vel[row] @ b[2]), wide.sim,
                           np.random.default_rng(0), table=wide.table)
        need = np.flatnonzero(keep)
        assert np.isin(need, noisy.candidates(row, direction)).all()
        n_checked += need.size
    assert n_checked > 1000


def test_views_match_the_simulator_physics(catalog):
    """Idealized catalogue views and simulator clusters share the M-sigma relation.

    The synthetic box populates halos with the simulator's main-halo physics, so the
    dispersion of members at fixed mass must agree once both go through the same observation
    code: a wrong comoving/physical factor or velocity frame shifts log sigma by >= 0.05 dex.
    Tolerance 0.025 dex (about 3 standard errors for ~100 views each).
    """
    from pyro_clusters.simulator import SimulatorConfig, simulate

    cfg = CatalogMockConfig(setup="idealized", log_m_min=13.3)
    box = CatalogBox(catalog, cfg)
    rows = np.flatnonzero(box.log_m >= 13.3)
    cs = observe_sightlines(box, natural_sightlines(rows), np.random.default_rng(3))
    base = SimulatorConfig(setup="idealized")
    sim_cfg = dataclasses.replace(base, halo=dataclasses.replace(
        base.halo, substructure_fraction=0.0, merger_fraction=0.0))
    sim = simulate(np.repeat(box.log_m[rows], 3), sim_cfg, np.random.default_rng(4))

    def offset(c):
        keep = c.n_gal >= 10
        sig = np.array([np.std(c.galaxies_of(i)["v_los"]) for i in np.flatnonzero(keep)])
        return np.mean(np.log10(sig) - c.log_m[keep] / 3.0)  # sigma ∝ M^(1/3)

    assert len(cs) > 60
    assert abs(offset(cs) - offset(sim)) < 0.025


# ---------------------------------------------------------------- sightlines and splits


def test_flat_mass_function_by_down_and_up_sampling():
    rng = np.random.default_rng(0)
    log_m = 13.5 - np.log10(rng.random(3000)) / 1.5  # steep, HMF-like
    log_m = log_m[log_m < 15.0]
    rows = np.arange(log_m.size) * 10
    lines, info = flat_sightlines(rows, log_m, volume=1e6, density=5e-3, rng=rng,
                                  max_views=40)
    target = 5e-3 * 1e6 * 0.1
    views = np.array([b["views"] for b in info["bins"]])
    n_halos = np.array([b["n_halos"] for b in info["bins"]])
    capped = 40 * n_halos < target
    assert np.all(np.abs(views[~capped] - target) <= 1)  # flat where not capped
    assert np.all(views[capped] == 40 * n_halos[capped])
    assert np.any(3 * n_halos > target) and np.any(3 * n_halos < target)  # both regimes
    assert capped.any() and not capped.all()
    assert set(np.unique(lines.halo)) <= set(rows)
    np.testing.assert_allclose(np.linalg.norm(lines.direction, axis=1), 1.0)
    # every view of one halo points elsewhere (axes, then a rotated Fibonacci lattice)
    for h in np.unique(lines.halo)[:50]:
        d = lines.direction[lines.halo == h]
        if len(d) > 1:
            c = d @ d.T - 2 * np.eye(len(d))
            assert c.max() < 0.999


def test_split_by_halo_id_is_disjoint_and_seeded():
    ids = np.random.default_rng(1).permutation(10_000)[:997] + 5
    tr, va, te = split_halos(ids, (0.7, 0.1, 0.2), seed=4)
    assert np.all(tr.astype(int) + va + te == 1)
    assert abs(tr.sum() - 698) <= 1 and abs(te.sum() - 199) <= 1
    again = split_halos(ids[::-1], (0.7, 0.1, 0.2), seed=4)  # order of the table is irrelevant
    np.testing.assert_array_equal(again[0][::-1], tr)
    with pytest.raises(ValueError, match="summing to 1"):
        split_halos(ids, (0.5, 0.1, 0.1), 0)


# ---------------------------------------------------------------- end to end


def test_build_datasets_and_cli(tmp_path, capsys):
    cat_path = tmp_path / "box.h5"
    assert synthetic_main(["--box", "100", "--seed", "5", "--out", str(cat_path)]) == 0
    out = tmp_path / "mocks"
    assert catalog_main(["--catalog", str(cat_path), "--setup", "cylinder", "--out", str(out),
                         "--density", "1e-4", "--no-progress", "--workers", "2"]) == 0
    printed = capsys.readouterr().out
    assert "train:" in printed and "test_flat:" in printed
    sets = {n: read_dataset(out / f"{n}.h5") for n in ("train", "val", "test", "test_flat")}
    for name, (cs, meta) in sets.items():
        assert len(cs) > 0 and cs.attrs["setup"] == "cylinder"
        assert np.all(cs.n_gal >= 10) and meta["split"] == name
        assert np.all(cs.log_m >= 13.5)
    ids = {n: set(cs.clusters["halo_id"]) for n, (cs, _) in sets.items()}
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"]
    assert not ids["val"] & ids["test"] and ids["test_flat"] <= ids["test"] | ids["test_flat"]
    test = sets["test"][0]
    assert set(np.unique(test.clusters["view"])) <= {0, 1, 2}  # natural: axis views only
    assert (out / "mass_function.png").stat().st_size > 10_000  # Ho et al. 2019 Fig. 2
    summary = json.loads((out / "catalog_summary.json").read_text())
    assert summary["test"]["n_views"] == 3 * summary["test"]["n_halos"]

    # the same run with one worker writes the same files (seeded per chunk)
    again = tmp_path / "again"
    summary2 = build_datasets(cat_path, again, CatalogMockConfig(density=1e-4), progress=False)
    assert summary2["train"]["n_clusters"] == summary["train"]["n_clusters"]
    a, _ = read_dataset(again / "train.h5")
    np.testing.assert_array_equal(a.galaxies["v_los"], sets["train"][0].galaxies["v_los"])

    # bad input through the CLI: exit code 2 and the reason
    bad = tmp_path / "bad.h5"
    with h5py.File(cat_path) as src, h5py.File(bad, "w") as dst:
        src.copy("halos", dst)
        src.copy("galaxies", dst)
        dst.attrs["box_size"] = src.attrs["box_size"]
        dst.attrs["redshift"] = src.attrs["redshift"]
    assert catalog_main(["--catalog", str(bad), "--setup", "idealized", "--out",
                         str(tmp_path / "x"), "--no-progress"]) == 2
    assert "cosmology" in capsys.readouterr().err


def test_dask_scheduler_gives_the_same_files(catalog, tmp_path):
    """Chunks run on a Dask cluster (workers read the file) write what a local run writes."""
    distributed = pytest.importorskip("distributed")
    path = write_catalog(tmp_path / "box.h5", catalog)
    cfg = CatalogMockConfig(setup="cylinder", density=1e-4, chunk_halos=16)
    local = build_datasets(path, tmp_path / "local", cfg, progress=False)
    with distributed.LocalCluster(n_workers=2, processes=False, threads_per_worker=1,
                                  dashboard_address=None) as cluster:
        remote = build_datasets(path, tmp_path / "dask", cfg, scheduler=cluster.scheduler_address,
                                progress=False)
    for name in ("train", "test"):
        assert remote[name]["n_clusters"] == local[name]["n_clusters"] > 0
        a, _ = read_dataset(tmp_path / "local" / f"{name}.h5")
        b, _ = read_dataset(tmp_path / "dask" / f"{name}.h5")
        np.testing.assert_array_equal(a.offsets, b.offsets)
        np.testing.assert_array_equal(a.galaxies["v_los"], b.galaxies["v_los"])
    with pytest.raises(ValueError, match="needs the catalogue as a file path"):
        build_datasets(catalog, tmp_path / "x", cfg, scheduler="tcp://127.0.0.1:1")


def test_off_axis_views_in_a_large_box():
    """Fast galaxies far across a large box are candidates of every off-axis view; the
    line-of-sight prefilter must drop the ones that cannot reach the cylinder (without it
    their offsets leave the distance table: 800 h^-1 Mpc box, cluster at d_C = 340)."""
    cat = synthetic_catalog(800.0, seed=2, log_m_min=14.3, field_density=2e-4)
    box = CatalogBox(cat, CatalogMockConfig(setup="cylinder"))
    assert box.fast.size > 0
    lines = _views(cat, n_halos=5, extra=3)
    cs = observe_sightlines(box, lines, np.random.default_rng(0))
    assert len(cs) > 0 and np.all(np.abs(cs.galaxies["v_los"]) <= 2200.0)
