r"""Many clusters of one redshift survey in one call (``pyro-clusters infer --centres``).

A galaxy table of a survey (RA, Dec, z or c z, as :func:`~pyro_clusters.realfield.table.
read_redshift_table` reads it) and a table of cluster centres (name, RA, Dec, z) give one
posterior of log10(M200c / h^-1 Msun) per cluster:

1. the galaxies near each centre are found with a KD-tree on unit vectors of the sky (one
   tree for the survey; the query radius is the aperture's angle at the cluster's redshift,
   plus 2 %), and go through the same cylinder cut as a single cluster
   (:func:`~pyro_clusters.realfield.table.observe_field`);
2. the cylinders are batched: one classifier pass gives every galaxy its ``p_member``, one
   call of the NPE through :class:`~pyro_clusters.estimators.reweighted.PriorReweighted` gives
   every cluster its draws (the ``hmf`` prior is the mass function at each cluster's redshift,
   evaluated on a 0.005 grid in z -- the mass function changes by < 1 % across one step);
3. a centre that cannot give a posterior -- a missing value, a declination outside +-90, a
   redshift outside (0, 5), fewer galaxies than the model's N_min, a posterior outside the
   training range -- is skipped with its reason in the output table; it never stops the
   batch.

The posteriors are the single-cluster ones: every batch goes through
:func:`~pyro_clusters.realfield.inference.infer_cylinders`, of which the single-cluster
``infer`` is a batch of one (same cylinder, classifier, NPE, prior, warnings and leakage,
:func:`~pyro_clusters.realfield.mismatch.cluster_warnings`), without ``--subsample``; draws
are seeded per call, so a cluster's draws depend on the batch it is in, not its percentiles
beyond Monte Carlo noise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pyro_clusters.cosmology import angular_diameter_distance
from pyro_clusters.data.clusters import ClusterSet
from pyro_clusters.realfield.inference import (
    PRIORS,
    ClusterPosterior,
    infer_cylinders,
)
from pyro_clusters.realfield.redshift import CHECK_TOL_KMS, REFINE_TOL_KMS, refine_redshifts
from pyro_clusters.realfield.table import (
    FieldObservation,
    ObservationError,
    RedshiftTable,
    check_center,
    find_column,
    numeric_column,
    observe_field,
    read_ascii_table,
)

__all__ = ["CENTRE_NAME_ALIASES", "Centres", "SurveyIndex", "SurveyResult", "infer_survey",
           "mock_survey", "neighbour_warnings", "read_centres", "write_survey_outputs"]

#: names recognised for the cluster-name column of a centres table (case-insensitive).
CENTRE_NAME_ALIASES = ("name", "cluster", "id", "cluster_id", "object", "target")


@dataclass
class Centres:
    """Cluster centres of a survey.

    Attributes:
        name: cluster names (the table's name column, else ``row<N>``), (n,).
        ra: RA [deg], NaN where missing, (n,).
        dec: Dec [deg], (n,).
        z: cluster redshift, (n,).
        columns: role -> column used.
        source: file name.
        table: the table as read (its other columns, e.g. published masses), or None.
    """

    name: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    z: np.ndarray
    columns: dict[str, str]
    source: str = ""
    table: Any = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.name)


def read_centres(path: str | os.PathLike, name: str | None = None, ra: str | None = None,
                 dec: str | None = None, z: str | None = None) -> Centres:
    """Read a table of cluster centres: name (optional), RA, Dec [deg] and redshift.

    Columns are found by name as in a galaxy table (``ra``, ``raj2000``, ...; ``z``,
    ``redshift``, ...; name: :data:`CENTRE_NAME_ALIASES`) or given. Rows with a missing or
    non-numeric value are kept (as NaN) and skipped with their reason by
    :func:`infer_survey`.

    Raises:
        ObservationError: no such file, an empty or unreadable table, a missing column.
    """
    table = read_ascii_table(path, "centres table")
    names = list(table.colnames)
    cols = {"ra": find_column(names, "ra", ra), "dec": find_column(names, "dec", dec),
            "z": find_column(names, "z", z)}
    missing = [k for k, v in cols.items() if v is None]
    if missing:
        raise ObservationError(f"the centres table has no column for {missing}; its columns "
                               f"are {names} (name them with --centre-ra-col, ...)")
    lower = {n.lower(): n for n in names}
    name_col = name if name is not None else next(
        (lower[a] for a in CENTRE_NAME_ALIASES if a in lower), None)
    if name_col is not None and name_col not in names:
        raise ObservationError(f"column {name_col!r} is not in the centres table ({names})")
    # non-numeric entries become NaN: that row is skipped with its reason, not the batch
    values = {role: numeric_column(table, col, strict=False) for role, col in cols.items()}
    labels = (np.array([str(v).strip() for v in table[name_col]]) if name_col
              else np.array([f"row{i + 1}" for i in range(len(table))]))
    if name_col is not None:
        cols["name"] = name_col
    ra = values["ra"]
    ra = np.where((ra >= -180.0) & (ra <= 360.0), ra % 360.0, ra)  # others: skipped, reason
    return Centres(labels, ra, values["dec"], values["z"], cols, str(path), table)


def _unit_vectors(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    ra, dec = np.deg2rad(ra), np.deg2rad(dec)
    return np.column_stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])


class SurveyIndex:
    """A KD-tree of a survey's galaxies on the unit sphere, for cones around many centres."""

    def __init__(self, table: RedshiftTable):
        from scipy.spatial import cKDTree

        self.table = table
        self.tree = cKDTree(_unit_vectors(table.ra, table.dec))

    def cone(self, ra: float, dec: float, radius_deg: float) -> RedshiftTable:
        """The galaxies within ``radius_deg`` of (``ra``, ``dec``) [deg], as a table."""
        chord = 2.0 * np.sin(np.deg2rad(min(radius_deg, 90.0)) / 2.0)
        rows = np.sort(np.asarray(self.tree.query_ball_point(
            _unit_vectors(np.array([ra]), np.array([dec]))[0], chord), np.int64))
        t = self.table
        return replace(t, ra=t.ra[rows], dec=t.dec[rows], cz=t.cz[rows], row=t.row[rows])


@dataclass
class SurveyResult:
    """What :func:`infer_survey` returns.

    Attributes:
        rows: one dict per centre, in the centres' order: name, ra_deg, dec_deg, z, status
            (``ok`` or ``skipped``), reason, the percentiles of log10 M200c [h^-1 Msun]
            (median, p16, p84, p2.5, p97.5; NaN when skipped), galaxy counts, M-sigma
            estimate, warnings joined by " | ".
        draws: posterior draws of the clusters with status ok, (n_ok, n_draws).
        names: their names, (n_ok,).
        observations: their cylinders (for figures).
        p_member: their galaxies' membership probabilities.
        msigma: their M-sigma estimates (:func:`~pyro_clusters.realfield.inference.
            msigma_estimates`).
        warnings: their mismatch warnings.
        settings: prior, draws, seed, model path.
        posteriors: their :class:`~pyro_clusters.realfield.inference.ClusterPosterior`,
            the same object a single-cluster call returns.
    """

    rows: list[dict]
    draws: np.ndarray
    names: list[str]
    observations: list[FieldObservation] = field(default_factory=list)
    p_member: list[np.ndarray] = field(default_factory=list)
    msigma: list[dict] = field(default_factory=list)
    warnings: list[list[str]] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    posteriors: list[ClusterPosterior] = field(default_factory=list)


def _skipped(base: dict, reason: str) -> dict:
    return {**base, "status": "skipped", "reason": reason,
            **{k: np.nan for k in ("median", "p16", "p84", "p2.5", "p97.5")},
            "n_galaxies_in_cylinder": base.get("n_galaxies_in_cylinder", 0),
            "n_members_classifier": 0, "msigma_log_m": np.nan, "warnings": ""}


def infer_survey(table: RedshiftTable, centres: Centres, model, n_draws: int = 1000,
                 seed: int = 0, prior: str = "flat", batch_size: int = 256,
                 progress: bool = True, refine_z: bool = False) -> SurveyResult:
    """Posterior of log10 M200c for every centre of a survey (module docstring).

    Each batch of cylinders goes through
    :func:`~pyro_clusters.realfield.redshift.refine_redshifts` (to apply it with
    ``refine_z``, else to check the given redshift, as the single-cluster ``infer`` does) and
    :func:`~pyro_clusters.realfield.inference.infer_cylinders`, the path of one cluster.

    Args:
        table: the survey's galaxies (:func:`~pyro_clusters.realfield.table.
            read_redshift_table`).
        centres: the clusters (:func:`read_centres`).
        model: a :class:`~pyro_clusters.realfield.bundle.CylinderModel`.
        n_draws: posterior draws per cluster.
        seed: seed of every draw of the call.
        prior: ``flat`` (training prior) or ``hmf`` (mass function at each cluster's z).
        batch_size: clusters per classifier / NPE batch (bounds memory).
        progress: a progress bar over the centres.
        refine_z: move each redshift to its members' mean velocity first (the row gets
            ``z_refined`` and ``z_shift_kms``).

    Returns:
        :class:`SurveyResult`.
    """
    from tqdm.auto import tqdm

    if prior not in PRIORS:
        raise ObservationError(f"prior must be 'flat' or 'hmf', got {prior!r}")
    if n_draws < 2 or batch_size < 1:
        raise ObservationError("need at least 2 draws and a batch size of at least 1")
    rng = np.random.default_rng(seed)
    t = model.trained_on
    aperture, v_cut = float(t["aperture"]), float(t["v_cut"])
    index = SurveyIndex(table)
    rows: list[dict] = []
    posts: dict[int, ClusterPosterior] = {}
    cones: list[tuple[int, RedshiftTable]] = []
    for i in range(len(centres)):
        ra, dec, z = float(centres.ra[i]), float(centres.dec[i]), float(centres.z[i])
        rows.append({"name": str(centres.name[i]), "ra_deg": ra, "dec_deg": dec, "z": z})
        try:
            check_center(ra, dec, z)
        except ObservationError as err:
            rows[i] = _skipped(rows[i], str(err))
            continue
        theta = np.rad2deg(np.arctan(aperture / float(angular_diameter_distance(z))))
        cones.append((i, index.cone(ra, dec, 1.02 * theta)))
    unit = _unit_vectors(centres.ra, centres.dec)  # NaN rows stay NaN and are left out
    with tqdm(total=len(centres), unit="cluster", desc="clusters", disable=not progress) as bar:
        bar.update(len(centres) - len(cones))
        for start in range(0, len(cones), batch_size):
            batch = cones[start:start + batch_size]
            where = [(rows[i]["ra_deg"], rows[i]["dec_deg"], rows[i]["z"]) for i, _ in batch]
            refs = refine_redshifts([c for _, c in batch], where, model,
                                    tol_kms=REFINE_TOL_KMS if refine_z else CHECK_TOL_KMS)
            observed, refined = [], []
            for (i, cone), (ra, dec, z), ref in zip(batch, where, refs, strict=True):
                if isinstance(ref, ObservationError):
                    if refine_z:
                        rows[i] = _skipped(rows[i], _reason(ref))
                        continue
                    ref = None  # the plain cut below says what is wrong
                if refine_z:
                    z = ref.z
                    rows[i].update(z_refined=z, z_shift_kms=ref.shift_kms)
                try:
                    obs = observe_field(cone, ra, dec, z, aperture, v_cut)
                except ObservationError as err:
                    rows[i] = _skipped(rows[i], _reason(err))
                    continue
                rows[i]["n_galaxies_in_cylinder"] = obs.n_gal
                observed.append((i, obs))
                refined.append(ref)
            results = infer_cylinders([o for _, o in observed], model, n_draws, rng, prior,
                                      refined)
            for (i, _), post in zip(observed, results, strict=True):
                if isinstance(post, ObservationError):
                    rows[i] = _skipped(rows[i], _reason(post))
                    continue
                post.warnings.extend(neighbour_warnings(centres, i, aperture, v_cut, unit))
                posts[i] = post
                rows[i] = {**rows[i], **_row(post)}
            bar.update(len(batch))
    order = sorted(posts)
    ok = [posts[i] for i in order]
    draws = np.stack([p.draws for p in ok]) if ok else np.zeros((0, n_draws))
    settings = {"prior": prior, "n_draws": n_draws, "seed": seed,
                "model": str(model.path) if model.path else None,
                "galaxy_table": table.source, "centres_table": centres.source,
                "n_table_rows": table.n_rows, "n_rows_dropped_missing": table.n_dropped,
                "n_rows_dropped_negative_z": table.n_negative}
    return SurveyResult(rows, draws, [rows[i]["name"] for i in order],
                        [p.observation for p in ok], [p.p_member for p in ok],
                        [p.msigma for p in ok], [p.warnings for p in ok], settings,
                        posteriors=ok)


def neighbour_warnings(centres: Centres, i: int, aperture: float, v_cut: float,
                       unit: np.ndarray | None = None) -> list[str]:
    """Warnings naming the other listed clusters inside cluster ``i``'s cylinder.

    A centre j is inside when its projected distance at cluster i's redshift is within the
    aperture, R = D_A(z_i) theta_ij <= R_ap [physical h^-1 Mpc], and its velocity relative to
    cluster i, c (z_j - z_i) / (1 + z_i), within +-v_cut [km/s]. Its galaxies are then in the
    cylinder as interlopers of a kind the mocks rarely hold (a whole second cluster), which
    biases the mass high: in the Shapley supercluster, MCXC J1329.8-3310 (X-ray M500c
    1.6 x 10^13 Msun) has A3560 1.35 h^-1 Mpc away and gets 10^15.2 h^-1 Msun.

    Args:
        centres: the survey's centres.
        i: the cluster.
        aperture: R_ap [physical h^-1 Mpc].
        v_cut: half-width of the velocity window [km/s].
        unit: the centres' unit vectors on the sky, (n, 3), when the caller has them (a
            survey computes them once for all its clusters).
    """
    from pyro_clusters.cosmology import C_KMS

    z_i = float(centres.z[i])
    ok = np.isfinite(centres.ra) & np.isfinite(centres.dec) & np.isfinite(centres.z)
    ok[i] = False
    if not ok.any() or not np.isfinite(z_i):
        return []
    if unit is None:
        unit = _unit_vectors(centres.ra, centres.dec)
    theta = np.arccos(np.clip(unit[ok] @ unit[i], -1.0, 1.0))
    r = float(angular_diameter_distance(z_i)) * np.tan(np.minimum(theta, 1.0))
    dv = C_KMS * (centres.z[ok] - z_i) / (1.0 + z_i)
    inside = (r <= aperture) & (np.abs(dv) <= v_cut)
    return [f"another listed cluster lies in the cylinder: {name} at R = {ri:.2f} h^-1 Mpc, "
            f"v_los = {vi:+.0f} km/s; its galaxies count as this cluster's and bias the mass "
            "high (the mocks rarely hold a second cluster in the cylinder)"
            for name, ri, vi in zip(centres.name[ok][inside], r[inside], dv[inside],
                                    strict=True)]


def _reason(err: ObservationError) -> str:
    return str(err).split(": check the centre")[0]


def _row(post: ClusterPosterior) -> dict:
    """A posterior's columns of ``clusters.csv``."""
    q = post.summary["log10_M200c_hinv_Msun"]  # np.percentile at PERCENTILES
    return {"status": "ok", "reason": "", **{k: q[k] for k in ("median", "p16", "p84", "p2.5",
                                                              "p97.5")},
            "n_galaxies_in_cylinder": post.observation.n_gal,
            "n_members_classifier": post.msigma["n_members"],
            "msigma_log_m": post.msigma["log_m"],
            "member_velocity_offset_kms": float(post.settings["member_velocity_offset_kms"][0]),
            "leakage_fraction": post.settings["leakage_fraction"],
            "warnings": " | ".join(post.warnings)}


def mock_survey(clusters: ClusterSet, seed: int = 0) -> tuple[RedshiftTable, Centres]:
    """Place simulated cylinders on the sky as one survey: a galaxy table and its centres.

    Cluster i goes to point i of a spherical Fibonacci lattice (|Dec| < 85 deg; neighbours
    are > 4 deg apart for up to 2,000 clusters, far more than a 1.6 h^-1 Mpc aperture at
    z > 0.03), at the set's redshift, its galaxies (interlopers included) by
    :func:`~pyro_clusters.realfield.table.cluster_to_table`. For validation and benchmarks:
    the true masses are ``clusters.log_m``.

    Args:
        clusters: simulated cylinder-setup clusters (one redshift, ``clusters.attrs["z"]``).
        seed: rotates the lattice (different sky positions per seed).

    Returns:
        (the galaxy table, the centres named ``mock<i>``).
    """
    from pyro_clusters.catalog.sightlines import fibonacci_directions, random_rotation
    from pyro_clusters.realfield.table import cluster_to_table

    n = len(clusters)
    z = float(clusters.attrs["z"])
    u = fibonacci_directions(max(2 * n, 8)) @ random_rotation(np.random.default_rng(seed)).T
    u = u[np.abs(u[:, 2]) < np.sin(np.deg2rad(85.0))][:n]
    ra = np.rad2deg(np.arctan2(u[:, 1], u[:, 0])) % 360.0
    dec = np.rad2deg(np.arcsin(np.clip(u[:, 2], -1.0, 1.0)))
    parts = [cluster_to_table(clusters, i, ra[i], dec[i], z) for i in range(n)]
    g_ra, g_dec, g_cz = (np.concatenate([q[k] for q in parts]) for k in range(3))
    table = RedshiftTable(g_ra % 360.0, g_dec, g_cz, np.arange(g_ra.size), g_ra.size, 0,
                          {"ra": "ra", "dec": "dec", "cz": "cz"}, "mock survey")
    centres = Centres(np.array([f"mock{i}" for i in range(n)]), ra, dec, np.full(n, z),
                      {"ra": "ra", "dec": "dec", "z": "z"}, "mock survey")
    return table, centres


#: columns of ``clusters.csv``, in order
CSV_COLUMNS = ("name", "ra_deg", "dec_deg", "z", "status", "median", "p16", "p84", "p2.5",
               "p97.5", "n_galaxies_in_cylinder", "n_members_classifier", "msigma_log_m",
               "member_velocity_offset_kms", "leakage_fraction", "warnings", "reason")
#: extra columns with ``refine_z``
REFINED_COLUMNS = ("z_refined", "z_shift_kms")


def write_survey_outputs(result: SurveyResult, out: str | os.PathLike,
                         figures: bool = False, model=None) -> dict[str, Path]:
    """Write ``clusters.csv`` (one row per centre), ``posteriors.nc`` and optional figures.

    ``posteriors.nc`` is an ArviZ DataTree (NetCDF-4): ``posterior/log10_M200c``
    (chain = 1, draw, cluster) with the cluster names as coordinate, the settings as
    attributes. ``figures/NAME.png`` (with ``figures=True`` and the ``model``): the
    single-cluster figure of each cluster with a posterior.
    """
    import csv

    import arviz_base

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"table": out / "clusters.csv", "posteriors": out / "posteriors.nc"}
    with open(paths["table"], "w", newline="") as f:
        refined = any("z_refined" in row for row in result.rows)
        columns = CSV_COLUMNS[:4] + REFINED_COLUMNS + CSV_COLUMNS[4:] if refined else CSV_COLUMNS
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for row in result.rows:
            w.writerow({k: (f"{v:.5f}" if isinstance(v, float) and np.isfinite(v) else
                            "" if isinstance(v, float) else v) for k, v in row.items()})
    tree = arviz_base.from_dict({"posterior": {"log10_M200c": result.draws.T[None]}},
                                dims={"log10_M200c": ["cluster"]},
                                coords={"cluster": np.array(result.names, dtype=str)})
    tree.attrs.update({"units": "log10(M200c / h^-1 Msun)",
                       **{k: str(v) for k, v in result.settings.items()}})
    tmp = paths["posteriors"].with_name(".posteriors.nc.tmp")
    tree.to_netcdf(tmp, engine="h5netcdf")
    tmp.replace(paths["posteriors"])
    if figures:
        if model is None:
            raise ValueError("figures need the model (its training ranges)")
        from pyro_clusters.realfield.outputs import plot_cluster

        fig_dir = out / "figures"
        fig_dir.mkdir(exist_ok=True)
        for post, name in zip(result.posteriors, result.names, strict=True):
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
            plot_cluster(post, fig_dir / f"{safe}.png")
        paths["figures"] = fig_dir
    return paths
