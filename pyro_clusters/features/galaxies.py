"""Per-galaxy and global features of observed clusters, and padded batches for set networks.

Wang, Thiele & Ho 2026, section 3.1: an ellipse is fitted to the projected galaxy positions; each
galaxy is described by its line-of-sight velocity v_los, its projected radius R_proj and the angle
between its position and the ellipse's major axis; the cluster by the ellipticity of the ellipse.

The ellipse here is the second-moment ellipse of the positions about the cluster centre,
I = <(x, y)^T (x, y)>, with major axis along I's leading eigenvector and axis ratio
b/a = sqrt(lambda_2 / lambda_1); ellipticity e = 1 - b/a. The angle is folded to
psi in [0, pi/2]: a headless axis and the statistical mirror symmetry of a cluster make the sign
and the half-turn meaningless, so folding removes a nuisance the network would otherwise learn.

Feature layout (a documented choice, stored with every model as :class:`FeatureSpec`):
    per galaxy: v_los / 1000 km/s, R_proj / (1 h^-1 Mpc), psi / (pi/2)[, extra columns]
    global:     ellipticity
then standardised with the training set's means and standard deviations. Extra galaxy
columns (e.g. the classifier's membership probability) are named in ``FeatureSpec.galaxy``.

:func:`set_features` is the torch twin of :func:`galaxy_features` on sbi's fixed-shape padded
x (tested equal); torch is imported only when it is called.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from pyro_clusters.data.clusters import ClusterSet

if TYPE_CHECKING:
    import torch

__all__ = ["DERIVED_GLOBALS", "FeatureSpec", "background_density", "ellipse_fit",
           "galaxy_features", "global_columns", "set_features"]

GALAXY_FEATURES = ("v_los", "r_proj", "psi")
GLOBAL_FEATURES = ("ellipticity",)


def ellipse_fit(clusters: ClusterSet) -> tuple[np.ndarray, np.ndarray]:
    """Second-moment ellipse of each cluster's projected galaxy positions.

    Returns:
        (major-axis position angle [rad] in (-pi/2, pi/2], ellipticity 1 - b/a in [0, 1)),
        each (n_clusters,). A cluster with fewer than two galaxies gets angle 0, ellipticity 0.
    """
    g = clusters.galaxies
    x, y = g["x_proj"].astype(np.float64), g["y_proj"].astype(np.float64)
    idx = clusters.cluster_index()
    n = len(clusters)
    ixx = np.bincount(idx, x * x, minlength=n).astype(np.float64)
    iyy = np.bincount(idx, y * y, minlength=n).astype(np.float64)
    ixy = np.bincount(idx, x * y, minlength=n).astype(np.float64)
    angle = 0.5 * np.arctan2(2.0 * ixy, ixx - iyy)
    half_trace = 0.5 * (ixx + iyy)
    disc = np.sqrt((0.5 * (ixx - iyy)) ** 2 + ixy**2)
    lam1, lam2 = half_trace + disc, np.maximum(half_trace - disc, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ell = np.where(lam1 > 0, 1.0 - np.sqrt(lam2 / lam1), 0.0)
    few = clusters.n_gal < 2
    angle[few], ell[few] = 0.0, 0.0
    return angle, ell


def background_density(clusters: ClusterSet) -> np.ndarray:
    """log10 of the density of galaxies in the outskirts of the cylinder's phase space.

    Galaxies with R_proj > 0.625 R_ap and |v_los| > 0.68 v_cut (1.0 h^-1 Mpc and 1500 km/s
    for the defaults) are mostly field galaxies and neighbours: their number per area per
    velocity measures the survey's depth, whatever the cluster's mass. (count + 0.5) per
    [h^-2 Mpc^2 km/s], so an empty corner is finite.

    Returns:
        (n_clusters,) float64.
    """
    a = clusters.attrs
    r_ap, v_cut = float(a.get("aperture", 1.6)), float(a.get("v_cut", 2200.0))
    g = clusters.galaxies
    r = np.hypot(g["x_proj"].astype(np.float64), g["y_proj"].astype(np.float64))
    outer = (r > 0.625 * r_ap) & (np.abs(g["v_los"]) > 0.68 * v_cut)
    count = np.bincount(clusters.cluster_index(), outer, minlength=len(clusters))
    volume = np.pi * r_ap**2 * (1.0 - 0.625**2) * 2.0 * 0.32 * v_cut
    return np.log10((count + 0.5) / volume)


def membership_counts(clusters: ClusterSet) -> tuple[np.ndarray, np.ndarray]:
    """log10 of the expected numbers of members and of interlopers in each cylinder.

    N_mem = sum_i p_i and N_int = sum_i (1 - p_i) over the cluster's galaxies, with p_i the
    classifier's membership probability (galaxy column ``p_member``). At a known redshift the
    interlopers are mostly field galaxies, so N_int measures the survey's depth far better
    than the outskirts of the cylinder alone (:func:`background_density`): on simulated
    clusters over redshift 0.01-0.3 and depth 10^8-10^10.5, a regression of the depth on z,
    N_gal and the background density leaves 0.50 dex of scatter, with N_mem and N_int 0.29.
    Counts + 0.5, so an empty set is finite.

    Returns:
        (log10 N_mem, log10 N_int), each (n_clusters,) float64.

    Raises:
        ValueError: the galaxies have no ``p_member`` column (annotate them with a
            membership classifier first).
    """
    if "p_member" not in clusters.galaxies:
        raise ValueError("log_n_members / log_n_interlopers need the classifier's p_member "
                         "galaxy column; annotate the clusters first")
    p = np.asarray(clusters.galaxies["p_member"], np.float64)
    idx, n = clusters.cluster_index(), len(clusters)
    members = np.bincount(idx, p, minlength=n)
    interlopers = np.bincount(idx, 1.0 - p, minlength=n)
    return np.log10(members + 0.5), np.log10(interlopers + 0.5)


#: global features computed from the galaxies (name -> function of a ClusterSet), usable in
#: ``extra_globals`` beside the cluster columns (``z``, ...)
DERIVED_GLOBALS = {
    "log_n_gal": lambda cs: np.log10(np.maximum(cs.n_gal, 1)).astype(np.float64),
    "log_background": background_density,
    "log_n_members": lambda cs: membership_counts(cs)[0],
    "log_n_interlopers": lambda cs: membership_counts(cs)[1],
}


def global_columns(clusters: ClusterSet, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Extra global inputs by name, each (n_clusters,) float64.

    A name is a cluster column, one of :data:`DERIVED_GLOBALS`, or a number in
    ``clusters.attrs`` (e.g. ``z`` of a set simulated or observed at one redshift), broadcast
    to every cluster.

    Raises:
        ValueError: a name that is none of these.
    """
    out = {}
    for name in names:
        if name in clusters.clusters:
            out[name] = np.asarray(clusters.clusters[name], np.float64)
        elif name in DERIVED_GLOBALS:
            out[name] = DERIVED_GLOBALS[name](clusters)
        elif isinstance(clusters.attrs.get(name), (int, float, np.number)):
            out[name] = np.full(len(clusters), float(clusters.attrs[name]))
        else:
            raise ValueError(f"global input {name!r} is neither a cluster column "
                             f"({sorted(clusters.clusters)}), a number in the set's attrs, "
                             f"nor one of {sorted(DERIVED_GLOBALS)}")
    return out


def galaxy_features(clusters: ClusterSet, extra: dict[str, np.ndarray] | None = None,
                    extra_global: dict[str, np.ndarray] | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Raw (unstandardised) features.

    Args:
        clusters: the clusters.
        extra: optional additional per-galaxy columns, each (n_galaxies_total,).
        extra_global: optional additional per-cluster inputs, each (n_clusters,)
            (:func:`global_columns`).

    Returns:
        galaxy features (n_galaxies_total, 3 + n_extra) float32 and global features
        (n_clusters, 1 + n_extra_global) float32, in the layout of the module docstring.
    """
    g = clusters.galaxies
    x, y = g["x_proj"].astype(np.float64), g["y_proj"].astype(np.float64)
    angle, ell = ellipse_fit(clusters)
    r = np.hypot(x, y)
    theta = np.arctan2(y, x) - angle[clusters.cluster_index()]
    psi = np.abs(np.arctan(np.tan(theta)))  # fold to [0, pi/2]
    cols = [g["v_los"] / 1000.0, r, psi / (0.5 * np.pi)]
    for name, col in (extra or {}).items():
        col = np.asarray(col, dtype=np.float64)
        if col.shape != x.shape:
            raise ValueError(f"extra feature {name!r} has shape {col.shape}, expected {x.shape}")
        cols.append(col)
    glob = [ell]
    for name, col in (extra_global or {}).items():
        col = np.asarray(col, dtype=np.float64)
        if col.shape != ell.shape:
            raise ValueError(f"global input {name!r} has shape {col.shape}, expected "
                             f"{ell.shape}")
        glob.append(col)
    return (np.column_stack(cols).astype(np.float32),
            np.column_stack(glob).astype(np.float32))


@dataclass
class FeatureSpec:
    """Names and standardisation constants of a model's features.

    Attributes:
        galaxy: per-galaxy feature names, in column order.
        global_: global feature names.
        galaxy_mean, galaxy_std, global_mean, global_std: standardisation constants.
    """

    galaxy: list[str] = field(default_factory=lambda: list(GALAXY_FEATURES))
    global_: list[str] = field(default_factory=lambda: list(GLOBAL_FEATURES))
    galaxy_mean: list[float] = field(default_factory=list)
    galaxy_std: list[float] = field(default_factory=list)
    global_mean: list[float] = field(default_factory=list)
    global_std: list[float] = field(default_factory=list)

    @classmethod
    def fit(cls, clusters: ClusterSet, extra: dict[str, np.ndarray] | None = None,
            extra_global: dict[str, np.ndarray] | None = None) -> FeatureSpec:
        """Standardisation constants from training clusters."""
        gal, glob = galaxy_features(clusters, extra, extra_global)
        return cls(
            galaxy=list(GALAXY_FEATURES) + list(extra or {}),
            global_=list(GLOBAL_FEATURES) + list(extra_global or {}),
            galaxy_mean=gal.mean(0).tolist(), galaxy_std=(gal.std(0) + 1e-6).tolist(),
            global_mean=glob.mean(0).tolist(), global_std=(glob.std(0) + 1e-6).tolist(),
        )

    def transform(self, clusters: ClusterSet, extra: dict[str, np.ndarray] | None = None,
                  extra_global: dict[str, np.ndarray] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Standardised (galaxy, global) features; the extra columns must match the layout."""
        names = list(GALAXY_FEATURES) + list(extra or {})
        if names != self.galaxy:
            raise ValueError(f"feature layout {names} differs from the model's {self.galaxy}")
        glob_names = list(GLOBAL_FEATURES) + list(extra_global or {})
        if glob_names != self.global_:
            raise ValueError(f"global inputs {glob_names} differ from the model's "
                             f"{self.global_}")
        gal, glob = galaxy_features(clusters, extra, extra_global)
        gal = (gal - np.float32(self.galaxy_mean)) / np.float32(self.galaxy_std)
        glob = (glob - np.float32(self.global_mean)) / np.float32(self.global_std)
        return gal.astype(np.float32), glob.astype(np.float32)

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return asdict(self)


def set_features(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Raw features of padded clusters.

    Args:
        x: (B, N, 4) [x_proj, y_proj, v_los, valid] (h^-1 Mpc, h^-1 Mpc, km/s, 0/1).

    Returns:
        galaxy features (B, N, 3) [v_los/1000, R_proj, psi/(pi/2)] (zero at padding),
        mask (B, N) bool, global features (B, 1) [ellipticity].
    """
    import torch

    mask = x[..., 3] > 0.5
    m = mask.to(x.dtype)
    px, py, v = x[..., 0] * m, x[..., 1] * m, x[..., 2] * m
    ixx, iyy, ixy = (px * px).sum(1), (py * py).sum(1), (px * py).sum(1)
    angle = 0.5 * torch.atan2(2.0 * ixy, ixx - iyy)
    half_trace = 0.5 * (ixx + iyy)
    disc = torch.sqrt((0.5 * (ixx - iyy)) ** 2 + ixy ** 2)
    lam1, lam2 = half_trace + disc, (half_trace - disc).clamp_min(0.0)
    ell = torch.where(lam1 > 0, 1.0 - torch.sqrt(lam2 / lam1.clamp_min(1e-30)),
                      torch.zeros_like(lam1))
    few = m.sum(1) < 2
    angle = torch.where(few, torch.zeros_like(angle), angle)
    ell = torch.where(few, torch.zeros_like(ell), ell)
    theta = torch.atan2(py, px) - angle[:, None]
    psi = torch.abs(torch.atan(torch.tan(theta)))
    feats = torch.stack([v / 1000.0, torch.sqrt(px * px + py * py), psi / (0.5 * np.pi)], -1)
    return feats * m[..., None], mask, ell[:, None]
