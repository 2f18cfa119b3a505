"""Ragged cluster datasets in HDF5: streamed atomic writing, validated reading, torch stream.

Layout (documented for outside readers in docs/dataset_format.md)::

    /                     attrs: format, format_version, complete, package_version, n_clusters,
                                 n_galaxies, plus any metadata given (config JSON, seed, ...)
    /offsets              int64 (n_clusters + 1,)   galaxies of cluster i: offsets[i]:offsets[i+1]
    /clusters/<column>    (n_clusters,)             log_m, n_gal, latents ...
    /galaxies/<column>    (n_galaxies,)             x_proj, y_proj, v_los, member, source

A writer fills a
temporary file next to the target and renames it only after the last chunk and the ``complete``
flag are written, so an interrupted run never leaves a readable-but-wrong file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import h5py
import numpy as np

from pyro_clusters import __version__
from pyro_clusters.data.clusters import ClusterSet

__all__ = [
    "DatasetError",
    "DatasetWriter",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "ClusterDataset",
    "check_writable",
    "read_dataset",
    "split_indices",
    "write_dataset",
]

FORMAT_NAME = "pyro_clusters.clusters"
FORMAT_VERSION = 1
#: HDF5 chunk length bounds [elements]: each column's chunk is the first write's length rounded
#: up to a power of two within them, so a 20-cluster file is kilobytes, not one 64 Ki-element
#: chunk per column, and a large file still reads in long contiguous pieces.
_CHUNK_MIN, _CHUNK_MAX = 1 << 7, 1 << 16


def _chunk_length(n: int) -> int:
    """Chunk length for a column whose first write holds ``n`` elements."""
    return int(min(max(1 << max(int(n) - 1, 1).bit_length(), _CHUNK_MIN), _CHUNK_MAX))


class DatasetError(ValueError):
    """A file is not a complete pyro-clusters dataset."""


def check_writable(path: str | os.PathLike) -> Path:
    """Raise ``OSError`` now, before any work, if ``path`` cannot be written.

    Missing parent folders are created (as ``mkdir -p``); a parent that is a file, or a folder
    without write permission, raises.
    """
    path = Path(path)
    parent = path.resolve().parent
    if path.is_dir():
        raise IsADirectoryError(f"output path {path} is a directory")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise NotADirectoryError(f"cannot create the output folder {parent}: a file is in "
                                 "the way") from None
    if not os.access(parent, os.W_OK):
        raise PermissionError(f"output directory {parent} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise PermissionError(f"output file {path} exists and is not writable")
    return path


def _attr(value):
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, sort_keys=True)
    return value


class DatasetWriter:
    """Stream :class:`ClusterSet` chunks into a dataset file, atomically.

    Use as a context manager; on an exception the temporary file is removed and the target is
    left untouched::

        with DatasetWriter("train.h5", metadata={"seed": 1}) as w:
            for chunk in chunks:
                w.append(chunk)
    """

    def __init__(self, path: str | os.PathLike, metadata: dict | None = None):
        self.path = check_writable(path)
        self.metadata = dict(metadata or {})
        self._file: h5py.File | None = None
        self._tmp: str | None = None
        self.n_clusters = 0
        self.n_galaxies = 0

    def __enter__(self) -> DatasetWriter:
        fd, self._tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp.h5", dir=self.path.resolve().parent
        )
        os.close(fd)
        self._file = h5py.File(self._tmp, "w")
        f = self._file
        f.attrs["format"] = FORMAT_NAME
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["complete"] = False
        f.attrs["package_version"] = __version__
        for k, v in self.metadata.items():
            f.attrs[k] = _attr(v)
        f.create_dataset("offsets", data=np.zeros(1, np.int64), maxshape=(None,),
                         chunks=(_CHUNK_MIN,))
        f.create_group("clusters")
        f.create_group("galaxies")
        return self

    def _extend(self, group: h5py.Group, name: str, data: np.ndarray, start: int) -> None:
        if name not in group:
            group.create_dataset(name, shape=(0,), dtype=data.dtype, maxshape=(None,),
                                 chunks=(_chunk_length(len(data)),))
        ds = group[name]
        if ds.dtype != data.dtype:
            raise TypeError(f"column {name!r}: dtype {data.dtype} differs from {ds.dtype}")
        ds.resize((start + len(data),))
        ds[start:] = data

    def append(self, chunk: ClusterSet) -> None:
        """Append the clusters of ``chunk`` (same columns as earlier chunks)."""
        f = self._file
        if f is None:
            raise RuntimeError("DatasetWriter must be used as a context manager")
        if self.n_clusters and set(chunk.clusters) != set(f["clusters"]):
            raise ValueError("chunk has different cluster columns from earlier chunks")
        for name, col in chunk.clusters.items():
            self._extend(f["clusters"], name, np.asarray(col), self.n_clusters)
        for name, col in chunk.galaxies.items():
            self._extend(f["galaxies"], name, np.asarray(col), self.n_galaxies)
        off = f["offsets"]
        off.resize((self.n_clusters + len(chunk) + 1,))
        off[self.n_clusters + 1:] = chunk.offsets[1:] + self.n_galaxies
        self.n_clusters += len(chunk)
        self.n_galaxies += int(chunk.offsets[-1])

    def set_attrs(self, **attrs) -> None:
        """Add root attributes (e.g. counts known only at the end) before closing."""
        if self._file is None:
            raise RuntimeError("DatasetWriter must be used as a context manager")
        for k, v in attrs.items():
            self._file.attrs[k] = _attr(v)

    def __exit__(self, exc_type, exc, tb) -> None:
        f, self._file = self._file, None
        try:
            if exc_type is None:
                if self.n_clusters == 0:
                    raise ValueError("refusing to write a dataset with no clusters")
                f.attrs["n_clusters"] = self.n_clusters
                f.attrs["n_galaxies"] = self.n_galaxies
                f.attrs["complete"] = True
            f.close()
            if exc_type is None:
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(self._tmp, 0o666 & ~umask)  # mkstemp creates 0600
                os.replace(self._tmp, self.path)
        finally:
            if os.path.exists(self._tmp):
                os.remove(self._tmp)


def write_dataset(path: str | os.PathLike, clusters: ClusterSet, metadata: dict | None = None
                  ) -> Path:
    """Write a whole :class:`ClusterSet` to ``path`` (atomically). Returns the path."""
    with DatasetWriter(path, metadata) as w:
        w.append(clusters)
    return w.path


class ClusterDataset:
    """Read access to a dataset file: metadata, length, slices, batches.

    Opening validates the file: an HDF5 file of this format, marked complete, whose offsets agree
    with its columns. Anything else raises :class:`DatasetError`.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no dataset at {self.path}")
        if not h5py.is_hdf5(self.path):
            raise DatasetError(f"{self.path} is not an HDF5 file (truncated or foreign)")
        try:
            with h5py.File(self.path, "r") as f:
                attrs = dict(f.attrs)
                if attrs.get("format") != FORMAT_NAME:
                    raise DatasetError(f"{self.path} is not a pyro-clusters dataset "
                                       f"(format attribute {attrs.get('format')!r})")
                if not bool(attrs.get("complete", False)):
                    raise DatasetError(f"{self.path} was not completely written")
                if int(attrs.get("format_version", -1)) > FORMAT_VERSION:
                    raise DatasetError(f"{self.path} has a newer format version "
                                       f"{attrs['format_version']} than this package reads")
                offsets = f["offsets"][:]
                self.cluster_columns = list(f["clusters"])
                self.galaxy_columns = list(f["galaxies"])
                n_cl = {f["clusters"][k].shape[0] for k in self.cluster_columns}
                n_gal = {f["galaxies"][k].shape[0] for k in self.galaxy_columns}
        except (OSError, KeyError) as err:
            raise DatasetError(f"{self.path} is damaged or incomplete: {err}") from err
        if (n_cl != {offsets.size - 1} or n_gal != {int(offsets[-1])}
                or np.any(np.diff(offsets) < 0)):
            raise DatasetError(f"{self.path}: offsets disagree with the column lengths")
        self.offsets = offsets
        self.metadata = {k: _decode(v) for k, v in attrs.items()}
        obs = (self.metadata.get("config") or {}).get("observation", {})
        self.set_attrs = {k: v for k, v in {
            "setup": self.metadata.get("setup"),
            "z": (self.metadata.get("config") or {}).get("z"),
            "aperture": obs.get("aperture"), "v_cut": obs.get("v_cut"),
            "n_min": obs.get("n_min"), "source": str(self.path)}.items() if v is not None}

    def __len__(self) -> int:
        return self.offsets.size - 1

    def read(self, start: int = 0, stop: int | None = None) -> ClusterSet:
        """Clusters ``start:stop`` as a :class:`ClusterSet`."""
        stop = len(self) if stop is None else min(stop, len(self))
        if not 0 <= start <= stop:
            raise IndexError(f"bad slice {start}:{stop} of {len(self)} clusters")
        lo, hi = int(self.offsets[start]), int(self.offsets[stop])
        with h5py.File(self.path, "r") as f:
            clusters = {k: f["clusters"][k][start:stop] for k in self.cluster_columns}
            galaxies = {k: f["galaxies"][k][lo:hi] for k in self.galaxy_columns}
        return ClusterSet(clusters, galaxies, self.offsets[start:stop + 1] - lo, self.set_attrs)

    def read_index(self, index: np.ndarray) -> ClusterSet:
        """Clusters at the given indices (any order), read slice by slice."""
        index = np.asarray(index, dtype=np.int64)
        if index.size == 0:
            raise ValueError("empty index")
        lo, hi = int(index.min()), int(index.max()) + 1
        return self.read(lo, hi).select(index - lo)

def _decode(value):
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_dataset(path: str | os.PathLike) -> tuple[ClusterSet, dict]:
    """Read a whole dataset: (clusters, metadata)."""
    ds = ClusterDataset(path)
    return ds.read(), ds.metadata


def split_indices(
    n: int, fractions: tuple[float, ...] = (0.8, 0.1, 0.1), seed: int = 0,
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, ...]:
    """Random disjoint split of cluster indices, never sharing a cluster (or a group).

    Args:
        n: number of clusters.
        fractions: share of each part (normalised to sum to one).
        seed: seed of the shuffle.
        groups: optional group id per cluster (e.g. the halo id of several lines of sight of
            one N-body halo); all clusters of a group go to the same part.

    Returns:
        One sorted int64 index array per part.
    """
    frac = np.asarray(fractions, dtype=float)
    if n <= 0 or frac.size < 1 or np.any(frac < 0) or frac.sum() <= 0:
        raise ValueError("need n > 0 and non-negative fractions with a positive sum")
    frac = frac / frac.sum()
    rng = np.random.default_rng(seed)
    groups = np.arange(n) if groups is None else np.asarray(groups)
    if groups.shape != (n,):
        raise ValueError(f"groups must have shape ({n},)")
    uniq, inverse = np.unique(groups, return_inverse=True)
    order = rng.permutation(uniq.size)
    edges = np.round(np.cumsum(frac) * uniq.size).astype(int)
    part_of_group = np.empty(uniq.size, dtype=np.int64)
    part_of_group[order] = np.searchsorted(edges, np.arange(uniq.size), side="right")
    part = part_of_group[inverse]
    return tuple(np.flatnonzero(part == k) for k in range(frac.size))
