"""Cluster datasets: the ragged in-memory set and its HDF5 form."""

from pyro_clusters.data.clusters import (
    CLUSTER_COLUMNS,
    GALAXY_COLUMNS,
    GALAXY_SOURCES,
    ClusterSet,
    pad,
)
from pyro_clusters.data.hdf5 import (
    ClusterDataset,
    DatasetError,
    DatasetWriter,
    read_dataset,
    split_indices,
    write_dataset,
)

__all__ = [
    "CLUSTER_COLUMNS",
    "GALAXY_COLUMNS",
    "GALAXY_SOURCES",
    "ClusterDataset",
    "ClusterSet",
    "TorchClusterStream",
    "DatasetError",
    "DatasetWriter",
    "pad",
    "read_dataset",
    "split_indices",
    "write_dataset",
]


def __getattr__(name: str):
    # The torch stream imports torch; readers and simulation workers do not need it.
    if name == "TorchClusterStream":
        from pyro_clusters.data.stream import TorchClusterStream

        return TorchClusterStream
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
