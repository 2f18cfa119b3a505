"""NFW halos: tracer radii and Jeans velocity dispersions, tabulated once and interpolated.

Everything here is dimensionless: radii u = r / R200c, velocities in units of
V200c = sqrt(G M200c / R200c). The dark matter follows NFW with concentration c,

    M(<u) / M200c = m(c u) / m(c),     m(x) = ln(1 + x) - x / (1 + x)

(Navarro, Frenk & White 1997). Satellites trace an NFW number density of concentration
c_t = k c (k = ``tracer_concentration_ratio``) with a soft outer fall-off,

    nu(u) ∝ [c_t u (1 + c_t u)^2]^-1 [1 + (u / u_t)^4]^-1,

and move with the radial dispersion of the anisotropic Jeans equation (Binney & Tremaine 2008
eq. 4.215; Mamon & Lokas 2005, MNRAS 363, 705, eq. A3) for beta(u) = beta_inf u / (u + a),
a = 1 / c (r_a = r_s, Mamon, Biviano & Boue 2013):

    sigma_r^2(u) = 1 / (nu f) ∫_u^∞ nu(s) f(s) m(c s) / (m(c) s^2) ds,
    f(s) = (s + a)^(2 beta_inf).

The tables are built per (k, u_t) once per process (about 0.3 s) and cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.integrate import cumulative_trapezoid
from scipy.interpolate import RegularGridInterpolator

__all__ = ["TracerTables", "nfw_enclosed", "tracer_tables"]

_LOG_C = np.linspace(np.log(1.0), np.log(40.0), 64)
_BETA = np.linspace(0.0, 0.95, 20)
_U_OUTER = 20.0  # Jeans integrals run to here; nu has fallen by > 1e7 from R200c by then


def nfw_enclosed(x: np.ndarray) -> np.ndarray:
    """m(x) = ln(1 + x) - x / (1 + x), the NFW enclosed-mass shape (x = r / r_s)."""
    x = np.asarray(x, dtype=float)
    return np.log1p(x) - x / (1.0 + x)


def _tracer_density(u: np.ndarray, c: np.ndarray, ratio: float, u_t: float) -> np.ndarray:
    """Unnormalised tracer number density nu(u); broadcasts ``u`` against ``c``."""
    x = ratio * c * u
    return 1.0 / (x * (1.0 + x) ** 2) / (1.0 + (u / u_t) ** 4)


@dataclass(frozen=True)
class TracerTables:
    """Inverse-CDF table of tracer radii and the Jeans sigma_r table.

    Attributes:
        ratio: tracer / dark-matter concentration ratio k.
        u_t: truncation radius of the tracer profile [R200c].
        u_max: largest radius a bound satellite can have [R200c].
    """

    ratio: float
    u_t: float
    u_max: float
    _cdf_flat: np.ndarray
    _u_cdf: np.ndarray
    _sigma_r: RegularGridInterpolator

    def sample_radius(self, c: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Draw one tracer radius per entry of ``c``.

        One uniform number p per galaxy is pushed through the inverse CDFs of the two table rows
        that bracket ln c, and the two radii are interpolated linearly in ln c (quantile
        interpolation: the tracer profile is nearly a scale family in c, so this is accurate
        to second order in the row spacing, and continuous in c).

        Args:
            c: dark-matter concentration of each galaxy's halo, shape (n,).
            rng: random generator.

        Returns:
            u = r / R200c, shape (n,), in (0, u_max].
        """
        c = np.asarray(c, dtype=float)
        step = _LOG_C[1] - _LOG_C[0]
        pos = np.clip((np.log(c) - _LOG_C[0]) / step, 0.0, len(_LOG_C) - 1.0)
        lo = np.minimum(np.floor(pos).astype(np.int64), len(_LOG_C) - 2)
        w = pos - lo
        p = rng.random(c.shape)
        return (1.0 - w) * self._quantile(p, lo) + w * self._quantile(p, lo + 1)

    def _quantile(self, p: np.ndarray, row: np.ndarray) -> np.ndarray:
        """Radius u at CDF value p in table row ``row`` (piecewise-linear inverse CDF)."""
        # Each table row is a CDF in [0, 1]; offsetting row k by 2k makes the flattened table
        # monotonic, so one searchsorted inverts every galaxy's own row at once.
        target = p + 2.0 * row
        n_u = self._u_cdf.size
        idx = np.searchsorted(self._cdf_flat, target)
        idx = np.clip(idx, row * n_u + 1, row * n_u + n_u - 1)
        lo, hi = self._cdf_flat[idx - 1], self._cdf_flat[idx]
        frac = np.where(hi > lo, (target - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0)
        j = idx - row * n_u
        return self._u_cdf[j - 1] + frac * (self._u_cdf[j] - self._u_cdf[j - 1])

    def sigma_r(self, u: np.ndarray, c: np.ndarray, beta_inf: np.ndarray) -> np.ndarray:
        """Radial velocity dispersion sigma_r / V200c at radius u for halo (c, beta_inf).

        Args:
            u: radius [R200c], shape (n,).
            c: dark-matter concentration, shape (n,).
            beta_inf: outer anisotropy, shape (n,).

        Returns:
            sigma_r / V200c, shape (n,).
        """
        pts = np.column_stack(
            [
                np.clip(np.log(c), _LOG_C[0], _LOG_C[-1]),
                np.clip(beta_inf, _BETA[0], _BETA[-1]),
                np.log(np.clip(u, 1e-3, self.u_max)),
            ]
        )
        return self._sigma_r(pts)


def _build(ratio: float, u_t: float, u_max: float) -> TracerTables:
    c = np.exp(_LOG_C)[:, None]

    # Inverse CDF of radii: dN ∝ u^2 nu(u) du on [0, u_max], finer near the centre.
    u_cdf = u_max * np.linspace(0.0, 1.0, 2049) ** 2
    u_safe = np.maximum(u_cdf, 1e-9)
    dens = u_safe**2 * _tracer_density(u_safe, c, ratio, u_t)
    cdf = cumulative_trapezoid(dens, u_cdf, axis=1, initial=0.0)
    cdf /= cdf[:, -1:]
    cdf_flat = (cdf + 2.0 * np.arange(len(_LOG_C))[:, None]).ravel()

    # Jeans integral on a fine log grid, integrated from the outside in.
    s = np.geomspace(1e-4, _U_OUTER, 6000)
    u_tab = np.geomspace(1e-3, u_max, 160)
    sig = np.empty((len(_LOG_C), len(_BETA), u_tab.size))
    nu = _tracer_density(s[None, :], c, ratio, u_t)  # (C, S)
    mass = nfw_enclosed(c * s[None, :]) / nfw_enclosed(c)  # (C, S)
    for j, beta in enumerate(_BETA):
        f = (s[None, :] + 1.0 / c) ** (2.0 * beta)
        integrand = nu * f * mass / s[None, :] ** 2
        outer = cumulative_trapezoid(integrand[:, ::-1], -s[::-1], axis=1, initial=0.0)[:, ::-1]
        sig2 = outer / (nu * f)
        for i in range(len(_LOG_C)):
            sig[i, j] = np.interp(np.log(u_tab), np.log(s), sig2[i])
    interp = RegularGridInterpolator(
        (_LOG_C, _BETA, np.log(u_tab)), np.sqrt(np.maximum(sig, 0.0)), bounds_error=False
    )
    return TracerTables(ratio, u_t, u_max, cdf_flat, u_cdf, interp)


@lru_cache(maxsize=8)
def tracer_tables(ratio: float, u_t: float, u_max: float) -> TracerTables:
    """The (cached) tables for tracer concentration ratio ``ratio`` and truncation ``u_t``.

    Args:
        ratio: tracer / dark-matter concentration ratio.
        u_t: truncation radius [R200c].
        u_max: maximum satellite radius [R200c].
    """
    return _build(float(ratio), float(u_t), float(u_max))
