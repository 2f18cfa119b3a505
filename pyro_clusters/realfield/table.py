r"""Real fields: a redshift table around a cluster -> the projected phase space the models see.

A table of galaxies (RA and Dec in degrees, a redshift z or c z in km/s) and the cluster centre
(RA, Dec, z) go through the same observation model as the mocks (Ho et al. 2019 section 2.2 and
appendix eqs. 15-22):

- positions: tangent-plane (gnomonic) offsets from the centre times the angular-diameter
  distance of the cluster in the simulator's cosmology (:mod:`pyro_clusters.cosmology`,
  MDPL2/Planck-2013-like), giving x_proj (towards increasing RA) and y_proj (north) in physical
  h^-1 Mpc;
- velocities: v_los = v_gal (-) v_cl, the relativistic difference of the galaxy's and the
  cluster's recession velocities, each from its observed redshift
  (:func:`pyro_clusters.cosmology.sky_to_projected`, the exact inverse of the placement used
  to put mocks on the sky);
- the cylinder cut R_proj <= R_ap and |v_los| <= v_cut of the model's training set.

Tables are read with astropy's ASCII reader (CSV, whitespace-separated, with or without
comment lines), so anything it reads is accepted. Rows with a missing or NaN value in a used
column are dropped and counted, never silently; a non-numeric value is an error naming the
column and the row.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pyro_clusters.cosmology import C_KMS, projected_to_sky, sky_to_projected
from pyro_clusters.data.clusters import ClusterSet

__all__ = ["COLUMN_ALIASES", "HOURS_SPREAD_RATIO", "FieldObservation", "ObservationError",
           "RedshiftTable", "TINY_FIELD_FRACTION", "check_center", "cluster_to_table",
           "find_column", "numeric_column", "observe_field", "ra_in_degrees", "read_ascii_table",
           "read_redshift_table", "write_redshift_table"]

#: Column names recognised without being told (case-insensitive), in order of preference.
COLUMN_ALIASES = {
    "ra": ("ra", "raj2000", "_raj2000", "ra_deg", "radeg", "alpha"),
    "dec": ("dec", "de", "dej2000", "decj2000", "_dej2000", "dec_deg", "decdeg", "delta"),
    "z": ("z", "redshift", "zspec", "z_spec", "zhelio", "z_helio"),
    "cz": ("cz", "vhelio", "v_helio", "velocity", "vel", "v"),
}


class ObservationError(ValueError):
    """A table or centre that cannot give a phase-space diagram; the message says why."""


@dataclass
class RedshiftTable:
    """Galaxies of a redshift table with every used value present.

    Attributes:
        ra: right ascension [deg], (n,).
        dec: declination [deg], (n,).
        cz: c times the observed redshift [km/s], (n,).
        row: row number of each galaxy in the file's data (0-based), (n,).
        n_rows: data rows in the file.
        n_dropped: rows dropped for a missing or NaN value in a used column.
        columns: role (``ra``, ``dec``, ``z`` or ``cz``) -> column name used.
        source: file name.
        n_negative: rows dropped for a negative redshift (or c z): catalogues mark a missing
            redshift with -1, -99 or -9999, and no cluster member has z < 0.
    """

    ra: np.ndarray
    dec: np.ndarray
    cz: np.ndarray
    row: np.ndarray
    n_rows: int
    n_dropped: int
    columns: dict[str, str]
    source: str = ""
    n_negative: int = 0


def find_column(names: list[str], role: str, given: str | None) -> str | None:
    """The column of ``role`` (``ra``, ``dec``, ``z``, ``cz``): ``given``, else an alias.

    Args:
        names: the table's column names.
        role: a key of :data:`COLUMN_ALIASES`.
        given: the user's column name (matched case-insensitively) or None.

    Returns:
        the column name, or None when ``given`` is None and no alias is in the table.

    Raises:
        ObservationError: ``given`` is not a column of the table.
    """
    lower = {n.lower(): n for n in names}
    if given is not None:
        if given in names:
            return given
        if given.lower() in lower:
            return lower[given.lower()]
        raise ObservationError(f"column {given!r} (for {role}) is not in the table; its "
                               f"columns are {names}")
    return next((lower[a] for a in COLUMN_ALIASES[role] if a in lower), None)


def numeric_column(table, name: str, strict: bool = True) -> np.ndarray:
    """A column as float64, missing values NaN; non-numeric entries raise (or, not strict, NaN)."""
    col = table[name]
    mask = np.asarray(getattr(col, "mask", np.zeros(len(col), bool)), dtype=bool)
    values = np.asarray(col)
    if values.dtype.kind in "fiub":  # an integer column with gaps cannot hold NaN: float first
        out = values.astype(np.float64)
    else:
        out = np.full(len(values), np.nan)
        for i, v in enumerate(values):
            if mask[i]:
                continue
            s = str(v).strip()
            if s.lower() in ("", "nan", "--", "null", "none", "na"):
                continue
            try:
                out[i] = float(s)
            except ValueError:
                if not strict:
                    continue
                raise ObservationError(
                    f"column {name!r} has a non-numeric value {s!r} in data row {i + 1}"
                ) from None
    out[mask] = np.nan
    return out


def _read_failure(path: Path, text: str, err: Exception) -> str:
    """One line saying why astropy could not read a table.

    A failed format guess lists every format tried (pages); reading again as the one format the
    header line suggests (CSV if it has a comma, else whitespace-separated) gives the reason.
    """
    header = next(ln for ln in text.splitlines() if ln.strip())
    from astropy.io import ascii

    try:
        ascii.read(path, format="csv" if "," in header else "basic", guess=False)
    except Exception as simple:  # noqa: BLE001 - any reader error is the reason
        err = simple
    return next((ln.strip() for ln in str(err).splitlines() if ln.strip()),
                type(err).__name__)


def read_ascii_table(path: str | os.PathLike, what: str = "table",
                     format: str | None = None):
    """An astropy table from a CSV or whitespace file with a header line, or one clear error.

    Args:
        path: the file.
        what: how the messages name it (``"table"``, ``"centres table"``).
        format: astropy ASCII format (default: guessed).

    Raises:
        ObservationError: no such file, an empty file, a header without rows, or a file
            astropy cannot parse (the reason of the one format the header suggests).
    """
    from astropy.io import ascii

    path = Path(path)
    if not path.is_file():
        raise ObservationError(f"no {what} at {path}")
    try:
        text = path.read_text(errors="replace")
    except OSError as err:
        raise ObservationError(f"cannot read {path}: {err}") from err
    if not text.strip():
        raise ObservationError(f"the {what} {path} is empty")
    try:
        table = ascii.read(path, format=format) if format else ascii.read(path)
    except Exception as err:  # astropy raises many types, with pages of format guessing
        raise ObservationError(f"cannot read {path} as a table (CSV or whitespace-separated "
                               f"with a header line): {_read_failure(path, text, err)}"
                               ) from err
    if len(table) == 0:
        raise ObservationError(f"the {what} {path} has a header ({', '.join(table.colnames)}) "
                               "but no data rows")
    return table


def read_redshift_table(path: str | os.PathLike, ra: str | None = None, dec: str | None = None,
                        z: str | None = None, cz: str | None = None,
                        format: str | None = None) -> RedshiftTable:
    """Read RA, Dec and redshift (or c z) of the galaxies of a table.

    Args:
        path: CSV or whitespace-separated table with a header line.
        ra: RA column name (default: the first of :data:`COLUMN_ALIASES` present).
        dec: Dec column name (likewise).
        z: name of a redshift column; or
        cz: name of a c z column [km/s] (give at most one of the two; with neither, a column
            named like a redshift is looked for first, then one named like c z).
        format: astropy ASCII format (default: guessed).

    Returns:
        the table's galaxies with all three values present.

    Raises:
        ObservationError: unreadable file, missing or non-numeric columns, impossible values.
    """
    path = Path(path)
    if z is not None and cz is not None:
        raise ObservationError("give either a redshift column or a cz column, not both")
    table = read_ascii_table(path, format=format)
    names = list(table.colnames)
    cols = {"ra": find_column(names, "ra", ra), "dec": find_column(names, "dec", dec)}
    if cz is not None:
        cols["cz"] = find_column(names, "cz", cz)
    elif z is not None:
        cols["z"] = find_column(names, "z", z)
    else:
        zc, czc = find_column(names, "z", None), find_column(names, "cz", None)
        cols.update({"z": zc} if zc else {"cz": czc})
    missing = [role for role, name in cols.items() if name is None]
    if missing:
        what = {"ra": "RA (--ra-col)", "dec": "Dec (--dec-col)",
                "z": "redshift (--z-col) or cz (--cz-col)",
                "cz": "redshift (--z-col) or cz (--cz-col)"}
        raise ObservationError(
            "the table has no column for " + ", ".join(what[m] for m in missing)
            + f"; its columns are {names}")
    values = {role: numeric_column(table, name) for role, name in cols.items()}
    ok = np.all([np.isfinite(v) for v in values.values()], axis=0)
    vel = values["cz"] if "cz" in values else C_KMS * values["z"]
    r, d = values["ra"], values["dec"]
    if np.any(np.abs(d[ok]) > 90.0):
        raise ObservationError(f"column {cols['dec']!r} has declinations outside [-90, 90] deg")
    if "z" in values and np.any(values["z"][ok] > 20.0):
        raise ObservationError(f"column {cols['z']!r} has values above 20: is it c z in km/s? "
                               "Then name it with --cz-col")
    if "cz" in values and np.any(vel[ok] >= C_KMS):
        raise ObservationError(f"column {cols['cz']!r} has values >= c; is it a redshift? "
                               "Then name it with --z-col")
    if not ok.any():
        raise ObservationError(f"every row of {path} misses a value in the columns used "
                               f"({cols})")
    negative = ok & (vel < 0.0)
    if np.array_equal(negative, ok):
        raise ObservationError(f"every redshift in column {cols.get('z', cols.get('cz'))!r} is "
                               "negative: is it the right column?")
    rows = np.flatnonzero(ok & ~negative)
    return RedshiftTable(r[rows] % 360.0, d[rows], vel[rows], rows, len(table),
                         int((~ok).sum()), cols, str(path), int(negative.sum()))


def write_redshift_table(path: str | os.PathLike, ra: np.ndarray, dec: np.ndarray,
                         cz: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> Path:
    """Write a CSV table with columns ``ra`` [deg], ``dec`` [deg], ``cz`` [km/s] (+ extra).

    Values are written with 17 significant digits, so reading back is exact.
    """
    path = Path(path)
    cols = {"ra": ra, "dec": dec, "cz": cz, **(extra or {})}
    data = np.column_stack([np.asarray(v, dtype=np.float64) for v in cols.values()])
    np.savetxt(path, data, delimiter=",", header=",".join(cols), comments="", fmt="%.17g")
    return path


@dataclass
class FieldObservation:
    """The cylinder around a real cluster, as the models see it.

    Attributes:
        clusters: one cluster: galaxies with R_proj <= aperture and |v_los| <= v_cut; columns
            ``x_proj``, ``y_proj`` [physical h^-1 Mpc], ``v_los`` [km/s]; attrs ``setup``
            "cylinder", ``z``, ``aperture``, ``v_cut``, ``source`` "observed".
        ra, dec, cz: sky coordinates [deg, deg, km/s] of those galaxies, (n,).
        row: their row numbers in the table's data, (n,).
        center: (RA [deg], Dec [deg], z) of the cluster.
        n_table: galaxies in the table with all values present.
        n_rows: data rows in the table.
        n_dropped: rows dropped for a missing or NaN value.
        n_negative: rows dropped for a negative redshift (a missing-value placeholder).
        coverage_radius: largest projected radius of a table galaxy inside the velocity window
            [h^-1 Mpc] (a table cut smaller than the aperture has coverage_radius < aperture).
        velocity_span: (min, max) v_los of table galaxies inside the aperture [km/s], before the
            velocity cut (a table of pre-selected members spans less than +-v_cut).
    """

    clusters: ClusterSet
    ra: np.ndarray
    dec: np.ndarray
    cz: np.ndarray
    row: np.ndarray
    center: tuple[float, float, float]
    n_table: int
    n_rows: int
    n_dropped: int
    n_negative: int
    coverage_radius: float
    velocity_span: tuple[float, float]

    @property
    def n_gal(self) -> int:
        """Galaxies in the cylinder."""
        return int(self.clusters.n_gal[0])


#: RA spread / Dec spread below which a table whose RAs all lie in [0, 24) is taken as hours
HOURS_SPREAD_RATIO = 0.25


def _spread(x: np.ndarray) -> float:
    """Half the 16-84 % range (a robust standard deviation)."""
    lo, hi = np.percentile(x, [16.0, 84.0])
    return 0.5 * float(hi - lo)


def ra_in_degrees(table: RedshiftTable, ra_center: float, dec_center: float,
                  unit: str = "auto") -> tuple[RedshiftTable, float]:
    """The table and centre with right ascensions in degrees.

    Args:
        table: galaxies (:func:`read_redshift_table`), RA as read.
        ra_center: the centre's RA, in the same unit as the table's.
        dec_center: the centre's Dec [deg].
        unit: ``"deg"`` (as given), ``"hour"`` (both multiplied by 15) or ``"auto"``: as given,
            unless the table looks like hours -- every RA and the centre in [0, 24) and the
            galaxies' RA spread on the sky (times cos Dec) under
            :data:`HOURS_SPREAD_RATIO` of their Dec spread, as a field in hours is 15 times
            narrower in RA than in Dec -- which raises rather than giving a wrong mass.

    Returns:
        (table, centre RA [deg]).

    Raises:
        ObservationError: RA in hours suspected (``auto``), or values that are not hours
            (``hour``).
    """
    if unit not in ("auto", "deg", "hour"):
        raise ObservationError(f"RA unit must be auto, deg or hour, got {unit!r}")
    in_range = bool(table.ra.size) and float(table.ra.max()) < 24.0 and 0.0 <= ra_center < 24.0
    if unit == "hour":
        if not in_range:
            raise ObservationError("RA unit 'hour' but the table or the centre has RA >= 24")
        return replace(table, ra=table.ra * 15.0), ra_center * 15.0
    if unit == "deg" or not in_range or table.ra.size < 10:
        return table, ra_center
    d_ra = ((table.ra - ra_center + 180.0) % 360.0 - 180.0) * np.cos(np.deg2rad(dec_center))
    s_ra, s_dec = _spread(d_ra), _spread(table.dec - dec_center)
    if s_dec > 0 and s_ra < HOURS_SPREAD_RATIO * s_dec:
        raise ObservationError(
            f"the RA values look like hours, not degrees: all in [0, 24) with the centre, and "
            f"the galaxies spread {s_ra / s_dec:.2f} times as wide in RA as in Dec; give "
            "--ra-unit hour (table and centre in hours), or --ra-unit deg if they are degrees")
    return table, ra_center


#: the most a table may be concentrated: every galaxy within this fraction of the aperture of
#: the centre reads as a unit error (coordinates in radians, arcminutes, ...), not a field
TINY_FIELD_FRACTION = 0.1


def check_center(ra: float, dec: float, z: float) -> None:
    """Raise :class:`ObservationError` unless the centre is on the sky at 0 < z < 5.

    Args:
        ra: right ascension [deg], in [-180, 360] (negative values are read as RA + 360).
        dec: declination [deg], in [-90, 90].
        z: cluster redshift.
    """
    if not np.isfinite([ra, dec, z]).all():
        raise ObservationError(f"missing or non-numeric centre: RA {ra}, Dec {dec}, z {z}")
    if not -180.0 <= ra <= 360.0:
        raise ObservationError(f"centre right ascension {ra} is outside [0, 360] deg (or "
                               "[-180, 180]); give it in degrees")
    if not -90.0 <= dec <= 90.0:
        raise ObservationError(f"centre declination {dec} is outside [-90, 90] deg")
    if not 0.0 < z < 5.0:
        raise ObservationError(f"cluster redshift must be in (0, 5), got {z}")


def _hours_hint(table: RedshiftTable, ra_center: float) -> str:
    """A hint when the centre's RA, read as hours, falls among the table's RAs [deg]."""
    if not 0.0 <= ra_center < 24.0 or not table.ra.size:
        return ""
    offset = (table.ra - 15.0 * ra_center + 180.0) % 360.0 - 180.0
    if np.median(np.abs(offset)) < 5.0:
        return (f"; the centre RA {ra_center} looks like hours ({15.0 * ra_center:.4f} deg "
                "lies among the table's RAs): give it in degrees")
    return ""


def observe_field(table: RedshiftTable, ra_center: float, dec_center: float, z_cluster: float,
                  aperture: float, v_cut: float) -> FieldObservation:
    """Project a table's galaxies about a cluster centre and apply the cylinder cut.

    Args:
        table: galaxies (:func:`read_redshift_table`).
        ra_center: cluster centre right ascension [deg].
        dec_center: cluster centre declination [deg].
        z_cluster: cluster redshift (observed, i.e. including its peculiar velocity, as the
            mocks' v_los is relative to the cluster's own redshift).
        aperture: cylinder radius R_ap [physical h^-1 Mpc].
        v_cut: half-width of the velocity window [km/s].

    Returns:
        the :class:`FieldObservation`.

    Raises:
        ObservationError: bad centre, no galaxy in the cylinder, or a table whose galaxies
            near the centre all lie within :data:`TINY_FIELD_FRACTION` of the aperture (a
            unit error).
    """
    check_center(ra_center, dec_center, z_cluster)
    ra0, dec0 = np.deg2rad(ra_center), np.deg2rad(dec_center)
    ra, dec = np.deg2rad(table.ra), np.deg2rad(table.dec)
    cos_c = np.sin(dec0) * np.sin(dec) + np.cos(dec0) * np.cos(dec) * np.cos(ra - ra0)
    near = cos_c > 0.5  # within 60 deg: the tangent plane is defined (and far beyond any R_ap)
    x, y, v = sky_to_projected(table.ra[near], table.dec[near], table.cz[near], ra_center,
                               dec_center, z_cluster)
    r = np.hypot(x, y)
    if r.size >= 10 and float(r.max()) < TINY_FIELD_FRACTION * aperture:
        arcsec = 3600.0 * np.rad2deg(np.arccos(np.clip(cos_c[near].min(), -1.0, 1.0)))
        raise ObservationError(
            f"all {r.size} galaxies of the table near the centre lie within "
            f"{float(r.max()):.3g} h^-1 Mpc of it ({arcsec:.3g} arcsec), under a tenth of the "
            f"aperture ({aperture} h^-1 Mpc): probably a unit error -- RA and Dec must be in "
            "degrees, for the table and the centre alike (radians x 57.2958)")
    in_window, in_aperture = np.abs(v) <= v_cut, r <= aperture
    keep = in_window & in_aperture
    if not keep.any():
        raise ObservationError(
            f"no galaxy of the table ({table.n_rows} rows) lies in the cylinder R <= {aperture} "
            f"h^-1 Mpc, |v_los| <= {v_cut} km/s around RA {ra_center}, Dec {dec_center}, "
            f"z {z_cluster}: check the centre, the redshift and the columns used "
            f"({table.columns})" + _hours_hint(table, ra_center))
    idx = np.flatnonzero(near)[keep]
    galaxies = {"x_proj": x[keep].astype(np.float32), "y_proj": y[keep].astype(np.float32),
                "v_los": v[keep].astype(np.float32)}
    clusters = ClusterSet({"n_gal": np.array([keep.sum()]), "z": np.array([float(z_cluster)])},
                          galaxies,
                          np.array([0, keep.sum()]),
                          {"setup": "cylinder", "z": float(z_cluster),
                           "aperture": float(aperture), "v_cut": float(v_cut),
                           "source": "observed"})
    span = (float(v[in_aperture].min()), float(v[in_aperture].max()))
    return FieldObservation(clusters, table.ra[idx], table.dec[idx], table.cz[idx],
                            table.row[idx], (float(ra_center), float(dec_center),
                                             float(z_cluster)),
                            len(table.ra), table.n_rows, table.n_dropped, table.n_negative,
                            float(r[in_window].max()), span)


def cluster_to_table(clusters: ClusterSet, i: int, ra_center: float, dec_center: float,
                     z_cluster: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Place cluster ``i`` of a (mock) set on the sky: (RA [deg], Dec [deg], cz [km/s]).

    The inverse of :func:`observe_field` without the cut; used to write mock clusters as
    redshift tables (tests, examples).
    """
    g = clusters.galaxies_of(i)
    return projected_to_sky(g["x_proj"].astype(np.float64), g["y_proj"].astype(np.float64),
                            g["v_los"].astype(np.float64), ra_center, dec_center, z_cluster)
