"""pyro-clusters: dynamical masses of galaxy clusters by simulation-based inference.

Masses are ``log10(M200c / (h^-1 Msun))`` throughout, projected lengths are physical
``h^-1 Mpc`` and velocities ``km/s``.

The papers the package is built from, as the docstrings cite them:

- Ho et al. 2019: Ho, Rau, Ntampaka, Farahi, Trac & Poczos 2019, ApJ 887, 25,
  arXiv:1902.05950 (CNNs on KDE images; the mock recipe).
- Kodi Ramanah et al. 2020: Kodi Ramanah, Wojtak, Ansari, Gall & Hjorth 2020, MNRAS 499, 1985,
  arXiv:2003.05951 (a conditional flow on 2D KDE images; the richness split).
- Kodi Ramanah, Wojtak & Arendse 2021, MNRAS, "Simulation-based inference of dynamical galaxy
  cluster masses with 3D convolutional neural networks" (CNN summary + KDE slice).
- Ho et al. 2022: Ho, Ntampaka, Rau, Chen, Lansberry, Ruehle & Trac 2022, Nature Astronomy,
  arXiv:2206.14834 (the Coma mass with an MC-dropout CNN).
- Wang, Thiele & Ho 2026, arXiv:2606.12938 (Deep Sets + neural posterior estimation of the
  residual about M-sigma; the core method).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pyro-clusters")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0+unknown"

__all__ = ["__version__"]
