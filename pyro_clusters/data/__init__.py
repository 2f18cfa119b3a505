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
    "DatasetError",
    "DatasetWriter",
    "pad",
    "read_dataset",
    "split_indices",
    "write_dataset",
]

