r"""Readers of the halo and galaxy catalogues users hold, into the package schema.

``pyro-clusters catalog --format FORMAT`` (or :func:`read_any`) turns each into a validated
:class:`~pyro_clusters.catalog.schema.Catalog`;
:func:`~pyro_clusters.catalog.schema.write_catalog` (``pyro-clusters catalog --write-catalog``)
writes it as the schema's HDF5 file. Units are converted to the schema's (comoving h^-1 Mpc,
peculiar km/s, h^-1 Msun).

``schema``
    The package's own HDF5 file (:mod:`pyro_clusters.catalog.schema`).

``rockstar``
    Rockstar halo lists (``out_*.list``) and Consistent-Trees halo lists (``hlist_*.list``):
    ASCII, one halo per row, the column names on the first ``#`` header line (an ``(N)``
    suffix is dropped, case is ignored). Header lines give the box (``#Box size: L Mpc/h`` or
    ``#Full box size = L Mpc/h``), the cosmology (``#Om = ..; Ol = ..; h = ..`` or
    ``#Omega_M = ..; Omega_L = ..; h0 = ..``) and the scale factor (``#a = ..``, or the
    ``scale`` column). Needed columns: ``id``, ``m200c``, ``x y z`` [comoving h^-1 Mpc],
    ``vx vy vz`` [km/s], and ``mvir`` or ``mpeak`` [h^-1 Msun]. Hosts are the rows with
    ``upid == -1`` (else ``pid``); without either column the hosts are found as Rockstar's
    ``find_parents`` does: a halo whose centre lies inside the virial radius (``rvir``,
    comoving h^-1 kpc) of a more massive one is its subhalo (:func:`find_hosts`). Every row is
    a galaxy tracer -- a host is its own central, a subhalo a satellite of its uppermost host --
    with a stellar mass from the Moster, Naab & White 2013 (arXiv:1205.5807) stellar-to-halo
    mass relation at the snapshot redshift, applied to ``mpeak`` where the list has it (the
    standard abundance-matching proxy; Consistent-Trees lists do), else to ``mvir``. A halo list
    carries no galaxies of its own, so this is an approximation (no scatter, no orphans):
    document it with your results.

``subfind``
    Subfind / FoF group catalogues in HDF5 (IllustrisTNG, Gadget-4: ``fof_subhalo_tab_*.hdf5``,
    one file or its chunks ``*.0.hdf5, *.1.hdf5, ...``, or a folder of them). Halos are the FoF
    groups (id = group index; ``Group_M_Crit200``, ``GroupPos``, ``GroupVel`` times a, as
    IllustrisTNG stores km/s/a; ``Group_R_Crit200`` as ``r200c``); galaxies are the subhalos
    (``SubhaloPos``, peculiar ``SubhaloVel``, host ``SubhaloGrNr`` or Gadget-4's
    ``SubhaloGroupNr``; the central is the group's ``GroupFirstSub``; subhalos with
    ``SubhaloFlag == 0`` are dropped), stellar mass ``SubhaloMassType[:, 4]`` -- or, in a
    dark-matter-only run where every stellar mass is zero, Moster et al. 2013 applied to
    ``SubhaloMass``. Units from the file's ``Parameters`` (``UnitLength_in_cm``,
    ``UnitMass_in_g``) when present, else IllustrisTNG's (ckpc/h, 10^10 h^-1 Msun). Conventions:
    Nelson et al. 2019 (arXiv:1812.05609), the IllustrisTNG data release.

``universemachine``
    UniverseMachine binary catalogues ``sfr_catalog_A.bin`` (Behroozi et al. 2019,
    arXiv:1806.07893; the record layout of its ``loader.py``): positions and velocities
    ``pos[0:3]`` [comoving h^-1 Mpc], ``pos[3:6]`` [km/s], ``upid`` (-1 for hosts), virial mass
    ``m`` [h^-1 Msun] and true stellar mass ``sm`` [Msun]. The box side is not in the file
    (``box_size=``); the scale factor comes from the file name. UniverseMachine has no M200c: a
    host's M200c is its virial mass converted with the Diemer & Joyce 2019 concentrations
    (colossus ``changeMassDefinitionCModel``).
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

import h5py
import numpy as np

from pyro_clusters.catalog.schema import Catalog, CatalogError, read_catalog
from pyro_clusters.cosmology import MDPL2_PARAMS, colossus_cosmology
from pyro_clusters.simulator.depth import moster13_stellar_mass

__all__ = ["FORMATS", "UNIVERSEMACHINE_DTYPE", "find_hosts",
           "moster13_stellar_mass", "read_any", "read_rockstar", "read_subfind",
           "read_universemachine"]

#: the record of a UniverseMachine ``sfr_catalog_*.bin`` (its data release's ``loader.py``)
UNIVERSEMACHINE_DTYPE = np.dtype([
    ("id", "<i8"), ("descid", "<i8"), ("upid", "<i8"), ("flags", "<i4"),
    ("uparent_dist", "<f4"), ("pos", "<f4", (6,)), ("vmp", "<f4"), ("lvmp", "<f4"),
    ("mp", "<f4"), ("m", "<f4"), ("v", "<f4"), ("r", "<f4"), ("rank1", "<f4"),
    ("rank2", "<f4"), ("ra", "<f4"), ("rarank", "<f4"), ("A_UV", "<f4"), ("sm", "<f4"),
    ("icl", "<f4"), ("sfr", "<f4"), ("obs_sm", "<f4"), ("obs_sfr", "<f4"), ("obs_uv", "<f4"),
    ("empty", "<f4")])

_MPC_CM = 3.085678e24
_MSUN_G = 1.98841e33


def find_hosts(pos: np.ndarray, radius: np.ndarray, mass: np.ndarray, box: float) -> np.ndarray:
    """Row of each halo's uppermost host (-1 for hosts), as Rockstar's ``find_parents``.

    A halo is a subhalo of the most massive halo whose radius contains its centre (periodic
    box); parents are followed up to a host.

    Args:
        pos: comoving positions [h^-1 Mpc], (n, 3).
        radius: comoving radii [h^-1 Mpc], (n,).
        mass: masses, (n,) (any unit; only the order counts).
        box: periodic box side [h^-1 Mpc].

    Returns:
        (n,) int64 rows of the hosts, -1 for a halo inside no larger one.
    """
    from scipy.spatial import cKDTree

    n = len(mass)
    parent = np.full(n, -1, np.int64)
    if n == 0:
        return parent
    pts = np.mod(pos, box)
    pts[pts >= box] = 0.0
    tree = cKDTree(pts, boxsize=box)
    balls = tree.query_ball_point(pts, radius)
    owner = np.repeat(np.arange(n), [len(b) for b in balls])
    inside = np.concatenate([np.asarray(b, np.int64) for b in balls]) if n else owner
    pair = mass[owner] > mass[inside]
    owner, inside = owner[pair], inside[pair]
    # for each contained halo, the most massive container
    order = np.lexsort((-mass[owner], inside))
    owner, inside = owner[order], inside[order]
    first = np.r_[True, inside[1:] != inside[:-1]] if inside.size else inside.astype(bool)
    parent[inside[first]] = owner[first]
    return _uppermost(parent)


def _uppermost(parent: np.ndarray) -> np.ndarray:
    """Follow parent rows (-1: none) to the top of each chain."""
    top = parent.copy()
    for _ in range(64):  # a handful of levels in practice
        up = np.where(top >= 0, parent[np.maximum(top, 0)], -1)
        deeper = up >= 0
        if not deeper.any():
            break
        top[deeper] = up[deeper]
    return top


# -- Rockstar / Consistent-Trees ----------------------------------------------------------------

def _rockstar_header(path: Path) -> tuple[list[str], dict]:
    """Column names (lower case, ``(N)`` suffixes dropped) and header values of a halo list."""
    names, info = None, {}
    with open(path) as f:
        for line in f:
            if not line.startswith("#"):
                break
            text = line[1:].strip()
            if names is None and re.match(r"(scale\(0\)\s+)?id\b", text, flags=re.I):
                names = [re.sub(r"\(\d+\)$", "", t).lower() for t in text.split()]
                continue
            for key, pattern in (("box", r"box size\s*[:=]\s*([\d.eE+-]+)"),
                                 ("a", r"^a\s*=\s*([\d.eE+-]+)"),
                                 ("Om0", r"\b(?:om|omega_m)\s*=\s*([\d.eE+-]+)"),
                                 ("h", r"\b(?:h|h0)\s*=\s*([\d.eE+-]+)")):
                m = re.search(pattern, text, flags=re.I)
                if m:
                    info[key] = float(m.group(1))
    if names is None:
        raise CatalogError(f"{path}: no '#ID ...' (or '#scale(0) id(1) ...') header line naming "
                           "the columns; is it a Rockstar or Consistent-Trees halo list?")
    return names, info


def read_rockstar(path: str | os.PathLike, box_size: float | None = None,
                  redshift: float | None = None, cosmology: dict | None = None) -> Catalog:
    """Read a Rockstar ``out_*.list`` or Consistent-Trees ``hlist_*.list`` halo list.

    Args:
        path: the ASCII halo list.
        box_size: box side [comoving h^-1 Mpc] (default: the header's).
        redshift: snapshot redshift (default: from the header's or the rows' scale factor).
        cosmology: colossus parameters (default: ``H0``/``Om0`` from the header, else the
            package's MDPL2 values).

    Returns:
        the validated :class:`Catalog` (hosts as halos; every row as a galaxy tracer with a
        Moster et al. 2013 stellar mass; see the module docstring).

    Raises:
        CatalogError: a missing column or header value, naming it and the option that supplies
            it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"catalogue {path} does not exist")
    names, info = _rockstar_header(path)
    col = {n: i for i, n in reversed(list(enumerate(names)))}  # first occurrence wins
    need = ["id", "m200c", "x", "y", "z", "vx", "vy", "vz"]
    missing = [n for n in need if n not in col]
    mass_col = "mpeak" if "mpeak" in col else "mvir" if "mvir" in col else None
    if missing or mass_col is None:
        raise CatalogError(f"{path} lacks column(s) {missing + ([] if mass_col else ['mvir'])} "
                           f"(has {names})")
    parent_col = "upid" if "upid" in col else "pid" if "pid" in col else None
    use = sorted({col[n] for n in need + [mass_col, "mvir" if "mvir" in col else mass_col]}
                 | ({col[parent_col]} if parent_col else set())
                 | ({col["rvir"]} if "rvir" in col else set())
                 | ({col["scale"]} if "scale" in col else set()))
    data = np.loadtxt(path, comments="#", usecols=use, ndmin=2)
    get = {n: data[:, use.index(col[n])] for n in col if col[n] in use}
    box = box_size if box_size is not None else info.get("box")
    if box is None:
        raise CatalogError(f"{path}: no box size in the header; give it (--box-size)")
    if redshift is None:
        a = info.get("a", float(get["scale"][0]) if "scale" in get and len(data) else None)
        if a is None:
            raise CatalogError(f"{path}: no scale factor in the header; give the snapshot "
                               "redshift (--snapshot-redshift)")
        redshift = max(1.0 / a - 1.0, 0.0)
    if cosmology is None:
        cosmology = {"H0": 100.0 * info.get("h", MDPL2_PARAMS["H0"] / 100.0),
                     "Om0": info.get("Om0", MDPL2_PARAMS["Om0"])}
    ids = get["id"].astype(np.int64)
    pos = np.mod(np.column_stack([get[k] for k in "xyz"]), box)
    pos[pos >= box] = 0.0
    vel = np.column_stack([get[k] for k in ("vx", "vy", "vz")])
    if parent_col is not None:
        upid = get[parent_col].astype(np.int64)
        if parent_col == "pid":  # follow pid up to the host
            order = np.argsort(ids)
            at = np.minimum(np.searchsorted(ids[order], upid), ids.size - 1)
            found = (upid != -1) & (ids[order][at] == upid)
            top = _uppermost(np.where(found, order[at], -1))
            upid = np.where(top >= 0, ids[np.maximum(top, 0)], -1)
    else:
        if "rvir" not in get:
            raise CatalogError(f"{path} has neither upid/pid nor rvir: hosts cannot be told "
                               "from subhalos")
        hosts = find_hosts(pos, get["rvir"] / 1000.0, get["mvir" if "mvir" in get else
                                                            mass_col], box)
        upid = np.where(hosts >= 0, ids[np.maximum(hosts, 0)], -1)
    is_host = upid == -1
    h = cosmology["H0"] / 100.0
    halos = {"id": ids[is_host], "m200c": get["m200c"][is_host],
             **{k: pos[is_host, i] for i, k in enumerate("xyz")},
             **{k: vel[is_host, i] for i, k in enumerate(("vx", "vy", "vz"))}}
    keep_halo = halos["m200c"] > 0
    halos = {k: v[keep_halo] for k, v in halos.items()}
    host_ids = set(halos["id"].tolist())
    host_id = np.where(is_host, ids, upid)
    host_id = np.where(np.isin(host_id, list(host_ids)), host_id, -1)
    galaxies = {"host_id": host_id.astype(np.int64),
                **{k: pos[:, i] for i, k in enumerate("xyz")},
                **{k: vel[:, i] for i, k in enumerate(("vx", "vy", "vz"))},
                "stellar_mass": moster13_stellar_mass(get[mass_col], redshift, h),
                "central": is_host & (host_id != -1)}
    return Catalog(halos, galaxies, float(box), float(redshift), cosmology,
                   str(path)).validate()


# -- Subfind / FoF (IllustrisTNG, Gadget-4) ---------------------------------------------------

def _subfind_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(path.glob("fof_subhalo_tab_*.hdf5"), key=_chunk_number)
    elif re.search(r"\.\d+\.hdf5$", path.name):
        stem = re.sub(r"\.\d+\.hdf5$", "", str(path))
        files = sorted((Path(p) for p in glob.glob(glob.escape(stem) + ".*.hdf5")),
                       key=_chunk_number)
    else:
        files = [path]
    if not files or not all(f.is_file() for f in files):
        raise FileNotFoundError(f"no Subfind group catalogue at {path}")
    return files


def _chunk_number(p: Path) -> int:
    m = re.search(r"\.(\d+)\.hdf5$", p.name)
    return int(m.group(1)) if m else 0


def read_subfind(path: str | os.PathLike, box_size: float | None = None,
                 redshift: float | None = None, cosmology: dict | None = None) -> Catalog:
    """Read a Subfind / FoF group catalogue (IllustrisTNG, Gadget-4) in HDF5.

    Args:
        path: a ``fof_subhalo_tab_*.hdf5`` file, one chunk of a split one (all chunks are
            read), or the folder holding them.
        box_size: box side [comoving h^-1 Mpc] (default: the header's, converted).
        redshift: snapshot redshift (default: the header's).
        cosmology: colossus parameters (default: ``HubbleParam`` and ``Omega0`` of the file).

    Returns:
        the validated :class:`Catalog` (FoF groups as halos, subhalos as galaxies).
    """
    files = _subfind_files(Path(path))
    parts: dict[str, list[np.ndarray]] = {}
    with h5py.File(files[0], "r") as f:
        attrs = {**dict(f["Parameters"].attrs)} if "Parameters" in f else {}
        attrs.update(dict(f["Header"].attrs) if "Header" in f else {})
    if not attrs:
        raise CatalogError(f"{files[0]} has no Header: is it a Subfind group catalogue?")
    length = float(attrs.get("UnitLength_in_cm", 3.085678e21)) / _MPC_CM  # -> Mpc
    mass_unit = float(attrs.get("UnitMass_in_g", 1e10 * _MSUN_G)) / _MSUN_G  # -> Msun
    wanted = {"Group": ("GroupPos", "GroupVel", "Group_M_Crit200", "Group_R_Crit200",
                        "GroupFirstSub"),
              "Subhalo": ("SubhaloPos", "SubhaloVel", "SubhaloGrNr", "SubhaloGroupNr",
                          "SubhaloMassType", "SubhaloMass", "SubhaloFlag")}
    for file in files:
        with h5py.File(file, "r") as f:
            for group, names in wanted.items():
                if group not in f:
                    continue
                for name in names:
                    if name in f[group]:
                        parts.setdefault(name, []).append(np.asarray(f[group][name][()]))
    cols = {k: np.concatenate(v) for k, v in parts.items()}
    need = ["GroupPos", "GroupVel", "Group_M_Crit200", "GroupFirstSub", "SubhaloPos",
            "SubhaloVel"]
    missing = [n for n in need if n not in cols]
    if "SubhaloGrNr" not in cols and "SubhaloGroupNr" not in cols:
        missing.append("SubhaloGrNr")
    if missing:
        raise CatalogError(f"{files[0]} lacks dataset(s) {missing}")
    a = float(attrs.get("Time", 1.0 / (1.0 + float(attrs.get("Redshift", 0.0)))))
    z = float(attrs.get("Redshift", 1.0 / a - 1.0)) if redshift is None else redshift
    box = float(attrs["BoxSize"]) * length if box_size is None else box_size
    if cosmology is None:
        if "HubbleParam" not in attrs or "Omega0" not in attrs:
            raise CatalogError(f"{files[0]}: no HubbleParam / Omega0 in its Header or "
                               "Parameters; pass cosmology=")
        cosmology = {"H0": 100.0 * float(attrs["HubbleParam"]), "Om0": float(attrs["Omega0"])}
    n_groups = len(cols["Group_M_Crit200"])
    m200 = cols["Group_M_Crit200"].astype(float) * mass_unit
    keep = m200 > 0
    ids = np.arange(n_groups, dtype=np.int64)
    gpos = np.mod(cols["GroupPos"].astype(float) * length, box)
    gpos[gpos >= box] = 0.0
    gvel = cols["GroupVel"].astype(float) * a  # km/s/a -> peculiar km/s
    halos = {"id": ids[keep], "m200c": m200[keep],
             **{k: gpos[keep, i] for i, k in enumerate("xyz")},
             **{k: gvel[keep, i] for i, k in enumerate(("vx", "vy", "vz"))}}
    if "Group_R_Crit200" in cols:
        halos["r200c"] = cols["Group_R_Crit200"][keep].astype(float) * length
    grnr = (cols["SubhaloGrNr"] if "SubhaloGrNr" in cols else cols["SubhaloGroupNr"]
            ).astype(np.int64)
    n_sub = len(grnr)
    flag = cols.get("SubhaloFlag", np.ones(n_sub)).astype(bool)
    first = cols["GroupFirstSub"].astype(np.int64)
    central = np.zeros(n_sub, bool)
    central[first[(first >= 0) & (first < n_sub)]] = True
    if "SubhaloMassType" in cols and np.any(cols["SubhaloMassType"][:, 4] > 0):
        mstar = cols["SubhaloMassType"][:, 4].astype(float) * mass_unit
    elif "SubhaloMass" in cols:
        mstar = moster13_stellar_mass(cols["SubhaloMass"].astype(float) * mass_unit, z,
                                      cosmology["H0"] / 100.0)
    else:
        raise CatalogError(f"{files[0]} has neither SubhaloMassType nor SubhaloMass")
    host = np.where(keep[np.clip(grnr, 0, n_groups - 1)] & (grnr >= 0), grnr, -1)
    spos = np.mod(cols["SubhaloPos"].astype(float) * length, box)
    spos[spos >= box] = 0.0
    svel = cols["SubhaloVel"].astype(float)
    galaxies = {"host_id": host[flag], **{k: spos[flag, i] for i, k in enumerate("xyz")},
                **{k: svel[flag, i] for i, k in enumerate(("vx", "vy", "vz"))},
                "stellar_mass": mstar[flag], "central": (central & (host != -1))[flag]}
    return Catalog(halos, galaxies, float(box), max(float(z), 0.0), cosmology,
                   str(files[0])).validate()


# -- UniverseMachine --------------------------------------------------------------------------

def read_universemachine(path: str | os.PathLike, box_size: float | None = None,
                         redshift: float | None = None, cosmology: dict | None = None
                         ) -> Catalog:
    """Read a UniverseMachine ``sfr_catalog_A.bin`` (binary records, :data:`UNIVERSEMACHINE_DTYPE`).

    Args:
        path: the binary catalogue.
        box_size: box side [comoving h^-1 Mpc]; required (not in the file).
        redshift: snapshot redshift (default: 1/A - 1 from the file name).
        cosmology: colossus parameters (default: the package's MDPL2 values, those of the
            UniverseMachine boxes Bolshoi-Planck, SMDPL and MDPL2).

    Returns:
        the validated :class:`Catalog` (hosts with M200c from their virial mass; every record a
        galaxy with its true stellar mass).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"catalogue {path} does not exist")
    if box_size is None:
        raise CatalogError("a UniverseMachine catalogue does not carry its box size: give it "
                           "(--box-size; 250 for Bolshoi-Planck, 400 for SMDPL, 1000 for MDPL2)")
    if path.stat().st_size % UNIVERSEMACHINE_DTYPE.itemsize:
        raise CatalogError(f"{path} is not a whole number of {UNIVERSEMACHINE_DTYPE.itemsize}-"
                           "byte UniverseMachine records")
    if redshift is None:
        m = re.search(r"_(\d+\.\d+)\.bin$", path.name)
        if m is None:
            raise CatalogError(f"{path}: no scale factor in the file name; give the snapshot "
                               "redshift (--snapshot-redshift)")
        redshift = max(1.0 / float(m.group(1)) - 1.0, 0.0)
    cosmology = cosmology or {k: v for k, v in MDPL2_PARAMS.items() if k != "relspecies"}
    rec = np.fromfile(path, dtype=UNIVERSEMACHINE_DTYPE)
    h = cosmology["H0"] / 100.0
    box = float(box_size)
    pos = np.mod(rec["pos"][:, :3].astype(float), box)
    pos[pos >= box] = 0.0
    vel = rec["pos"][:, 3:].astype(float)
    is_host = rec["upid"] == -1
    ids = rec["id"].astype(np.int64)
    m200c = _mvir_to_m200c(rec["m"][is_host].astype(float), redshift, cosmology)
    halos = {"id": ids[is_host], "m200c": m200c,
             **{k: pos[is_host, i] for i, k in enumerate("xyz")},
             **{k: vel[is_host, i] for i, k in enumerate(("vx", "vy", "vz"))}}
    host_id = np.where(is_host, ids, rec["upid"].astype(np.int64))
    host_id = np.where(np.isin(host_id, halos["id"]), host_id, -1)
    galaxies = {"host_id": host_id, **{k: pos[:, i] for i, k in enumerate("xyz")},
                **{k: vel[:, i] for i, k in enumerate(("vx", "vy", "vz"))},
                "stellar_mass": rec["sm"].astype(float) * h,  # Msun -> h^-1 Msun
                "central": is_host}
    return Catalog(halos, galaxies, box, float(redshift), cosmology, str(path)).validate()


def _mvir_to_m200c(mvir: np.ndarray, z: float, cosmology: dict) -> np.ndarray:
    """M200c [h^-1 Msun] of halos of virial mass ``mvir`` [h^-1 Msun] (Diemer & Joyce 2019 c)."""
    from colossus.cosmology import cosmology as col
    from colossus.halo import mass_adv

    previous = col.current_cosmo
    col.setCurrent(colossus_cosmology(cosmology))
    try:
        m200c, _, _ = mass_adv.changeMassDefinitionCModel(mvir, z, "vir", "200c",
                                                          c_model="diemer19")
    finally:
        if previous is not None:
            col.setCurrent(previous)
    return np.asarray(m200c, float)


#: format name -> reader(path, box_size=, redshift=, cosmology=) (``schema`` takes columns=)
FORMATS = {"schema": None, "rockstar": read_rockstar, "subfind": read_subfind,
           "universemachine": read_universemachine}


def read_any(path: str | os.PathLike, format: str = "schema", *, columns: dict | None = None,
             box_size: float | None = None, redshift: float | None = None,
             cosmology: dict | None = None) -> Catalog:
    """Read a catalogue of any supported format (module docstring) into the schema.

    Args:
        path: the file (or, for ``subfind``, a folder of chunks).
        format: one of :data:`FORMATS`.
        columns: column renaming of the ``schema`` format (:func:`read_catalog`).
        box_size: box side [comoving h^-1 Mpc] where the file lacks it (or to override it).
        redshift: snapshot redshift, likewise.
        cosmology: colossus parameters, likewise.

    Returns:
        the validated :class:`Catalog`.
    """
    if format not in FORMATS:
        raise CatalogError(f"unknown catalogue format {format!r}; choose from {list(FORMATS)}")
    if format == "schema":
        if box_size is not None or redshift is not None or cosmology is not None:
            raise CatalogError("the schema file carries its box size, redshift and cosmology")
        return read_catalog(path, columns)
    if columns:
        raise CatalogError("column renaming applies to the schema format only")
    return FORMATS[format](path, box_size=box_size, redshift=redshift, cosmology=cosmology)
