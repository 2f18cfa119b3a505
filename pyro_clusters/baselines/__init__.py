"""Classical baselines: the M-sigma relation."""

from pyro_clusters.baselines.msigma import MSigmaFit, fit_msigma, velocity_dispersion

__all__ = ["MSigmaFit", "fit_msigma", "velocity_dispersion"]
