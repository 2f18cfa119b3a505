"""Every torch module of the package: set encoders, CNNs on KDE images, conditional flows."""

from pyro_clusters.nets.cnn import KDECNN2D, KDECNN3D, make_cnn
from pyro_clusters.nets.deepsets import DeepSetsEncoder, mlp
from pyro_clusters.nets.flows import ConditionalSplineFlow, GaussianFlowStack
from pyro_clusters.nets.histogram import HistogramSetEncoder, SoftHistogram, phase_space_ranges
from pyro_clusters.nets.set_embedding import DeepSetsEmbedding

__all__ = ["ConditionalSplineFlow", "DeepSetsEmbedding", "DeepSetsEncoder", "GaussianFlowStack",
           "HistogramSetEncoder", "KDECNN2D", "KDECNN3D", "SoftHistogram", "make_cnn", "mlp",
           "phase_space_ranges"]
