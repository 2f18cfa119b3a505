"""Posterior samples of a test set: validation, ArviZ DataTree, and the file format.

Every diagnostic takes posterior samples of theta = log10(M200c / h^-1 Msun) with shape
(n_clusters, n_draws), the true values (n_clusters,) and optional per-cluster metadata. This
module validates them once, wraps them as an ArviZ ``DataTree`` (``arviz_base.from_dict``) and
reads/writes the posterior file (documented in docs/posterior_format.md)::

    /posterior       log_m (chain=1, draw, cluster)      posterior draws, log10(M200c / h^-1 Msun)
    /constant_data   log_m_true (cluster)                true values
                     <any metadata> (cluster)            e.g. richness, n_gal
    root attrs       estimator, train_seconds, infer_ms_per_cluster (optional)

The file is NetCDF-4 (HDF5) written with the h5netcdf engine; ``xarray.open_datatree`` reads it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["PosteriorSamples", "load_posterior", "save_posterior", "validate_samples"]


def validate_samples(samples, truth) -> tuple[np.ndarray, np.ndarray]:
    """Check and convert posterior samples and truths; raise ``ValueError`` on bad input.

    Args:
        samples: (n_clusters, n_draws) array-like, log10 M.
        truth: (n_clusters,) array-like, log10 M.

    Returns:
        (samples as float64 (n, m), truth as float64 (n,)).
    """
    s = np.asarray(samples, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"samples must have shape (n_clusters, n_draws), got {s.shape}")
    if t.ndim != 1:
        raise ValueError(f"truth must have shape (n_clusters,), got {t.shape}")
    if s.shape[0] == 0:
        raise ValueError("empty set: no clusters")
    if s.shape[0] != t.shape[0]:
        raise ValueError(
            f"shape mismatch: {s.shape[0]} clusters of samples but {t.shape[0]} truths"
        )
    if s.shape[1] < 2:
        raise ValueError(f"need at least 2 draws per cluster, got {s.shape[1]}")
    bad = ~np.isfinite(s).all(axis=1)
    if bad.any():
        raise ValueError(f"{bad.sum()} cluster(s) have NaN or infinite samples "
                         f"(first at index {np.flatnonzero(bad)[0]})")
    if not np.isfinite(t).all():
        raise ValueError(f"{(~np.isfinite(t)).sum()} truth value(s) are NaN or infinite")
    return s, t


@dataclass
class PosteriorSamples:
    """Posterior draws of log10 M for a set of clusters, with the truths.

    Attributes:
        samples: (n_clusters, n_draws) log10(M200c / h^-1 Msun).
        truth: (n_clusters,) true log10 M.
        meta: per-cluster metadata arrays, each (n_clusters,) (e.g. ``richness``).
        estimator: estimator name.
        attrs: scalar run information (``train_seconds``, ``infer_ms_per_cluster``).
    """

    samples: np.ndarray
    truth: np.ndarray
    meta: dict[str, np.ndarray] = field(default_factory=dict)
    estimator: str = "unnamed"
    attrs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.samples, self.truth = validate_samples(self.samples, self.truth)
        for k, v in self.meta.items():
            v = np.asarray(v)
            if v.shape != self.truth.shape:
                raise ValueError(f"metadata {k!r} has shape {v.shape}, expected {self.truth.shape}")
            self.meta[k] = v

    @property
    def n_clusters(self) -> int:
        """Number of clusters."""
        return self.samples.shape[0]

    def to_datatree(self):
        """The samples as an ArviZ ``DataTree`` (groups ``posterior`` and ``constant_data``)."""
        import arviz_base

        dims = {"log_m": ["cluster"], "log_m_true": ["cluster"]}
        dims.update({k: ["cluster"] for k in self.meta})
        tree = arviz_base.from_dict(
            {
                "posterior": {"log_m": self.samples[None, :, :].transpose(0, 2, 1)},
                "constant_data": {"log_m_true": self.truth, **self.meta},
            },
            dims=dims,
            coords={"cluster": np.arange(self.n_clusters)},
        )
        tree.attrs.update({"estimator": self.estimator, "units": "log10(M200c / h^-1 Msun)",
                           **{k: v for k, v in self.attrs.items() if v is not None}})
        return tree

    @classmethod
    def from_datatree(cls, tree) -> PosteriorSamples:
        """Inverse of :meth:`to_datatree` (any number of chains is stacked into draws)."""
        if "posterior" not in tree.children or "log_m" not in tree["posterior"].data_vars:
            raise ValueError("the DataTree has no posterior/log_m variable")
        post = tree["posterior"]["log_m"]
        if "cluster" not in post.dims:
            raise ValueError("posterior/log_m has no 'cluster' dimension")
        samples = post.stack(sample=[d for d in post.dims if d != "cluster"]).transpose(
            "cluster", "sample").values
        if "constant_data" not in tree.children or "log_m_true" not in tree["constant_data"]:
            raise ValueError("the DataTree has no constant_data/log_m_true (the truths)")
        cdata = tree["constant_data"]
        meta = {k: cdata[k].values for k in cdata.data_vars if k != "log_m_true"}
        attrs = {k: v for k, v in tree.attrs.items()
                 if k in ("train_seconds", "infer_ms_per_cluster")}
        return cls(samples, cdata["log_m_true"].values, meta,
                   str(tree.attrs.get("estimator", "unnamed")), attrs)


def save_posterior(posterior: PosteriorSamples, path: str | os.PathLike) -> Path:
    """Write a posterior file (NetCDF-4 via h5netcdf) atomically; returns the path."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    posterior.to_datatree().to_netcdf(tmp, engine="h5netcdf")
    os.replace(tmp, path)
    return path


def load_posterior(path: str | os.PathLike) -> PosteriorSamples:
    """Read a posterior file written by :func:`save_posterior` (or any DataTree in that layout)."""
    import xarray as xr

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no posterior file at {path}")
    try:
        tree = xr.open_datatree(path, engine="h5netcdf")
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} is not a readable posterior file: {err}") from err
    with tree:
        return PosteriorSamples.from_datatree(tree.load())
