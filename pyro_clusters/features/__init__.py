"""What the estimators see of a cluster.

Per-galaxy and global features, velocity dispersions, padded batches for set networks and KDE
images, each numpy function beside its torch twin.

The torch parts import torch only when called, so simulation workers stay light.
"""

from pyro_clusters.features.batches import PaddedBatch, make_batches, pad_features
from pyro_clusters.features.dispersion import (
    biweight_dispersion,
    velocity_dispersion,
    velocity_dispersion_torch,
)
from pyro_clusters.features.galaxies import (
    FeatureSpec,
    ellipse_fit,
    galaxy_features,
    set_features,
)
from pyro_clusters.features.kde import KDEImageSpec, kde_images

__all__ = ["FeatureSpec", "KDEImageSpec", "PaddedBatch", "biweight_dispersion", "ellipse_fit",
           "galaxy_features", "kde_images", "make_batches", "pad_features", "set_features",
           "velocity_dispersion", "velocity_dispersion_torch"]
