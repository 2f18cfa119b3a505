"""Cosmology, distances and the relativistic line-of-sight velocity.

The cosmology is set in exactly one place, :func:`get_cosmology`, because colossus keeps it as
global state. The default is the MDPL2 cosmology (Planck 2013-like) used by Ho et al. 2019
(Ho et al. 2019, section 2.1): Omega_m = 0.307, Omega_Lambda = 0.693, h = 0.678, n_s = 0.96,
sigma_8 = 0.8228.

Units: masses h^-1 Msun, lengths h^-1 Mpc (physical unless the name says comoving),
velocities km/s.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = [
    "C_KMS",
    "G_MPC_KMS2_MSUN",
    "MDPL2_PARAMS",
    "DistanceTable",
    "angular_diameter_distance",
    "colossus_cosmology",
    "distance_table",
    "get_cosmology",
    "hubble_parameter",
    "hubble_velocity",
    "los_velocity",
    "projected_to_sky",
    "r200c",
    "relativistic_add",
    "relativistic_subtract",
    "sky_to_projected",
    "v200c",
]

#: Speed of light [km/s].
C_KMS = 299_792.458
#: Newton's constant in Mpc (km/s)^2 / Msun; the h factors cancel for M in h^-1 Msun and
#: r in h^-1 Mpc.
G_MPC_KMS2_MSUN = 4.300917270e-9

#: MDPL2 cosmology (Klypin et al. 2016; Ho et al. 2019 section 2.1), in colossus' parameter names.
MDPL2_PARAMS = {
    "flat": True,
    "H0": 67.77,
    "Om0": 0.307115,
    "Ob0": 0.048206,
    "sigma8": 0.8228,
    "ns": 0.96,
    "relspecies": False,
}
_COSMOLOGY_NAME = "pyro_clusters_mdpl2"


def get_cosmology():
    """Return the colossus cosmology of the package, setting it if another one is active.

    Returns:
        The active ``colossus.cosmology.cosmology.Cosmology`` (MDPL2 parameters).
    """
    from colossus.cosmology import cosmology

    current = cosmology.current_cosmo
    if current is None or current.name != _COSMOLOGY_NAME:
        # persistence='' keeps colossus from writing its table cache concurrently from
        # several worker processes; the tables it needs take well under a second.
        current = cosmology.setCosmology(_COSMOLOGY_NAME, params=MDPL2_PARAMS, persistence="")
    return current


def hubble_parameter(z: float | np.ndarray) -> np.ndarray:
    """Hubble parameter H(z) in km/s per h^-1 Mpc (i.e. 100 E(z))."""
    return 100.0 * get_cosmology().Ez(z)


def r200c(mass: np.ndarray, z: float, cosmo=None) -> np.ndarray:
    """Physical radius enclosing 200 times the critical density.

    Args:
        mass: M200c [h^-1 Msun], any shape.
        z: redshift.
        cosmo: a colossus cosmology (:func:`colossus_cosmology`); default the package's.

    Returns:
        R200c [physical h^-1 Mpc], same shape as ``mass``.
    """
    cosmo = cosmo or get_cosmology()
    rho_c = cosmo.rho_c(z) * 1e9  # Msun h^2 / kpc^3 -> Msun h^2 / Mpc^3
    return np.cbrt(3.0 * np.asarray(mass) / (4.0 * np.pi * 200.0 * rho_c))


def v200c(mass: np.ndarray, z: float) -> np.ndarray:
    """Circular velocity at R200c, sqrt(G M200c / R200c) [km/s]."""
    mass = np.asarray(mass)
    return np.sqrt(G_MPC_KMS2_MSUN * mass / r200c(mass, z))


def relativistic_add(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Relativistic addition of collinear velocities, (u + v) / (1 + u v / c^2) [km/s]."""
    return (u + v) / (1.0 + u * v / C_KMS**2)


def relativistic_subtract(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Relativistic subtraction of collinear velocities, (u - v) / (1 - u v / c^2) [km/s]."""
    return (u - v) / (1.0 - u * v / C_KMS**2)


def hubble_velocity(z: np.ndarray) -> np.ndarray:
    """Relativistic recession velocity of redshift z [km/s]: c ((1+z)^2 - 1) / ((1+z)^2 + 1).

    Ho et al. 2019, appendix eq. 19.
    """
    a = (1.0 + np.asarray(z)) ** 2
    return C_KMS * (a - 1.0) / (a + 1.0)


@dataclass(frozen=True)
class DistanceTable:
    """Comoving distance d_C(z) [h^-1 Mpc] on a fine grid, for fast interpolation both ways.

    Ho et al. 2019, eq. 17 has no closed form; like Ho et al. we tabulate it and interpolate its
    inverse z(d_C). The grid error is below 1e-7 in z for the default spacing (tested).
    """

    z: np.ndarray
    d: np.ndarray

    def distance(self, z: np.ndarray) -> np.ndarray:
        """Comoving distance [h^-1 Mpc] at redshift ``z``."""
        return np.interp(z, self.z, self.d)

    def redshift(self, d: np.ndarray) -> np.ndarray:
        """Redshift at comoving distance ``d`` [h^-1 Mpc]."""
        if np.any(d < self.d[0]) or np.any(d > self.d[-1]):
            raise ValueError(
                f"comoving distance outside the tabulated range [{self.d[0]:.1f}, {self.d[-1]:.1f}]"
                " h^-1 Mpc"
            )
        return np.interp(d, self.d, self.z)


def colossus_cosmology(params: dict):
    """A colossus cosmology of the given parameters, *without* making it the global one.

    Used for data made in another cosmology (an N-body catalogue's own,
    :mod:`pyro_clusters.catalog`); the package's models keep :func:`get_cosmology`.

    Args:
        params: colossus parameter names (``H0``, ``Om0``, and optionally ``Ob0``, ``sigma8``,
            ``ns``, ``flat``, ``relspecies``...).
    """
    from colossus.cosmology import cosmology

    kwargs = {"flat": True, "relspecies": False, "Ob0": 0.049, "sigma8": 0.81, "ns": 0.96,
              **params}
    return cosmology.Cosmology(name="pyro_clusters_catalog", persistence="", **kwargs)


@lru_cache(maxsize=8)
def distance_table(z_max: float = 3.0, n: int = 300_001,
                   params: tuple[tuple[str, object], ...] | None = None) -> DistanceTable:
    """Build (once) the comoving-distance table from z = 0 to ``z_max``.

    d_C(z) = (c / 100) ∫_0^z dz' / E(z') [h^-1 Mpc] by cumulative Simpson integration of the
    colossus E(z) (agrees with colossus' own comovingDistance to < 1e-6 relative; tested).

    Args:
        z_max: largest tabulated redshift.
        n: grid points.
        params: ``tuple(sorted(params.items()))`` of another cosmology
            (:func:`colossus_cosmology`); None for the package's (MDPL2).
    """
    from scipy.integrate import cumulative_simpson

    cosmo = get_cosmology() if params is None else colossus_cosmology(dict(params))
    z = np.linspace(0.0, z_max, n)
    d = C_KMS / 100.0 * cumulative_simpson(1.0 / cosmo.Ez(z), x=z, initial=0.0)
    return DistanceTable(z=z, d=d)


def los_velocity(
    z_cluster: float,
    los_offset: np.ndarray,
    vpec_galaxy_los: np.ndarray,
    vpec_cluster_los: np.ndarray | float = 0.0,
    *,
    hubble_flow: bool = True,
    table: DistanceTable | None = None,
) -> np.ndarray:
    """Observed line-of-sight velocity of galaxies relative to their cluster.

    Ho et al. 2019, appendix eqs. 17-22: the galaxy's comoving distance is the
    cluster's plus its comoving line-of-sight offset (small-angle approximation), its redshift
    comes from the inverted d_C(z) table, and

        v_los = (v_gal^P,los (+) v_gal^H) (-) (v_clu^P,los (+) v_clu^H)

    with (+)/(-) the relativistic velocity addition/subtraction.

    Args:
        z_cluster: cosmological redshift of the cluster centre.
        los_offset: galaxy's line-of-sight offset from the cluster centre, physical
            [h^-1 Mpc], positive away from the observer; shape (n,).
        vpec_galaxy_los: galaxy's line-of-sight peculiar velocity in the cosmic frame [km/s];
            shape (n,).
        vpec_cluster_los: cluster's own line-of-sight peculiar velocity [km/s]; scalar or (n,).
        hubble_flow: when False, return the plain peculiar-velocity difference (for tests of
            the other components; not physical).
        table: d_C(z) table of the cosmology to use; default the package's
            (:func:`distance_table`).

    Returns:
        v_los [km/s], shape (n,).
    """
    los_offset = np.asarray(los_offset, dtype=float)
    vpec_galaxy_los = np.asarray(vpec_galaxy_los, dtype=float)
    if not hubble_flow:
        return vpec_galaxy_los - vpec_cluster_los
    table = table or distance_table()
    d_cluster = table.distance(z_cluster)
    z_galaxy = table.redshift(d_cluster + (1.0 + z_cluster) * los_offset)
    v_cluster = relativistic_add(vpec_cluster_los, hubble_velocity(z_cluster))
    v_galaxy = relativistic_add(vpec_galaxy_los, hubble_velocity(z_galaxy))
    return relativistic_subtract(v_galaxy, v_cluster)


def angular_diameter_distance(z: float | np.ndarray) -> np.ndarray:
    """Angular-diameter distance d_A = d_C / (1 + z) of the flat cosmology [h^-1 Mpc]."""
    return distance_table().distance(z) / (1.0 + np.asarray(z, dtype=float))


def redshift_of_velocity(v: np.ndarray) -> np.ndarray:
    """Inverse of :func:`hubble_velocity`: 1 + z = sqrt((1 + v/c) / (1 - v/c))."""
    beta = np.asarray(v, dtype=float) / C_KMS
    return np.sqrt((1.0 + beta) / (1.0 - beta)) - 1.0


def projected_to_sky(x_proj: np.ndarray, y_proj: np.ndarray, v_los: np.ndarray,
                     ra_center: float, dec_center: float, z_cluster: float
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Place projected galaxies on the sky around a cluster at redshift ``z_cluster``.

    Positions: the plane-of-sky offsets are tangent-plane (gnomonic) coordinates
    xi = x_proj / d_A (towards increasing RA), eta = y_proj / d_A (north). Velocities: the
    galaxy's observed recession velocity is v_los (+) v_cl, with v_cl the cluster's (Ho et al. 2019
    appendix, relativistic composition), turned into a redshift.

    Args:
        x_proj: projected offset towards increasing RA [physical h^-1 Mpc], (n,).
        y_proj: projected offset towards the north [physical h^-1 Mpc], (n,).
        v_los: line-of-sight velocity relative to the cluster [km/s], (n,).
        ra_center: cluster centre right ascension [deg].
        dec_center: cluster centre declination [deg].
        z_cluster: observed redshift of the cluster centre.

    Returns:
        RA [deg], Dec [deg], cz [km/s] (c times the observed redshift), each (n,).
    """
    d_a = float(angular_diameter_distance(z_cluster))
    xi, eta = np.asarray(x_proj, float) / d_a, np.asarray(y_proj, float) / d_a
    ra0, dec0 = np.deg2rad(ra_center), np.deg2rad(dec_center)
    denom = np.cos(dec0) - eta * np.sin(dec0)
    ra = ra0 + np.arctan2(xi, denom)
    dec = np.arctan2(np.sin(dec0) + eta * np.cos(dec0), np.hypot(xi, denom))
    v_total = relativistic_add(np.asarray(v_los, float), hubble_velocity(z_cluster))
    return np.rad2deg(ra) % 360.0, np.rad2deg(dec), C_KMS * redshift_of_velocity(v_total)


def sky_to_projected(ra: np.ndarray, dec: np.ndarray, cz: np.ndarray, ra_center: float,
                     dec_center: float, z_cluster: float
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`projected_to_sky`: (RA, Dec, cz) -> x_proj, y_proj [h^-1 Mpc], v_los.

    Args:
        ra: galaxy right ascensions [deg], (n,).
        dec: galaxy declinations [deg], (n,).
        cz: c times the observed redshift [km/s], (n,).
        ra_center: cluster centre right ascension [deg].
        dec_center: cluster centre declination [deg].
        z_cluster: observed redshift of the cluster centre.
    """
    d_a = float(angular_diameter_distance(z_cluster))
    ra, dec = np.deg2rad(np.asarray(ra, float)), np.deg2rad(np.asarray(dec, float))
    ra0, dec0 = np.deg2rad(ra_center), np.deg2rad(dec_center)
    cos_c = np.sin(dec0) * np.sin(dec) + np.cos(dec0) * np.cos(dec) * np.cos(ra - ra0)
    xi = np.cos(dec) * np.sin(ra - ra0) / cos_c
    eta = (np.cos(dec0) * np.sin(dec) - np.sin(dec0) * np.cos(dec) * np.cos(ra - ra0)) / cos_c
    v_total = hubble_velocity(np.asarray(cz, float) / C_KMS)
    return xi * d_a, eta * d_a, relativistic_subtract(v_total, hubble_velocity(z_cluster))
