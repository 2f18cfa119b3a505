"""The setup constants of the package, in one place.

The default setup is the one of Ho et al. 2019 (ApJ 887, 25; arXiv:1902.05950) on MDPL2 at
z = 0.117: a cylinder of projected radius R_ap = 1.6 h^-1 Mpc and half-length v_cut = 2200 km/s
around each cluster, clusters with at least N_min = 10 galaxies, a flat training prior in
log10(M200c / h^-1 Msun) over 13.5-15.5 and test sets drawn from the halo mass function over
14.0-15.3.

Code reads these constants from here when nothing better is known. Where data exist -- a
dataset's HDF5 attributes, a model's ``trained_on`` record -- their own redshift, aperture and
velocity window win: :func:`setup_of` reads them.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["APERTURE", "N_MIN", "PRIOR_RANGE", "TEST_RANGE", "V_CUT", "Z", "setup_of"]

#: cluster redshift of the default setup.
Z: float = 0.117
#: cylinder radius R_ap [physical h^-1 Mpc].
APERTURE: float = 1.6
#: half-length of the cylinder in line-of-sight velocity, v_cut [km/s].
V_CUT: float = 2200.0
#: fewest galaxies a cluster needs to enter a dataset.
N_MIN: int = 10
#: flat training prior on log10(M200c / h^-1 Msun).
PRIOR_RANGE: tuple[float, float] = (13.5, 15.5)
#: log10(M200c / h^-1 Msun) range of the halo-mass-function test sets.
TEST_RANGE: tuple[float, float] = (14.0, 15.3)


def setup_of(attrs: Mapping) -> dict:
    """Redshift, aperture [h^-1 Mpc], v_cut [km/s] and N_min of data, defaults filled in.

    Args:
        attrs: a dataset's ``ClusterSet.attrs`` or a model's ``trained_on`` record.

    Returns:
        ``{"z", "aperture", "v_cut", "n_min"}`` -- the data's values where it states them.
    """
    return {"z": float(attrs.get("z", Z)), "aperture": float(attrs.get("aperture", APERTURE)),
            "v_cut": float(attrs.get("v_cut", V_CUT)), "n_min": int(attrs.get("n_min", N_MIN))}
