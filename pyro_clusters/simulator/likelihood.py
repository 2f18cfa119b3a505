r"""The exact likelihood of the spherical simulator, in torch (differentiable).

For :meth:`SimulatorConfig.spherical() <pyro_clusters.simulator.config.SimulatorConfig.spherical>`
the satellites of a cluster are independent draws from one phase-space density, so the
likelihood of the observed galaxies is a product over galaxies. For a satellite at projected
radius R [physical h^-1 Mpc] with line-of-sight velocity v [km/s] (MAMPOSSt: Mamon, Biviano &
Boué 2013, MNRAS 429, 3079, section 3; with the projected Gaussian line-of-sight velocity
distribution of their "Gaussian 3D" model):

.. math::

    p(R, v \mid \theta) = 2\pi R \int_{-\ell_{max}}^{\ell_{max}} n(r)\,
        \mathcal{N}\big(v;\ H_{eff}\,\ell,\ s^2(R, \ell)\big)\, d\ell, \qquad
    r = \sqrt{R^2 + \ell^2},\ \ \ell_{max} = \sqrt{r_{max}^2 - R^2},

    n(r) = \frac{\nu(r / R_{200c})}{4\pi R_{200c}^3 I(c)}, \qquad
    I(c) = \int_0^{u_{max}} u^2 \nu(u)\, du,

    s^2 = b_v^2 V_{200c}^2\, \tilde\sigma_r^2(u)\, [1 - \beta(u) R^2 / r^2] + \epsilon^2,

with theta = (log10 M200c, c, beta_inf), u = r / R200c, r_max = u_max R200c, the tracer density
nu and the anisotropy beta(u) = beta_inf u / (u + 1/c) of :mod:`.profiles`, the dimensionless
radial dispersion from the anisotropic Jeans equation (Binney & Tremaine 2008 eq. 4.215)

.. math::

    \tilde\sigma_r^2(u) = \frac{1}{\nu(u) f(u)} \int_u^{\infty} \nu(s) f(s)
        \frac{m(cs)}{m(c)\, s^2}\, ds, \qquad f(s) = (s + 1/c)^{2\beta_\infty},

b_v the satellite velocity bias, epsilon the configured redshift error, and H_eff the slope of
the simulator's relativistic line-of-sight velocity (Ho et al. 2019 appendix eqs. 17-22) with
line-of-sight offset: the observed velocity of a galaxy is its peculiar velocity plus
H_eff * l, the Hubble flow across the cluster (about 105 km/s per h^-1 Mpc at z = 0.117;
the linearisation is good to < 0.3 km/s within 6 h^-1 Mpc, tested). The
central galaxy sits at the centre at rest and carries no information; it is not part of the
likelihood.

Numerics (the only approximations; their errors are measured in tests/test_likelihood.py):
the line-of-sight integral by Gauss-Legendre quadrature in w with l = R sinh(w), which
absorbs the 1/r cusp and the r^-3 tail; the Jeans integral on a logarithmic radius grid,
segment by segment exact for a power law, with log-linear interpolation; I(c) by
Gauss-Legendre in ln u.

Richness: N_sat is Poisson about a log-normally scattered mean <N_sat>(M) exp(sigma_ln g),
g ~ N(0, 1) (:func:`.halo.satellite_counts`); its probability and the selection probability
P(1 + N_sat >= N_min | M) are integrals over g by Gauss-Hermite quadrature.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from pyro_clusters.cosmology import los_velocity, r200c, v200c
from pyro_clusters.simulator.config import SimulatorConfig

__all__ = ["SphericalLikelihood", "hubble_slope"]

_U_MIN_JEANS = 1e-4
_U_OUTER = 20.0  # as in profiles.py: the Jeans integral runs to here
_LN10 = math.log(10.0)


def hubble_slope(z: float, step: float = 0.1) -> float:
    """Slope d v_los / d l at the cluster centre [km/s per physical h^-1 Mpc].

    The slope of :func:`pyro_clusters.cosmology.los_velocity` with the galaxy's line-of-sight
    offset l, by a central difference; ~ H(z) (1 + z)-corrected for the relativistic composition.
    """
    v = los_velocity(z, np.array([-step, step]), np.zeros(2), 0.0)
    return float((v[1] - v[0]) / (2.0 * step))


class SphericalLikelihood:
    """Per-galaxy log-likelihood, richness and selection terms of the spherical simulator.

    Args:
        config: a spherical simulator configuration (``config.is_spherical``); its redshift,
            tracer profile, anisotropy family, velocity bias, occupation, redshift errors and
            N_min define the model.
        n_los: Gauss-Legendre nodes along the line of sight.
        n_jeans: points of the logarithmic radius grid of the Jeans integral.
        n_norm: Gauss-Legendre nodes of the tracer normalisation I(c).
        n_hermite: Gauss-Hermite nodes of the richness-scatter integrals.
        device: torch device.

    All tensors are float64. Parameters are scalars (0-d tensors or floats): ``log_m`` =
    log10(M200c / h^-1 Msun), ``c`` = c200c, ``beta_inf``.
    """

    def __init__(self, config: SimulatorConfig, n_los: int = 32, n_jeans: int = 256,
                 n_norm: int = 96, n_hermite: int = 40, device: str | torch.device = "cpu"):
        if not config.is_spherical:
            raise ValueError(
                "the exact likelihood exists only for the spherical simulator "
                "(SimulatorConfig.spherical(): idealized setup, no triaxiality, substructure, "
                "mergers or incompleteness)")
        from pyro_clusters.simulator.halo import _concentration_table

        self.config = config
        h, occ = config.halo, config.occupation
        kw = {"dtype": torch.float64, "device": device}
        self._kw = kw
        self.ratio, self.u_t, self.u_max = (h.tracer_concentration_ratio,
                                            h.truncation_radius_r200, h.max_radius_r200)
        self.velocity_bias = h.satellite_velocity_bias
        self.log10_c_scatter = h.concentration_scatter_dex
        self.beta_range = tuple(h.beta_inf_range) if h.anisotropic else (0.0, 0.0)
        self.velocity_error = config.observation.velocity_error_kms
        self.n_min = config.observation.n_min
        self.h_eff = hubble_slope(config.z)
        # R200c and V200c scale as M^(1/3) at fixed z.
        self._r200_14 = float(r200c(1e14, config.z))
        self._v200_14 = float(v200c(1e14, config.z))
        grid, log_c = _concentration_table(h.concentration_model, float(config.z))
        self._cm_grid = torch.as_tensor(grid, **kw)
        self._cm_log_c = torch.as_tensor(log_c, **kw)
        self._cm_index = torch.arange(len(grid), **kw)
        self._occ = (occ.log_m0, occ.log_m1, occ.alpha, occ.richness_scatter_ln)

        t, w = np.polynomial.legendre.leggauss(n_los)
        self._t_los, self._w_los = torch.as_tensor(t, **kw), torch.as_tensor(w, **kw)
        self._ln_s = torch.linspace(math.log(_U_MIN_JEANS), math.log(_U_OUTER), n_jeans, **kw)
        self._d_ln_s = float(self._ln_s[1] - self._ln_s[0])
        t, w = np.polynomial.legendre.leggauss(n_norm)
        lo, hi = math.log(1e-6), math.log(self.u_max)
        self._ln_u_norm = torch.as_tensor(0.5 * (hi - lo) * t + 0.5 * (hi + lo), **kw)
        self._w_norm = torch.as_tensor(0.5 * (hi - lo) * w, **kw)
        x, w = np.polynomial.hermite.hermgauss(n_hermite)
        self._g_herm = torch.as_tensor(math.sqrt(2.0) * x, **kw)
        self._log_w_herm = torch.as_tensor(np.log(w / math.sqrt(math.pi)), **kw)

    # ----------------------------------------------------------------------------- halo scalings
    def r200(self, log_m: torch.Tensor) -> torch.Tensor:
        """R200c [physical h^-1 Mpc]."""
        return self._r200_14 * 10.0 ** ((log_m - 14.0) / 3.0)

    def v200(self, log_m: torch.Tensor) -> torch.Tensor:
        """V200c = sqrt(G M200c / R200c) [km/s]."""
        return self._v200_14 * 10.0 ** ((log_m - 14.0) / 3.0)

    def min_log_mass(self, r_proj: np.ndarray) -> float:
        """Smallest log10 M200c whose outermost satellite radius u_max R200c reaches max(R).

        Below it the likelihood is zero: a galaxy cannot be seen outside the halo's extent.
        """
        r = float(np.max(r_proj)) if np.size(r_proj) else 0.0
        if r <= 0:
            return -math.inf
        return 14.0 + 3.0 * math.log10(r / (self.u_max * self._r200_14))

    def log10_c_median(self, log_m: torch.Tensor) -> torch.Tensor:
        """Log10 of the median c200c of the configured c-M relation.

        As the simulator: linear interpolation of ln c on a 0.05-dex grid of colossus values.
        """
        grid, vals = self._cm_grid, self._cm_log_c
        step = grid[1] - grid[0]
        t = ((log_m - grid[0]) / step).clamp(0.0, grid.numel() - 1.0)
        # Linear interpolation as a sum of hat functions: no data-dependent indexing, so
        # torch.compile keeps the whole potential in one graph.
        hat = (1.0 - (t - self._cm_index).abs()).clamp_min(0.0)
        return (hat * vals).sum(-1) / _LN10

    # ----------------------------------------------------------------------------- profiles
    def _log_nu(self, u: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Log tracer density ln nu(u): NFW of concentration k c, soft-truncated at u_t."""
        x = self.ratio * c * u
        return -torch.log(x) - 2.0 * torch.log1p(x) - torch.log1p((u / self.u_t) ** 4)

    def log_norm(self, c: torch.Tensor) -> torch.Tensor:
        """Log normalisation ln I(c), I(c) = ∫_0^{u_max} u^2 nu(u) du (= ∫ u^3 nu d ln u)."""
        ln_u = self._ln_u_norm
        return torch.logsumexp(torch.log(self._w_norm) + 3.0 * ln_u
                               + self._log_nu(torch.exp(ln_u), c), dim=0)

    def log_sigma_r2_grid(self, c: torch.Tensor, beta_inf: torch.Tensor) -> torch.Tensor:
        """Log Jeans dispersion ln sigma_r^2 / V200c^2 (no velocity bias) on the u grid, (n_jeans,).

        Integrated from the outside in, piecewise exactly for a power law between grid points;
        the last point (u = 20) is set from the one before (no query reaches it: satellites
        end at u_max).
        """
        s = torch.exp(self._ln_s)
        nfw = lambda x: torch.log1p(x) - x / (1.0 + x)  # noqa: E731
        log_nuf = self._log_nu(s, c) + 2.0 * beta_inf * torch.log(s + 1.0 / c)
        log_g = log_nuf + torch.log(nfw(c * s) / (nfw(c) * s))  # ln of the integrand in d ln s
        # Each grid segment integrated exactly for an integrand that is a power law in s
        # (exponential in ln s): Δ g_0 (e^d - 1) / d, d = ln g_1 - ln g_0. The integrand is a
        # steep power law over most of the range, where the trapezoid rule would fail.
        d = log_g[1:] - log_g[:-1]
        small = d.abs() < 1e-6
        ratio = torch.where(small, 1.0 + 0.5 * d, torch.expm1(d) / torch.where(small, 1.0, d))
        seg = self._d_ln_s * torch.exp(log_g[:-1]) * ratio
        outer = torch.flip(torch.cumsum(torch.flip(seg, [0]), 0), [0])  # ∫_{s_j}^{s_end}, j < end
        log_sig2 = torch.log(outer) - log_nuf[:-1]
        return torch.cat([log_sig2, log_sig2[-1:]])

    def _interp_grid(self, table: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Linear interpolation of a table on the Jeans grid at radii u (any shape)."""
        t = ((torch.log(u) - self._ln_s[0]) / self._d_ln_s).clamp(0.0, table.numel() - 1.000001)
        i = torch.floor(t).long()
        w = t - i
        return (1.0 - w) * table.take(i) + w * table.take(i + 1)

    def sigma_r(self, u: torch.Tensor, c: torch.Tensor, beta_inf: torch.Tensor) -> torch.Tensor:
        """Unbiased Jeans sigma_r / V200c at radii u (any shape)."""
        u = u.clamp(_U_MIN_JEANS, self.u_max)
        return torch.exp(0.5 * self._interp_grid(self.log_sigma_r2_grid(c, beta_inf), u))

    # ----------------------------------------------------------------------------- likelihood
    def log_density(self, r_proj: torch.Tensor, v_los: torch.Tensor, log_m: torch.Tensor,
                    c: torch.Tensor, beta_inf: torch.Tensor) -> torch.Tensor:
        """Log-likelihood ln p(R_i, v_i | log M, c, beta_inf) per satellite (module equation).

        Args:
            r_proj: projected radii R [physical h^-1 Mpc], (n,), all > 0.
            v_los: line-of-sight velocities [km/s] relative to the cluster, (n,).
            log_m: log10(M200c / h^-1 Msun), scalar.
            c: c200c, scalar.
            beta_inf: outer anisotropy, scalar.

        Returns:
            ln p [ln((h^-1 Mpc)^-1 (km/s)^-1)], (n,); -inf where R >= u_max R200c.
        """
        log_m, c, beta_inf = (torch.as_tensor(a, **self._kw) for a in (log_m, c, beta_inf))
        r200, v200 = self.r200(log_m), self.v200(log_m)
        r_max = self.u_max * r200
        inside = r_proj < r_max
        big_r = torch.where(inside, r_proj, 0.5 * r_max)  # placeholder keeps gradients finite
        l_max = torch.sqrt(r_max**2 - big_r**2)
        w_max = torch.asinh(l_max / big_r)  # (n,)
        w = w_max[:, None] * self._t_los  # (n, K)
        ell = big_r[:, None] * torch.sinh(w)
        r = big_r[:, None] * torch.cosh(w)
        u = r / r200
        log_sig2 = self._interp_grid(self.log_sigma_r2_grid(c, beta_inf),
                                     u.clamp(_U_MIN_JEANS, self.u_max))
        beta = beta_inf * u / (u + 1.0 / c)
        s2 = ((self.velocity_bias * v200) ** 2 * torch.exp(log_sig2)
              * (1.0 - beta * (big_r[:, None] / r) ** 2) + self.velocity_error**2)
        log_gauss = -0.5 * (torch.log(2.0 * math.pi * s2)
                            + (v_los[:, None] - self.h_eff * ell) ** 2 / s2)
        log_terms = (torch.log(w_max[:, None] * self._w_los) + torch.log(r)
                     + self._log_nu(u, c) + log_gauss)
        log_n0 = math.log(4.0 * math.pi) + 3.0 * torch.log(r200) + self.log_norm(c)
        out = math.log(2.0 * math.pi) + torch.log(big_r) - log_n0 + torch.logsumexp(log_terms, 1)
        return torch.where(inside, out, torch.full_like(out, -math.inf))

    def _log_poisson_mix(self, log_m: torch.Tensor) -> torch.Tensor:
        """Log of the scattered Poisson means at the Gauss-Hermite nodes, (n_hermite,)."""
        log_m0, log_m1, alpha, scatter = self._occ
        m = 10.0 ** torch.as_tensor(log_m, **self._kw)
        log_lam = alpha * torch.log((m - 10.0**log_m0).clamp_min(1e-300) / 10.0**log_m1)
        return log_lam + scatter * self._g_herm

    def log_richness(self, n_sat: int | torch.Tensor, log_m: torch.Tensor) -> torch.Tensor:
        """Log probability ln P(N_sat = n_sat | M), Poisson about <N_sat>(M) exp(sigma_ln g)."""
        log_mu = self._log_poisson_mix(log_m)
        n = torch.as_tensor(n_sat, **self._kw)
        log_pois = n * log_mu - torch.exp(log_mu) - torch.lgamma(n + 1.0)
        return torch.logsumexp(self._log_w_herm + log_pois, 0)

    def log_selection(self, log_m: torch.Tensor) -> torch.Tensor:
        """Log selection probability ln P(1 + N_sat >= N_min | M) of entering a data set."""
        k = self.n_min - 1  # satellites needed
        if k <= 0:
            return torch.zeros((), **self._kw)
        mu = torch.exp(self._log_poisson_mix(log_m))
        # P(N_sat <= k - 1) = Q(k, mu), the regularised upper incomplete gamma function.
        below = torch.special.gammaincc(torch.full_like(mu, float(k)), mu)
        return torch.log((torch.exp(self._log_w_herm) * (1.0 - below)).sum().clamp_min(1e-300))
