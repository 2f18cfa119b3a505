r"""Validation on real surveys: posteriors against published masses, field by field.

A manifest (JSON) lists redshift surveys -- a galaxy table and a table of cluster centres per
field -- and the published masses in the centres tables' columns, each with its mass
definition, unit and h convention. :func:`validate` runs every field through
:func:`~pyro_clusters.realfield.survey.infer_survey` (the one posterior path), converts every
published mass to log10(M200c / h^-1 Msun) (:func:`to_m200c`) and compares:

    offset = median - log10 M_pub,
    pull   = offset / sqrt(s_post^2 + s_pub^2 + s_floor^2),

with s_post half the posterior's 16-84 % width, s_pub the published error (or the stated
scatter of a scaling-relation mass) and s_floor the scatter of any published mass about the
truth that its error does not carry (0.13 dex by default). A calibrated posterior and honest
published errors give pulls of unit RMS and ~95 % within 2.

Manifest::

    {"name": "...",
     "fields": [{"name": "shapley", "galaxies": "shapley/galaxies.csv", "cz_col": "cz",
                 "centres": "shapley/clusters.csv"},
                {"name": "A1689", "galaxies": "hecs/A1689.csv", "z_col": "z",
                 "centres": "hecs/clusters.csv", "clusters": ["A1689"]}],
     "masses": [{"label": "X-ray (MCXC)", "column": "m500c_mcxc_1e14_msun",
                 "definition": "500c", "unit_msun": 1e14, "h": 0.7, "scatter_dex": 0.2},
                {"label": "SZ (PSZ2)", "column": "m500c_psz2_1e14_msun",
                 "err_up": "m500c_psz2_err_up", "err_low": "m500c_psz2_err_low",
                 "definition": "500c", "unit_msun": 1e14, "h": 0.7}]}

Paths are relative to the manifest. ``h``: the Hubble parameter the mass was quoted with (a
mass in Msun for H0 = 70 is 0.7 x that in h^-1 Msun, since dynamical, X-ray and SZ masses scale
as 1/h); null for a mass already in h^-1 Msun. ``err`` (symmetric) or ``err_up`` / ``err_low``
are columns of 1-sigma errors in the mass's unit; ``scatter_dex`` replaces a missing error. A
mass column a field's centres table lacks is skipped for that field.

M500c becomes M200c at the cluster redshift through the Diemer & Joyce 2019 (arXiv:1809.07326)
concentration-mass relation, ``colossus.halo.mass_adv.changeMassDefinitionCModel`` with
``c_model="diemer19"``, in the package's cosmology (about +0.13 to +0.16 dex).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pyro_clusters.realfield.survey import infer_survey, read_centres
from pyro_clusters.realfield.table import (
    ObservationError,
    numeric_column,
    read_redshift_table,
)

__all__ = ["DEFINITIONS", "FLOOR_DEX", "Manifest", "MassColumn", "plot_validation",
           "read_manifest", "summarise", "to_m200c", "validate"]

#: scatter of a published mass about the truth that its quoted error leaves out [dex]
FLOOR_DEX = 0.13
#: mass definitions :func:`to_m200c` converts from
DEFINITIONS = ("200c", "500c", "200m", "vir")


@dataclass(frozen=True)
class MassColumn:
    """One kind of published mass in the centres tables (module docstring).

    Attributes:
        label: name in tables and figures.
        column: the mass column.
        definition: ``200c``, ``500c``, ``200m`` or ``vir``.
        unit_msun: the column's unit [Msun, or h^-1 Msun with ``h`` None].
        h: the Hubble parameter the mass was quoted with; None: already h^-1 Msun.
        err, err_up, err_low: columns of 1-sigma errors in the same unit (or None).
        scatter_dex: error [dex] where no error column is given (a scaling-relation mass).
    """

    label: str
    column: str
    definition: str = "200c"
    unit_msun: float = 1e14
    h: float | None = None
    err: str | None = None
    err_up: str | None = None
    err_low: str | None = None
    scatter_dex: float | None = None

    def __post_init__(self) -> None:
        if self.definition not in DEFINITIONS:
            raise ValueError(f"mass definition must be one of {DEFINITIONS}, got "
                             f"{self.definition!r}")
        if self.unit_msun <= 0 or (self.h is not None and not 0 < self.h < 2):
            raise ValueError(f"{self.label}: unit_msun must be > 0 and h in (0, 2)")


@dataclass
class Manifest:
    """A validation manifest: fields and the published masses (module docstring)."""

    name: str
    fields: list[dict]
    masses: list[MassColumn]
    root: Path
    notes: dict = field(default_factory=dict)


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Read and check a manifest (module docstring).

    Raises:
        ObservationError: no such file, bad JSON, a field without a galaxy or centres table,
            or a table that does not exist.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ObservationError(f"no manifest at {path}") from None
    except json.JSONDecodeError as err:
        raise ObservationError(f"manifest {path} is not valid JSON: {err}") from None
    fields = raw.get("fields") or []
    if not fields:
        raise ObservationError(f"manifest {path} lists no fields")
    for f in fields:
        for key in ("name", "galaxies", "centres"):
            if key not in f:
                raise ObservationError(f"a field of {path} has no {key!r}: {f}")
        for key in ("galaxies", "centres"):
            if not (path.parent / f[key]).is_file():
                raise ObservationError(f"field {f['name']}: no file {path.parent / f[key]}")
    try:
        masses = [MassColumn(**m) for m in raw.get("masses", [])]
    except (TypeError, ValueError) as err:
        raise ObservationError(f"manifest {path}: bad mass entry ({err})") from None
    notes = {k: v for k, v in raw.items() if k not in ("name", "fields", "masses")}
    return Manifest(raw.get("name", path.stem), fields, masses, path.parent, notes)


def to_m200c(mass: np.ndarray, z: np.ndarray, column: MassColumn) -> np.ndarray:
    """Published masses in the column's unit -> log10(M200c / h^-1 Msun) (module docstring).

    Args:
        mass: masses in ``column.unit_msun`` (NaN where missing), (n,).
        z: cluster redshifts, (n,).
        column: what the masses are.

    Returns:
        log10 M200c [h^-1 Msun], NaN where the mass is missing or not positive.
    """
    from colossus.halo import mass_adv

    from pyro_clusters.cosmology import get_cosmology

    get_cosmology()
    m = np.asarray(mass, np.float64) * column.unit_msun * (column.h if column.h else 1.0)
    out = np.full(m.shape, np.nan)
    for i, (mi, zi) in enumerate(zip(m, np.asarray(z, np.float64), strict=True)):
        if not (np.isfinite(mi) and mi > 0 and np.isfinite(zi)):
            continue
        if column.definition == "200c":
            out[i] = np.log10(mi)
        else:
            m200, _, _ = mass_adv.changeMassDefinitionCModel(mi, zi, column.definition, "200c",
                                                             c_model="diemer19")
            out[i] = np.log10(m200)
    return out


def _error_dex(table, column: MassColumn, mass: np.ndarray) -> np.ndarray:
    """1-sigma error of log10 M [dex] from the error columns (or the stated scatter)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if column.err_up and column.err_low and column.err_up in table.colnames:
            up = numeric_column(table, column.err_up, strict=False)
            low = numeric_column(table, column.err_low, strict=False)
            err = 0.5 * (np.log10(1.0 + up / mass) - np.log10(np.clip(1.0 - low / mass, 1e-3,
                                                                        None)))
        elif column.err and column.err in table.colnames:
            err = numeric_column(table, column.err, strict=False) / (mass * np.log(10.0))
        else:
            err = np.full(len(mass), np.nan)
    if column.scatter_dex is not None:
        err = np.where(np.isfinite(err), err, column.scatter_dex)
    return err


def validate(manifest: Manifest, model, n_draws: int = 2000, seed: int = 0,
             prior: str = "flat", floor_dex: float = FLOOR_DEX,
             progress: bool = False) -> list[dict]:
    """Posteriors of every cluster of the manifest against its published masses.

    Args:
        manifest: :func:`read_manifest`.
        model: a :class:`~pyro_clusters.realfield.bundle.CylinderModel`.
        n_draws: posterior draws per cluster.
        seed: seed of every field's draws.
        prior: ``flat`` or ``hmf``.
        floor_dex: s_floor of the pull [dex].
        progress: progress bars.

    Returns:
        one row per cluster and published mass (and one per cluster without any): field,
        name, z, status, reason, median / p16 / p84 [log10 h^-1 Msun], warnings, mass label,
        ``log_m_pub`` (M200c h^-1 Msun), ``err_pub_dex``, ``offset_dex``, ``pull``.
    """
    rows = []
    for f in manifest.fields:
        table = read_redshift_table(manifest.root / f["galaxies"], f.get("ra_col"),
                                    f.get("dec_col"), f.get("z_col"), f.get("cz_col"))
        centres = read_centres(manifest.root / f["centres"])
        raw = centres.table
        keep = np.arange(len(centres))
        if f.get("clusters"):
            wanted = list(f["clusters"])
            missing = sorted(set(wanted) - set(centres.name))
            if missing:
                raise ObservationError(f"field {f['name']}: {missing} not in {f['centres']}")
            keep = np.array([list(centres.name).index(n) for n in wanted])
        sub = type(centres)(centres.name[keep], centres.ra[keep], centres.dec[keep],
                            centres.z[keep], centres.columns, centres.source)
        result = infer_survey(table, sub, model, n_draws, seed, prior, progress=progress)
        published = []
        for col in manifest.masses:
            if col.column not in raw.colnames:
                continue
            mass = numeric_column(raw, col.column, strict=False)[keep]
            published.append((col, to_m200c(mass, sub.z, col),
                              _error_dex(raw[keep], col, mass)))
        for i, r in enumerate(result.rows):
            base = {"field": f["name"], "name": r["name"], "z": r["z"], "status": r["status"],
                    "reason": r.get("reason", ""), "median": r["median"], "p16": r["p16"],
                    "p84": r["p84"], "warnings": r.get("warnings", "")}
            entries = [(c, lm[i], e[i]) for c, lm, e in published if np.isfinite(lm[i])]
            if not entries or r["status"] != "ok":  # one row for a cluster skipped or unmatched
                rows.append({**base, "mass": "", "log_m_pub": np.nan, "err_pub_dex": np.nan,
                             "offset_dex": np.nan, "pull": np.nan})
            for col, log_m, err in entries:
                offset = r["median"] - log_m
                s_post = 0.5 * (r["p84"] - r["p16"])
                s_pub = err if np.isfinite(err) else 0.0
                rows.append({**base, "mass": col.label, "log_m_pub": float(log_m),
                             "err_pub_dex": float(err), "offset_dex": float(offset),
                             "pull": float(offset / np.sqrt(s_post**2 + s_pub**2
                                                            + floor_dex**2))})
    return rows


def summarise(rows: list[dict], far_dex: float = 0.4) -> dict:
    """Per published-mass label: the numbers of the module docstring, over clusters with both.

    Returns:
        {label: {n, mean_offset_dex, rms_offset_dex, pull_rms, n_within_2sigma,
        n_far (|offset| > ``far_dex``), n_far_with_warning, far (their names)}}.
    """
    out = {}
    for label in sorted({r["mass"] for r in rows if r["mass"]}):
        sel = [r for r in rows if r["mass"] == label and np.isfinite(r["offset_dex"])]
        if not sel:
            continue
        off = np.array([r["offset_dex"] for r in sel])
        pull = np.array([r["pull"] for r in sel])
        far = [r for r in sel if abs(r["offset_dex"]) > far_dex]
        out[label] = {"n": len(sel), "mean_offset_dex": float(off.mean()),
                      "rms_offset_dex": float(np.sqrt(np.mean(off**2))),
                      "pull_rms": float(np.sqrt(np.mean(pull**2))),
                      "n_within_2sigma": int(np.sum(np.abs(pull) <= 2.0)),
                      "n_far": len(far), "n_far_with_warning": sum(bool(r["warnings"])
                                                                   for r in far),
                      "far": [r["name"] for r in far]}
    return out


def plot_validation(rows_by_model: dict[str, list[dict]], path: str | os.PathLike) -> Path:
    """Posterior median (16-84 %) against each published mass, one panel per mass kind.

    Open symbols: clusters with a warning. Returns the figure's path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = sorted({r["mass"] for rows in rows_by_model.values() for r in rows if r["mass"]})
    fig, axes = plt.subplots(1, max(len(labels), 1), figsize=(4.4 * max(len(labels), 1), 4.2),
                             squeeze=False)
    for ax, label in zip(axes[0], labels, strict=False):
        for k, (model, rows) in enumerate(rows_by_model.items()):
            sel = [r for r in rows if r["mass"] == label and np.isfinite(r["offset_dex"])]
            if not sel:
                continue
            x = np.array([r["log_m_pub"] for r in sel])
            y = np.array([r["median"] for r in sel])
            lo = y - np.array([r["p16"] for r in sel])
            hi = np.array([r["p84"] for r in sel]) - y
            warned = np.array([bool(r["warnings"]) for r in sel])
            xe = np.array([r["err_pub_dex"] if np.isfinite(r["err_pub_dex"]) else 0.0
                           for r in sel])
            for mask, face in ((~warned, f"C{k}"), (warned, "none")):
                if mask.any():
                    ax.errorbar(x[mask], y[mask], yerr=[lo[mask], hi[mask]], xerr=xe[mask],
                                fmt="o", mfc=face, color=f"C{k}", ms=5, lw=0.8,
                                label=model if face != "none" else f"{model} (warning)")
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        lim = min(x0, y0) - 0.1, max(x1, y1) + 0.1
        ax.plot(lim, lim, "k-", lw=0.8)
        for d in (-0.3, 0.3):  # dotted: 0.3 dex off
            ax.plot(lim, (lim[0] + d, lim[1] + d), "k:", lw=0.6)
        ax.set(xlim=lim, ylim=lim, aspect="equal",
               xlabel=f"{label}: log10 M200c [h^-1 Msun]",
               ylabel="posterior median (16-84 %)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
