"""Neural networks: set encoders."""

from pyro_clusters.nets.deepsets import DeepSetsEncoder, mlp

__all__ = ["DeepSetsEncoder", "mlp"]
