"""pyro-clusters: dynamical masses of galaxy clusters by simulation-based inference.

Masses are ``log10(M200c / (h^-1 Msun))`` throughout, projected lengths are physical
``h^-1 Mpc`` and velocities ``km/s``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pyro-clusters")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0+unknown"

__all__ = ["__version__"]
