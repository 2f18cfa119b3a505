"""A set of observed clusters in ragged form: galaxy columns plus per-cluster offsets.

Galaxies of cluster i are rows ``offsets[i]:offsets[i + 1]`` of every galaxy column. This is the
in-memory twin of the HDF5 dataset (:mod:`pyro_clusters.data.hdf5`) and what the simulator
returns.

Galaxy columns:
    x_proj, y_proj   projected position relative to the cluster centre [physical h^-1 Mpc]
    v_los            line-of-sight velocity relative to the cluster [km/s]
    member           True if bound to the cluster (satellite, central, infalling group, merging
                     companion); False for interlopers
    source           int8 code of where the galaxy comes from, see ``GALAXY_SOURCES``

Cluster columns (one value per cluster): at least ``log_m`` = log10(M200c / h^-1 Msun) and
``n_gal``; the simulator adds its latents (``CLUSTER_COLUMNS`` documents them).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

__all__ = ["CLUSTER_COLUMNS", "ClusterSet", "GALAXY_COLUMNS", "GALAXY_SOURCES", "pad",
           "ragged_rows", "ragged_to_padded"]

#: Galaxy-source codes (the ``source`` column).
GALAXY_SOURCES = {
    "central": 0,
    "satellite": 1,
    "substructure": 2,
    "merger": 3,
    "neighbour_central": 4,
    "neighbour_satellite": 5,
    "field": 6,
}

#: Galaxy columns, their dtypes and units.
GALAXY_COLUMNS = {
    "x_proj": ("float32", "h^-1 Mpc (physical, projected)"),
    "y_proj": ("float32", "h^-1 Mpc (physical, projected)"),
    "v_los": ("float32", "km/s"),
    "member": ("bool", "true cluster membership"),
    "source": ("int8", "galaxy source code, see GALAXY_SOURCES"),
}

#: Cluster columns written by the simulator, their dtypes and meaning.
CLUSTER_COLUMNS = {
    "log_m": ("float64", "log10(M200c / h^-1 Msun), the parameter theta"),
    "n_gal": ("int64", "galaxies in the observation"),
    "n_members": ("int64", "true members in the observation"),
    "richness_3d": ("int64", "members of the cluster before selection (satellites + central)"),
    "r200c": ("float64", "R200c [physical h^-1 Mpc]"),
    "concentration": ("float64", "c200c of the dark matter"),
    "beta_inf": ("float64", "outer velocity anisotropy"),
    "axis_q": ("float64", "intermediate/major axis ratio b/a"),
    "axis_s": ("float64", "minor/major axis ratio c/a"),
    "los_major_cos": ("float64", "|cos| of the angle between line of sight and major axis"),
    "los_minor_cos": ("float64", "|cos| of the angle between line of sight and minor axis"),
    "has_substructure": ("bool", "an infalling group is present"),
    "has_merger": ("bool", "a merging secondary halo is present"),
    "merger_mass_ratio": ("float64", "M_secondary / M_main (0 without merger)"),
    "vpec_los": ("float64", "cluster's own line-of-sight peculiar velocity [km/s]"),
}


@dataclass
class ClusterSet:
    """Clusters in ragged form.

    Attributes:
        clusters: per-cluster columns, each shape (n_clusters,).
        galaxies: galaxy columns, each shape (n_galaxies_total,).
        offsets: int64 array, shape (n_clusters + 1,), offsets[0] = 0.
        attrs: where the clusters come from (``setup``, ``z``, ``aperture``, ``v_cut``, ...),
            kept through selection so that a model can refuse data it was not trained for.
    """

    clusters: dict[str, np.ndarray]
    galaxies: dict[str, np.ndarray]
    offsets: np.ndarray
    attrs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.offsets = np.asarray(self.offsets, dtype=np.int64)
        n = self.offsets.size - 1
        if n < 0 or self.offsets[0] != 0 or np.any(np.diff(self.offsets) < 0):
            raise ValueError("offsets must start at 0 and be non-decreasing")
        for name, col in self.clusters.items():
            if len(col) != n:
                raise ValueError(f"cluster column {name!r} has {len(col)} rows, expected {n}")
        for name, col in self.galaxies.items():
            if len(col) != self.offsets[-1]:
                raise ValueError(
                    f"galaxy column {name!r} has {len(col)} rows, expected {self.offsets[-1]}"
                )

    def __len__(self) -> int:
        return self.offsets.size - 1

    @property
    def n_gal(self) -> np.ndarray:
        """Galaxies per cluster, shape (n_clusters,)."""
        return np.diff(self.offsets)

    @property
    def log_m(self) -> np.ndarray:
        """log10(M200c / h^-1 Msun), shape (n_clusters,)."""
        return self.clusters["log_m"]

    def cluster_index(self) -> np.ndarray:
        """Index of the cluster each galaxy belongs to, shape (n_galaxies_total,)."""
        return np.repeat(np.arange(len(self)), self.n_gal)

    def galaxies_of(self, i: int) -> dict[str, np.ndarray]:
        """Galaxy columns of cluster ``i``."""
        lo, hi = self.offsets[i], self.offsets[i + 1]
        return {k: v[lo:hi] for k, v in self.galaxies.items()}

    def select(self, index: np.ndarray) -> ClusterSet:
        """Subset (or reorder) clusters by a boolean mask or an integer index array."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        counts = self.n_gal[index]
        starts = self.offsets[index]
        rows = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
        rows = rows + np.arange(counts.sum())
        return ClusterSet(
            clusters={k: v[index] for k, v in self.clusters.items()},
            galaxies={k: v[rows] for k, v in self.galaxies.items()},
            offsets=np.concatenate([[0], np.cumsum(counts)]),
            attrs=dict(self.attrs),
        )

    def filter_galaxies(self, keep: np.ndarray) -> ClusterSet:
        """Same clusters with only the galaxies where ``keep`` (n_galaxies_total,) is True.

        Cluster columns are copied unchanged (``n_gal`` there keeps the original count;
        the ``n_gal`` property reflects the filtered set).
        """
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != (self.offsets[-1],):
            raise ValueError(f"keep must have shape ({self.offsets[-1]},), got {keep.shape}")
        counts = np.bincount(self.cluster_index()[keep], minlength=len(self))
        return ClusterSet(dict(self.clusters), {k: v[keep] for k, v in self.galaxies.items()},
                          np.concatenate([[0], np.cumsum(counts)]), dict(self.attrs))

    @staticmethod
    def concatenate(sets: list[ClusterSet]) -> ClusterSet:
        """Concatenate cluster sets with the same columns, in order."""
        if not sets:
            raise ValueError("nothing to concatenate")
        counts = np.concatenate([s.n_gal for s in sets])
        return ClusterSet(
            clusters={k: np.concatenate([s.clusters[k] for s in sets]) for k in sets[0].clusters},
            galaxies={k: np.concatenate([s.galaxies[k] for s in sets]) for k in sets[0].galaxies},
            offsets=np.concatenate([[0], np.cumsum(counts)]),
            attrs=dict(sets[0].attrs),
        )

    def padded(self, n_max: int, overflow: str = "raise") -> np.ndarray:
        """Fixed-shape array (n_clusters, n_max, 4) of [x_proj, y_proj, v_los, valid].

        See :func:`pad`.
        """
        return pad(self, n_max, overflow=overflow)


def ragged_rows(offsets: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                  np.ndarray]:
    """Rows of clusters ``index`` (in that order) and each row's owner position and slot.

    Returns:
        (rows into the galaxy columns, position in ``index`` of each row's cluster, slot of each
        row within its cluster), each (sum of the clusters' sizes,). ``padded[owner, slot]``
        and ``padded[mask]`` both list the rows in this order.
    """
    counts = offsets[index + 1] - offsets[index]
    slot = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(offsets[index], counts) + slot, np.repeat(np.arange(index.size), counts), slot


def ragged_to_padded(values: np.ndarray, offsets: np.ndarray, index: np.ndarray | None = None,
                     n_max: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Scatter the ragged rows of clusters ``index`` into a zero-padded array.

    Args:
        values: (n_galaxies_total, ...) per-galaxy values; cluster i owns rows
            ``offsets[i]:offsets[i+1]``.
        offsets: (n_clusters + 1,) offsets.
        index: clusters to take, in this order (default all).
        n_max: slots per cluster (default: the largest selected cluster); must not be smaller.

    Returns:
        (padded (len(index), n_max, ...) with zeros after each cluster's rows, mask
        (len(index), n_max) True for real rows).
    """
    index = np.arange(offsets.size - 1) if index is None else np.asarray(index)
    counts = offsets[index + 1] - offsets[index]
    width = max(int(counts.max(initial=0)), 1) if n_max is None else n_max
    if counts.size and counts.max() > width:
        raise ValueError(f"a cluster has {counts.max()} rows, more than n_max={width}")
    rows, owner, slot = ragged_rows(offsets, index)
    out = np.zeros((index.size, width) + values.shape[1:], dtype=values.dtype)
    mask = np.zeros((index.size, width), dtype=bool)
    out[owner, slot] = values[rows]
    mask[owner, slot] = True
    return out, mask


def pad(clusters: ClusterSet, n_max: int, overflow: str = "raise",
        rng: np.random.Generator | None = None) -> np.ndarray:
    """Zero-pad every cluster to ``n_max`` galaxies with an explicit validity column.

    Zero padding plus a mask works on every sbi path (NaN padding does not, in sbi 0.27).

    Args:
        clusters: the clusters.
        n_max: number of galaxy slots.
        overflow: what to do with a cluster of more than ``n_max`` galaxies: ``"raise"``
            (default) raises ``ValueError`` naming the cluster; ``"subsample"`` keeps a random
            ``n_max`` of its galaxies (``rng`` required) and warns -- never silently.
        rng: random generator for ``overflow="subsample"``.

    Returns:
        float32 array (n_clusters, n_max, 4): x_proj [h^-1 Mpc], y_proj [h^-1 Mpc],
        v_los [km/s], valid (1.0 for a galaxy, 0.0 for padding).
    """
    n_gal = clusters.n_gal
    too_big = np.flatnonzero(n_gal > n_max)
    if too_big.size and overflow == "raise":
        raise ValueError(
            f"{too_big.size} cluster(s) have more than n_max={n_max} galaxies "
            f"(largest {n_gal.max()}, first at index {too_big[0]}); raise n_max or pass "
            "overflow='subsample'"
        )
    if overflow not in ("raise", "subsample"):
        raise ValueError(f"overflow must be 'raise' or 'subsample', got {overflow!r}")
    g = clusters.galaxies
    cols = np.column_stack([g["x_proj"], g["y_proj"], g["v_los"], np.ones(len(g["v_los"]))]
                           ).astype(np.float32)
    if too_big.size:
        if rng is None:
            raise ValueError("overflow='subsample' needs an rng")
        keep = np.ones(len(cols), dtype=bool)
        for i in too_big:
            lo = clusters.offsets[i]
            drop = rng.choice(n_gal[i], size=n_gal[i] - n_max, replace=False)
            keep[lo + drop] = False
        warnings.warn(
            f"{too_big.size} cluster(s) randomly subsampled to n_max={n_max} galaxies",
            stacklevel=2,
        )
        cols, n_gal = cols[keep], np.minimum(n_gal, n_max)
    return ragged_to_padded(cols, np.concatenate([[0], np.cumsum(n_gal)]), n_max=n_max)[0]
