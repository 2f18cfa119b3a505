r"""The input schema for a user's N-body catalogue: a halo table and a galaxy table in HDF5.

The papers build their mocks from Rockstar host halos with UniverseMachine galaxies (MDPL2 in
Ho et al. 2019 section 2.1, Uchuu in Wang, Thiele & Ho 2026 section 2.1). Such a catalogue enters
the package as one HDF5 file::

    /                    attrs: box_size   [comoving h^-1 Mpc], the periodic box side
                                redshift   of the snapshot
                                cosmology  JSON object of colossus parameter names, at least
                                           {"H0": 67.77, "Om0": 0.307}; optional Ob0, sigma8, ns
    /halos/id            int64     unique halo id
    /halos/m200c         float64   M200c [h^-1 Msun]
    /halos/x, y, z       float64   comoving position [h^-1 Mpc], in [0, box_size)
    /halos/vx, vy, vz    float64   peculiar velocity [km/s]
    /halos/r200c         float64   optional: R200c [comoving h^-1 Mpc] (else from M200c)
    /galaxies/host_id    int64     id of the host halo (the halo itself for a central);
                                   -1 for a galaxy whose host is not in the halo table
    /galaxies/x, y, z    float64   comoving position [h^-1 Mpc], in [0, box_size)
    /galaxies/vx, vy, vz float64   peculiar velocity [km/s]
    /galaxies/stellar_mass float64 M* [h^-1 Msun]
    /galaxies/central    bool      True for the central galaxy of its host

Any other dataset in the two groups is ignored. A table whose columns have other names is read
through ``columns={"halos": {"m200c": "M200c", ...}, "galaxies": {...}}`` (schema name ->
file name), see :func:`read_catalog`. Errors name the file, the table and the column.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

__all__ = ["GALAXY_SCHEMA", "HALO_SCHEMA", "Catalog", "CatalogError", "read_catalog",
           "write_catalog"]

_PHASE_SPACE = {
    "x": ("f", "comoving position [h^-1 Mpc]", True),
    "y": ("f", "comoving position [h^-1 Mpc]", True),
    "z": ("f", "comoving position [h^-1 Mpc]", True),
    "vx": ("f", "peculiar velocity [km/s]", True),
    "vy": ("f", "peculiar velocity [km/s]", True),
    "vz": ("f", "peculiar velocity [km/s]", True),
}
#: Halo columns: name -> (dtype kind, unit / meaning, required).
HALO_SCHEMA = {
    "id": ("i", "unique halo id", True),
    "m200c": ("f", "M200c [h^-1 Msun]", True),
    **_PHASE_SPACE,
    "r200c": ("f", "R200c [comoving h^-1 Mpc]", False),
}
#: Galaxy columns: name -> (dtype kind, unit / meaning, required).
GALAXY_SCHEMA = {
    "host_id": ("i", "id of the host halo, -1 if not in the halo table", True),
    **_PHASE_SPACE,
    "stellar_mass": ("f", "stellar mass [h^-1 Msun]", True),
    "central": ("b", "central galaxy of its host", True),
}
_REQUIRED_COSMOLOGY = ("H0", "Om0")


class CatalogError(ValueError):
    """A catalogue file that does not follow the schema; the message says what is wrong."""


@dataclass
class Catalog:
    """A halo + galaxy catalogue in a periodic box.

    Attributes:
        halos: halo columns (:data:`HALO_SCHEMA`), each (n_halos,).
        galaxies: galaxy columns (:data:`GALAXY_SCHEMA`), each (n_galaxies,).
        box_size: periodic box side [comoving h^-1 Mpc].
        redshift: snapshot redshift.
        cosmology: colossus parameters (``H0`` in km/s/Mpc, ``Om0``, ...).
        source: file it was read from ('' if built in memory).
    """

    halos: dict[str, np.ndarray]
    galaxies: dict[str, np.ndarray]
    box_size: float
    redshift: float
    cosmology: dict
    source: str = ""

    @property
    def n_halos(self) -> int:
        """Rows of the halo table."""
        return len(self.halos["id"])

    @property
    def n_galaxies(self) -> int:
        """Rows of the galaxy table."""
        return len(self.galaxies["host_id"])

    def halo_positions(self) -> np.ndarray:
        """Comoving halo positions [h^-1 Mpc], (n_halos, 3)."""
        return np.column_stack([self.halos[k] for k in "xyz"])

    def halo_velocities(self) -> np.ndarray:
        """Halo peculiar velocities [km/s], (n_halos, 3)."""
        return np.column_stack([self.halos[k] for k in ("vx", "vy", "vz")])

    def galaxy_positions(self) -> np.ndarray:
        """Comoving galaxy positions [h^-1 Mpc], (n_galaxies, 3)."""
        return np.column_stack([self.galaxies[k] for k in "xyz"])

    def galaxy_velocities(self) -> np.ndarray:
        """Galaxy peculiar velocities [km/s], (n_galaxies, 3)."""
        return np.column_stack([self.galaxies[k] for k in ("vx", "vy", "vz")])

    def validate(self) -> Catalog:
        """Check the tables against the schema; raise :class:`CatalogError` naming the problem.

        Checks: required columns present, numeric and finite, one length per table; halo ids
        unique; every galaxy ``host_id`` either -1 or a halo id; positions inside
        [0, box_size); masses positive; at most one central per host; the attributes
        (``box_size`` > 0, ``redshift`` >= 0, a cosmology with ``H0`` and ``Om0``).
        """
        where = f" in {self.source}" if self.source else ""
        if not np.isfinite(self.box_size) or self.box_size <= 0:
            raise CatalogError(f"box_size must be a positive length, got {self.box_size}{where}")
        if not np.isfinite(self.redshift) or self.redshift < 0:
            raise CatalogError(f"redshift must be >= 0, got {self.redshift}{where}")
        missing = [k for k in _REQUIRED_COSMOLOGY if k not in self.cosmology]
        if missing:
            raise CatalogError(f"cosmology attribute lacks {missing}{where} "
                               f"(has {sorted(self.cosmology)})")
        for table, schema, cols in (("halos", HALO_SCHEMA, self.halos),
                                    ("galaxies", GALAXY_SCHEMA, self.galaxies)):
            _check_table(table, schema, cols, where, self.box_size)
        ids = self.halos["id"]
        uniq, counts = np.unique(ids, return_counts=True)
        if uniq.size != ids.size:
            raise CatalogError(f"halos/id is not unique{where}: {uniq[counts > 1][:5].tolist()} "
                               f"appear more than once")
        host = self.galaxies["host_id"]
        known = np.isin(host, uniq) | (host == -1)
        if not known.all():
            bad = np.unique(host[~known])
            raise CatalogError(f"{(~known).sum()} galaxies{where} have a host_id that is neither "
                               f"-1 nor a halo id, e.g. {bad[:5].tolist()}")
        if np.any(self.halos["m200c"] <= 0) or np.any(self.galaxies["stellar_mass"] < 0):
            raise CatalogError(f"halos/m200c must be > 0 and galaxies/stellar_mass >= 0{where}")
        cen = self.galaxies["central"] & (host != -1)
        hosts, n_cen = np.unique(host[cen], return_counts=True)
        if np.any(n_cen > 1):
            raise CatalogError(f"halos {hosts[n_cen > 1][:5].tolist()}{where} have more than one "
                               "central galaxy")
        return self


def _check_table(table: str, schema: dict, cols: dict, where: str, box: float) -> None:
    missing = [k for k, (_, _, req) in schema.items() if req and k not in cols]
    if missing:
        raise CatalogError(f"{table} table{where} lacks column(s) {missing} "
                           f"(has {sorted(cols)}); pass columns= to map other names")
    lengths = {k: len(v) for k, v in cols.items() if k in schema}
    if len(set(lengths.values())) > 1:
        raise CatalogError(f"{table} columns{where} differ in length: {lengths}")
    for k, (kind, _, _) in schema.items():
        if k not in cols:
            continue
        v = cols[k]
        if v.ndim != 1:
            raise CatalogError(f"{table}/{k}{where} must be one-dimensional, has shape {v.shape}")
        if kind == "b":
            if v.dtype.kind not in "bui":
                raise CatalogError(f"{table}/{k}{where} must be boolean, got {v.dtype}")
            continue
        if kind == "i" and v.dtype.kind not in "iu":
            raise CatalogError(f"{table}/{k}{where} must be integer, got {v.dtype}")
        if v.dtype.kind not in "iuf":
            raise CatalogError(f"{table}/{k}{where} must be numeric, got {v.dtype}")
        if kind == "f" and not np.all(np.isfinite(v)):
            raise CatalogError(f"{table}/{k}{where} has {np.sum(~np.isfinite(v))} non-finite "
                               f"value(s), first at row {np.flatnonzero(~np.isfinite(v))[0]}")
    for k in "xyz":
        v = cols[k]
        out = (v < 0) | (v >= box)
        if out.any():
            i = np.flatnonzero(out)[0]
            raise CatalogError(f"{out.sum()} {table} position(s){where} lie outside the box "
                               f"[0, {box}) along {k}, e.g. row {i}: {v[i]}; wrap them with "
                               "np.mod(x, box_size) if the box is periodic")


def _read_group(f: h5py.File, group: str, schema: dict, names: dict[str, str], path: str
                ) -> dict[str, np.ndarray]:
    if group not in f:
        raise CatalogError(f"{path} has no '{group}' group (has {sorted(f)})")
    g = f[group]
    out = {}
    for k in schema:
        name = names.get(k, k)
        if name in g:
            out[k] = np.asarray(g[name][()])
    unknown = set(names) - set(schema)
    if unknown:
        raise CatalogError(f"columns= maps unknown {group} column(s) {sorted(unknown)}; "
                           f"the schema has {list(schema)}")
    if "central" in out:
        out["central"] = out["central"].astype(bool)
    return out


def read_catalog(path: str | os.PathLike, columns: dict[str, dict[str, str]] | None = None
                 ) -> Catalog:
    """Read and validate a catalogue file.

    Args:
        path: HDF5 file in the schema of this module.
        columns: optional renaming, ``{"halos": {schema name: file name}, "galaxies": {...}}``,
            for tables written with other column names (e.g. Rockstar's ``M200c``, ``upid``).

    Returns:
        The validated :class:`Catalog`.

    Raises:
        CatalogError: a missing group, column or attribute, or values that break the schema.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"catalogue {path} does not exist")
    columns = columns or {}
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise CatalogError(f"{path} is not an HDF5 file ({err})") from err
    with f:
        halos = _read_group(f, "halos", HALO_SCHEMA, columns.get("halos", {}), str(path))
        galaxies = _read_group(f, "galaxies", GALAXY_SCHEMA, columns.get("galaxies", {}),
                               str(path))
        missing = [a for a in ("box_size", "redshift", "cosmology") if a not in f.attrs]
        if missing:
            raise CatalogError(f"{path} lacks the root attribute(s) {missing}")
        cosmo = f.attrs["cosmology"]
        try:
            cosmo = json.loads(cosmo.decode() if isinstance(cosmo, bytes) else str(cosmo))
        except json.JSONDecodeError as err:
            raise CatalogError(f"{path}: the cosmology attribute is not a JSON object ({err})"
                               ) from err
        if not isinstance(cosmo, dict):
            raise CatalogError(f"{path}: the cosmology attribute must be a JSON object")
        cat = Catalog(halos, galaxies, float(f.attrs["box_size"]), float(f.attrs["redshift"]),
                      cosmo, str(path))
    return cat.validate()


def write_catalog(path: str | os.PathLike, catalog: Catalog) -> Path:
    """Write a catalogue in the schema (validated first), e.g. for a converted table."""
    catalog.validate()
    path = Path(path)
    with h5py.File(path, "w") as f:
        f.attrs["box_size"] = catalog.box_size
        f.attrs["redshift"] = catalog.redshift
        f.attrs["cosmology"] = json.dumps(catalog.cosmology, sort_keys=True)
        for group, cols in (("halos", catalog.halos), ("galaxies", catalog.galaxies)):
            g = f.create_group(group)
            for k, v in cols.items():
                g.create_dataset(k, data=v, compression="gzip", shuffle=True)
    return path
