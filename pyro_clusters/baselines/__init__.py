"""Classical baselines: the M-sigma relation and interloper removal."""

from pyro_clusters.baselines.membership import shifting_gapper, sigma_clipping
from pyro_clusters.baselines.msigma import MSigmaFit, fit_msigma, velocity_dispersion

__all__ = ["MSigmaFit", "fit_msigma", "shifting_gapper", "sigma_clipping", "velocity_dispersion"]
