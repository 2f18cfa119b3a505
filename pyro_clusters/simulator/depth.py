r"""Survey depth: the galaxy selection as a physical parameter of the simulator.

The defaults describe galaxies above M* = 10^9.5 h^-1 Msun, the selection of Ho et al. 2019
(arXiv:1902.05950). A survey that reaches a stellar-mass limit m_lim sees more galaxies per
halo, more centrals of small neighbour halos and a denser field. :func:`at_depth` moves the
three together:

- **centrals**: a halo hosts a central above m_lim when its mean stellar mass reaches m_lim;
  the occupation step M_min follows the inverse of the Moster, Naab & White 2013
  (arXiv:1205.5807) stellar-to-halo mass relation at the cluster redshift
  (:func:`halo_mass_at_stellar_mass`), shifted by the same amount as at the default limit
  (so the defaults are unchanged at m_lim = 10^9.5);
- **satellites**: across luminosity-threshold samples the satellite mass scale follows the
  central one, M_1 ~ 17 M_min with alpha ~ 1 and M_0 ~ M_min (Zehavi et al. 2011, ApJ 736,
  59, arXiv:1005.2413, Table 3 and section 5), so log M_0 and log M_1 move with log M_min
  and the satellite count of a cluster scales as 10^-Delta(log M_min): x2.9 for one dex deeper
  than the default (m_lim = 10^8.5), x4.9 for 1.5 dex (10^8);
- **field**: the density of field galaxies scales as the cumulative galaxy stellar mass
  function n(> m_lim) of Baldry et al. 2012 (MNRAS 421, 621, arXiv:1111.5707; double
  Schechter fit of GAMA, :func:`field_density_ratio`): x2.5 at 10^8.5, x4.1 at 10^8;
- **neighbours**: their centrals and satellites use the same occupation; the lower end of the
  neighbour mass range follows M_min.

What the literature says about the phase space of fainter tracers -- a less concentrated
number-density profile and a slightly higher velocity dispersion for faint cluster galaxies
-- is not moved with depth here: the tracer concentration ratio and the satellite velocity bias
stay the configured ones (``HaloConfig``), and can be set by hand for a deep survey. The
masses are h^-1 Msun throughout; the Moster and Baldry relations are given in Msun and
converted with the package's h.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.special import gamma, gammaincc

from pyro_clusters.simulator.config import SimulatorConfig

__all__ = ["DEPTH_LIMITS", "REFERENCE_LOG_MSTAR", "at_depth", "field_density_ratio",
           "halo_mass_at_stellar_mass", "moster13_stellar_mass"]

#: the defaults' galaxy selection, log10(M* / h^-1 Msun) (Ho et al. 2019).
REFERENCE_LOG_MSTAR = 9.5
#: the stellar-mass limits :func:`at_depth` accepts, log10(M* / h^-1 Msun). Below ~10^7.8 the
#: relations are extrapolated: the Baldry et al. 2012 fit reaches 10^8 Msun (10^7.83 h^-1 Msun)
#: and the Moster et al. 2013 relation was matched to stellar mass functions reaching ~10^8 Msun.
#: The limits reach 0.5 dex beyond the depths the package validates (8.0-10.5) as a margin for
#: amortised training: a survey limit at the edge of the training range is read as less extreme
#: than it is, which biases the mass.
DEPTH_LIMITS = (7.5, 11.0)
#: Moster, Naab & White 2013, Table 1: M1, N, beta, gamma at z = 0 and their evolution with
#: z / (1 + z) (their eqs. 11-14); masses in Msun.
_MOSTER13 = {"M10": 11.590, "M11": 1.195, "N10": 0.0351, "N11": -0.0247,
             "beta10": 1.376, "beta11": -0.826, "gamma10": 0.608, "gamma11": 0.329}
#: Baldry et al. 2012, eq. 6 and Table 1 (GAMA, z < 0.06): log M*, phi1*, alpha1, phi2*,
#: alpha2; Msun and Mpc^-3 dex^-1 for h = 0.7 (only ratios of n(> m) are used).
_BALDRY12 = {"log_mstar": 10.66, "phi1": 3.96e-3, "alpha1": -0.35, "phi2": 0.79e-3,
             "alpha2": -1.47}
_H_PACKAGE = 0.6777


def moster13_stellar_mass(halo_mass: np.ndarray, z: float, h: float = _H_PACKAGE
                          ) -> np.ndarray:
    """Mean stellar mass of a halo, Moster, Naab & White 2013 eq. 2 (their Table 1 fit).

    m* / M = 2 N [(M / M1)^-beta + (M / M1)^gamma]^-1, with log M1, N, beta, gamma evolving
    linearly in z / (1 + z).

    Args:
        halo_mass: halo (or peak subhalo) mass [h^-1 Msun], any shape.
        z: redshift.
        h: the dimensionless Hubble constant the masses are quoted with.

    Returns:
        stellar mass [h^-1 Msun], the shape of ``halo_mass`` (0 where the mass is <= 0).
    """
    p, f = _MOSTER13, z / (1.0 + z)
    m1 = 10.0 ** (p["M10"] + p["M11"] * f)
    n = p["N10"] + p["N11"] * f
    beta, gam = p["beta10"] + p["beta11"] * f, p["gamma10"] + p["gamma11"] * f
    mass = np.asarray(halo_mass, float) / h  # Msun
    x = np.where(mass > 0, mass, 1.0) / m1
    mstar = np.where(mass > 0, 2.0 * n * mass / (x**-beta + x**gam), 0.0)
    return mstar * h


def halo_mass_at_stellar_mass(log_mstar: float, z: float) -> float:
    """log10 of the halo mass [h^-1 Msun] whose mean Moster et al. 2013 stellar mass is given.

    Args:
        log_mstar: log10(M* / h^-1 Msun).
        z: redshift.
    """
    grid = np.linspace(9.0, 16.0, 7001)
    ms = np.log10(moster13_stellar_mass(10.0**grid, z))
    if not ms[0] <= log_mstar <= ms[-1]:
        raise ValueError(f"log10 M* = {log_mstar} is outside the relation's range "
                         f"[{ms[0]:.2f}, {ms[-1]:.2f}] at z = {z}")
    return float(np.interp(log_mstar, ms, grid))


def _upper_gamma(a: float, x: float) -> float:
    """Upper incomplete gamma Gamma(a, x) for a > -1 (recurrence below 0), x > 0."""
    if a > 0:
        return float(gammaincc(a, x) * gamma(a))
    return (_upper_gamma(a + 1.0, x) - x**a * np.exp(-x)) / a


def _cumulative_smf(log_mstar_msun: float) -> float:
    p = _BALDRY12
    x = 10.0 ** (log_mstar_msun - p["log_mstar"])
    return (p["phi1"] * _upper_gamma(p["alpha1"] + 1.0, x)
            + p["phi2"] * _upper_gamma(p["alpha2"] + 1.0, x))


def field_density_ratio(log_mstar_min: float, reference: float = REFERENCE_LOG_MSTAR,
                        h: float = _H_PACKAGE) -> float:
    """n(> m_lim) / n(> m_ref) of the Baldry et al. 2012 galaxy stellar mass function.

    Args:
        log_mstar_min: the survey's limit, log10(M* / h^-1 Msun).
        reference: the limit the configured field density describes.
        h: converts h^-1 Msun to Msun.
    """
    shift = -np.log10(h)
    return _cumulative_smf(log_mstar_min + shift) / _cumulative_smf(reference + shift)


def at_depth(config: SimulatorConfig, log_mstar_min: float) -> SimulatorConfig:
    """The simulator configuration of a survey reaching ``log_mstar_min`` (module docstring).

    Args:
        config: a configuration; its occupation and field density describe galaxies above
            ``config.occupation.log_mstar_min`` (9.5 for the defaults).
        log_mstar_min: the survey's stellar-mass limit, log10(M* / h^-1 Msun); 7.5-11.0
            (:data:`DEPTH_LIMITS`; below 8.0 the relations are extrapolated).

    Returns:
        the configuration with occupation, field density and neighbour mass range moved.

    Raises:
        ValueError: a limit outside :data:`DEPTH_LIMITS`.
    """
    lo, hi = DEPTH_LIMITS
    if not lo <= log_mstar_min <= hi:
        raise ValueError(f"log_mstar_min must lie in [{lo:g}, {hi:g}] (log10 M* / h^-1 Msun), "
                         f"got {log_mstar_min}")
    occ = config.occupation
    reference = occ.log_mstar_min
    delta = (halo_mass_at_stellar_mass(log_mstar_min, config.z)
             - halo_mass_at_stellar_mass(reference, config.z))
    occupation = dataclasses.replace(occ, log_m_min=occ.log_m_min + delta,
                                     log_m0=occ.log_m0 + delta, log_m1=occ.log_m1 + delta,
                                     log_mstar_min=float(log_mstar_min))
    env = config.environment
    lo, hi = env.neighbour_log_m_range
    environment = dataclasses.replace(
        env, field_density=env.field_density * field_density_ratio(log_mstar_min, reference),
        neighbour_log_m_range=(max(min(lo + delta, hi - 0.5), 9.0), hi))
    return config.replace(occupation=occupation, environment=environment)
