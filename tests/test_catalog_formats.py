"""Catalogue readers (Rockstar / Consistent-Trees, Subfind, UniverseMachine), z = 0, small boxes.

Every fixture is written here from the synthetic catalogue, in the format's own layout and
units, and read back: the reader must give the same halos and galaxies.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from pyro_clusters.catalog import CatalogError
from pyro_clusters.catalog.formats import (
    UNIVERSEMACHINE_DTYPE,
    find_hosts,
    moster13_stellar_mass,
    read_any,
)
from pyro_clusters.catalog.mocks import CatalogMockConfig, build_datasets
from pyro_clusters.catalog.synthetic import synthetic_catalog
from pyro_clusters.cli.catalog import main as catalog_main
from pyro_clusters.data import read_dataset

pytestmark = pytest.mark.filterwarnings("ignore:a cylinder seen off the box axes")
BOX, Z = 80.0, 0.117
H = 0.6777


@pytest.fixture(scope="module")
def synthetic():
    """The synthetic box without its field galaxies (a halo finder puts every galaxy in a
    halo), as plain arrays."""
    cat = synthetic_catalog(BOX, seed=4, z=Z, log_m_min=12.5)
    g = cat.galaxies
    bound = g["host_id"] != -1
    gal = {k: v[bound] for k, v in g.items()}
    # the synthetic exponential tail of satellite M* runs far past any real galaxy; cap it
    # where the Moster et al. 2013 relation can still be inverted
    gal["stellar_mass"] = np.minimum(gal["stellar_mass"], 1e12)
    return cat, gal


def _inverse_moster(mstar):
    """Halo mass [h^-1 Msun] whose Moster et al. 2013 stellar mass is ``mstar`` (grid)."""
    grid = np.logspace(9.0, 17.0, 20001)
    return np.interp(np.log10(mstar), np.log10(moster13_stellar_mass(grid, Z, H)), grid)


def _assert_same(read, cat, gal, m200c_rtol=1e-6, mstar_rtol=1e-6):
    order = np.argsort(read.halos["id"])
    ref = np.argsort(cat.halos["id"])
    np.testing.assert_array_equal(read.halos["id"][order], cat.halos["id"][ref])
    np.testing.assert_allclose(read.halos["m200c"][order], cat.halos["m200c"][ref],
                               rtol=m200c_rtol)
    for k in ("x", "y", "z", "vx", "vy", "vz"):
        np.testing.assert_allclose(read.halos[k][order], cat.halos[k][ref], atol=1e-3)
    assert read.n_galaxies == gal["host_id"].size
    key = np.lexsort((read.galaxies["x"], read.galaxies["host_id"]))
    ref = np.lexsort((gal["x"], gal["host_id"]))
    np.testing.assert_array_equal(read.galaxies["host_id"][key], gal["host_id"][ref])
    np.testing.assert_array_equal(read.galaxies["central"][key], gal["central"][ref])
    np.testing.assert_allclose(read.galaxies["stellar_mass"][key], gal["stellar_mass"][ref],
                               rtol=mstar_rtol)
    np.testing.assert_allclose(read.galaxies["vz"][key], gal["vz"][ref], atol=1e-3)


def _write_hlist(path, cat, gal, with_parents=True):
    """A Consistent-Trees-like list: hosts (the halos) and subhalos (the satellites)."""
    n_h = cat.n_halos
    sat = ~gal["central"]
    host_rows = {int(i): r for r, i in enumerate(cat.halos["id"])}
    cen_mstar = np.zeros(n_h)
    for hid, m in zip(gal["host_id"][~sat], gal["stellar_mass"][~sat], strict=True):
        cen_mstar[host_rows[int(hid)]] = m
    sub_ids = 10**9 + np.arange(sat.sum())
    ids = np.concatenate([cat.halos["id"], sub_ids])
    upid = np.concatenate([np.full(n_h, -1), gal["host_id"][sat]])
    mpeak = _inverse_moster(np.concatenate([cen_mstar, gal["stellar_mass"][sat]]))
    m200c = np.concatenate([cat.halos["m200c"], 0.5 * mpeak[n_h:]])
    pos = np.concatenate([np.column_stack([cat.halos[k] for k in "xyz"]),
                          np.column_stack([gal[k][sat] for k in "xyz"])])
    vel = np.concatenate([np.column_stack([cat.halos[k] for k in ("vx", "vy", "vz")]),
                          np.column_stack([gal[k][sat] for k in ("vx", "vy", "vz")])])
    rvir = 1e3 * 2.0 * np.cbrt(m200c / 1e15)  # comoving h^-1 kpc, only for find_hosts
    a = 1.0 / (1.0 + Z)
    cols = [np.full(ids.size, a), ids, upid, upid, 1.2 * m200c, rvir, *pos.T, *vel.T, m200c,
            mpeak]
    names = "scale(0) id(1) pid(5) upid(6) Mvir(10) Rvir(11) x(17) y(18) z(19) vx(20) " \
            "vy(21) vz(22) M200c(40) Mpeak(62)"
    if not with_parents:
        cols = [ids, 1.2 * m200c, rvir, *pos.T, *vel.T, m200c]
        names = "ID Mvir Rvir X Y Z VX VY VZ M200c"
    header = (f"#{names}\n#a = {a:.6f}\n#Om = 0.307115; Ol = 0.692885; h = {H}\n"
              f"#Box size: {BOX:.6f} Mpc/h\n")
    with open(path, "w") as f:
        f.write(header)
        np.savetxt(f, np.column_stack(cols), fmt="%.10g")
    return path


def test_rockstar_hlist_round_trip(synthetic, tmp_path):
    cat, gal = synthetic
    read = read_any(_write_hlist(tmp_path / "hlist_0.89526.list", cat, gal), "rockstar")
    assert read.box_size == BOX and read.redshift == pytest.approx(Z, abs=1e-5)
    assert read.cosmology["H0"] == pytest.approx(100 * H)
    _assert_same(read, cat, gal, mstar_rtol=1e-3)


def test_find_hosts_follows_rockstar_find_parents():
    box = 50.0
    pos = np.array([[1.0, 1.0, 1.0],      # 0: big host near a corner
                    [49.5, 1.0, 1.0],     # 1: inside 0 across the periodic face
                    [49.4, 1.1, 1.0],     # 2: inside 1 and 0 -> host 0 (most massive)
                    [25.0, 25.0, 25.0],   # 3: isolated host
                    [25.5, 25.0, 25.0],   # 4: inside 3
                    [10.0, 10.0, 10.0]])  # 5: isolated
    radius = np.array([2.0, 0.5, 0.1, 1.0, 0.1, 0.3])
    mass = np.array([100.0, 10.0, 1.0, 50.0, 2.0, 5.0])
    np.testing.assert_array_equal(find_hosts(pos, radius, mass, box), [-1, 0, 0, -1, 3, -1])


def test_rockstar_out_list_without_parents(synthetic, tmp_path):
    """An ``out_*.list`` has no upid: hosts are found from Rvir (find_hosts)."""
    cat, gal = synthetic
    read = read_any(_write_hlist(tmp_path / "out_0.list", cat, gal, with_parents=False),
                    "rockstar")
    assert read.redshift == pytest.approx(Z, abs=1e-5)
    # satellites inside their host's Rvir get it back (most of them; a few sit inside a
    # larger neighbour, or outside Rvir on the NFW tail)
    sat = ~read.galaxies["central"] & (read.galaxies["host_id"] != -1)
    assert sat.sum() >= 0.8 * (~gal["central"]).sum()
    assert set(read.halos["id"]) <= set(cat.halos["id"]) | set(10**9 + np.arange(10**6))


def _write_subfind(folder, cat, gal, gadget4=False):
    """IllustrisTNG-like group catalogue in two chunks (ckpc/h, 1e10 h^-1 Msun, km/s/a)."""
    n_h = cat.n_halos
    row = {int(i): r for r, i in enumerate(cat.halos["id"])}
    grnr = np.array([row[int(h)] for h in gal["host_id"]])
    order = np.lexsort((~gal["central"], grnr))  # subhalos grouped, central first
    grnr, g = grnr[order], {k: v[order] for k, v in gal.items()}
    first = np.searchsorted(grnr, np.arange(n_h))
    first = np.where(np.isin(np.arange(n_h), grnr), first, -1)
    a = 1.0 / (1.0 + Z)
    length = 1e-3 if not gadget4 else 1.0  # Mpc per internal unit
    group = {"GroupPos": np.column_stack([cat.halos[k] for k in "xyz"]) / length,
             "GroupVel": np.column_stack([cat.halos[k] for k in ("vx", "vy", "vz")]) / a,
             "Group_M_Crit200": cat.halos["m200c"] / 1e10, "GroupFirstSub": first}
    mass_type = np.zeros((grnr.size, 6))
    mass_type[:, 4] = g["stellar_mass"] / 1e10
    sub = {"SubhaloPos": np.column_stack([g[k] for k in "xyz"]) / length,
           "SubhaloVel": np.column_stack([g[k] for k in ("vx", "vy", "vz")]),
           "SubhaloGroupNr" if gadget4 else "SubhaloGrNr": grnr, "SubhaloMassType": mass_type}
    folder.mkdir()
    cuts = {"Group": n_h // 2, "Subhalo": grnr.size // 3}
    for chunk in (0, 1):
        with h5py.File(folder / f"fof_subhalo_tab_099.{chunk}.hdf5", "w") as f:
            header = f.create_group("Header")
            header.attrs.update({"BoxSize": BOX / length, "Redshift": Z, "Time": a})
            params = f.create_group("Parameters")
            params.attrs.update({"HubbleParam": H, "Omega0": 0.307115})
            if gadget4:
                params.attrs.update({"UnitLength_in_cm": 3.085678e24,
                                     "UnitMass_in_g": 1.98841e43})
            for name, cols in (("Group", group), ("Subhalo", sub)):
                grp = f.create_group(name)
                part = slice(None, cuts[name]) if chunk == 0 else slice(cuts[name], None)
                for k, v in cols.items():
                    grp.create_dataset(k, data=v[part])
    return folder / "fof_subhalo_tab_099.0.hdf5"


@pytest.mark.parametrize("gadget4", [False, True])
def test_subfind_round_trip(synthetic, tmp_path, gadget4):
    cat, gal = synthetic
    path = _write_subfind(tmp_path / "groups", cat, gal, gadget4)
    read = read_any(path, "subfind")
    assert read.box_size == pytest.approx(BOX) and read.redshift == Z
    # halo ids become group indices (the rows of the group table): map them back
    ids = cat.halos["id"]
    mapped = {k: v.copy() for k, v in read.halos.items()}
    mapped["id"] = ids[read.halos["id"]]
    gal_read = {k: v.copy() for k, v in read.galaxies.items()}
    gal_read["host_id"] = ids[read.galaxies["host_id"]]
    from dataclasses import replace

    _assert_same(replace(read, halos=mapped, galaxies=gal_read), cat, gal, m200c_rtol=1e-9)
    assert read_any(tmp_path / "groups", "subfind").n_galaxies == read.n_galaxies  # folder


def test_universemachine_round_trip(synthetic, tmp_path):
    from colossus.halo import mass_adv

    from pyro_clusters.cosmology import get_cosmology

    cat, gal = synthetic
    get_cosmology()
    mvir = mass_adv.changeMassDefinitionCModel(cat.halos["m200c"], Z, "200c", "vir",
                                               c_model="diemer19")[0]
    rows = {int(i): r for r, i in enumerate(cat.halos["id"])}
    rec = np.zeros(gal["host_id"].size, UNIVERSEMACHINE_DTYPE)
    rec["id"] = np.where(gal["central"], gal["host_id"], 10**9 + np.arange(rec.size))
    rec["upid"] = np.where(gal["central"], -1, gal["host_id"])
    rec["pos"] = np.column_stack([gal[k] for k in ("x", "y", "z", "vx", "vy", "vz")])
    rec["sm"] = gal["stellar_mass"] / H
    cen = np.flatnonzero(gal["central"])
    rec["m"][cen] = mvir[[rows[int(h)] for h in gal["host_id"][cen]]]
    # central positions: the halo's own (the schema puts the central at the halo centre)
    path = tmp_path / f"sfr_catalog_{1 / (1 + Z):.6f}.bin"
    rec.tofile(path)
    with pytest.raises(CatalogError, match="--box-size"):
        read_any(path, "universemachine")
    read = read_any(path, "universemachine", box_size=BOX)
    assert read.redshift == pytest.approx(Z, abs=1e-5)
    _assert_same(read, cat, gal, m200c_rtol=0.03, mstar_rtol=1e-5)


def test_catalog_cli_reads_a_format(synthetic, tmp_path, capsys):
    cat, gal = synthetic
    hlist = _write_hlist(tmp_path / "hlist.list", cat, gal)
    out = tmp_path / "mocks"
    assert catalog_main(["--catalog", str(hlist), "--format", "rockstar", "--setup",
                         "cylinder", "--out", str(out), "--density", "3e-4", "--no-progress",
                         "--write-catalog", str(tmp_path / "schema.h5")]) == 0
    assert "train:" in capsys.readouterr().out
    cs, meta = read_dataset(out / "train.h5")
    assert len(cs) > 0 and meta["snapshot_redshift"] == pytest.approx(Z, abs=1e-5)
    assert read_any(tmp_path / "schema.h5").n_halos == cat.n_halos
    assert catalog_main(["--catalog", str(hlist), "--format", "universemachine", "--setup",
                         "cylinder", "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    assert "--box-size" in capsys.readouterr().err


def test_z0_box_needs_an_observation_redshift(tmp_path):
    cat = synthetic_catalog(60.0, seed=2, z=0.0, log_m_min=13.0)
    with pytest.raises(CatalogError, match=r"z = 0.*--redshift"):
        build_datasets(cat, tmp_path / "a", CatalogMockConfig(log_m_min=13.0), progress=False)
    with pytest.raises(CatalogError, match=r"observe the box at z >= 0\.0"):
        build_datasets(cat, tmp_path / "b", CatalogMockConfig(log_m_min=13.0, redshift=0.005),
                       progress=False)
    summary = build_datasets(cat, tmp_path / "c",
                             CatalogMockConfig(log_m_min=13.0, redshift=0.05, density=1e-3,
                                               observation=_obs(n_min=5)), progress=False)
    assert summary["train"]["n_clusters"] > 0
    cs, meta = read_dataset(tmp_path / "c" / "train.h5")
    assert cs.attrs["z"] == 0.05 and meta["snapshot_redshift"] == 0.0


def _obs(**changes):
    from dataclasses import replace

    from pyro_clusters.simulator.config import ObservationConfig

    return replace(ObservationConfig(), **changes)


def test_small_box_names_the_empty_set_and_the_fix(tmp_path):
    cat = synthetic_catalog(25.0, seed=1, log_m_min=12.0)
    with pytest.raises(CatalogError, match=r"no halo .* lower --log-m-min"):
        build_datasets(cat, tmp_path / "a", CatalogMockConfig(log_m_min=15.0), progress=False)
    with pytest.raises(CatalogError) as err:  # the defaults: 0.007 views per bin expected
        build_datasets(cat, tmp_path / "b", CatalogMockConfig(), progress=False)
    text = str(err.value)
    assert "set is empty" in text and "views per 0.1 dex bin" in text and "--density" in text
    assert not (tmp_path / "b" / "train.h5").exists()
