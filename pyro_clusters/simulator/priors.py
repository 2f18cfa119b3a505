"""Distributions of theta = log10(M200c / h^-1 Msun): flat training prior, HMF test sampler.

Ho et al. 2019, section 2.3: training sets are flat in log M (no prior imposed by abundance); test
sets follow the halo mass function. The HMF here is Tinker et al. 2008 for M200c (colossus) at
the simulator's redshift and cosmology.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from pyro_clusters import defaults
from pyro_clusters.cosmology import get_cosmology
from pyro_clusters.simulator.config import SUPPORTED_LOG_MASS_RANGE

if TYPE_CHECKING:  # torch is imported only where sbi objects are built
    import torch

__all__ = ["FlatLogMassPrior", "HaloMassFunctionSampler", "halo_mass_function", "hmf_cumulative",
           "make_sampler"]


def _check_range(lo: float, hi: float) -> None:
    s_lo, s_hi = SUPPORTED_LOG_MASS_RANGE
    if not (s_lo <= lo < hi <= s_hi):
        raise ValueError(
            f"log-mass range [{lo}, {hi}] must be ordered and inside the supported range "
            f"[{s_lo}, {s_hi}] (log10 M200c / h^-1 Msun)"
        )


@dataclass(frozen=True)
class FlatLogMassPrior:
    """Uniform prior on log10(M200c / h^-1 Msun) over [lo, hi]; default 13.5-15.5."""

    lo: float = defaults.PRIOR_RANGE[0]
    hi: float = defaults.PRIOR_RANGE[1]
    name: str = "flat"

    def __post_init__(self) -> None:
        _check_range(self.lo, self.hi)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``n`` values of log10 M, shape (n,)."""
        return rng.uniform(self.lo, self.hi, n)

    def density(self, log_m: np.ndarray) -> np.ndarray:
        """Normalised density in log10 M (per dex), zero outside [lo, hi]."""
        log_m = np.asarray(log_m, dtype=np.float64)
        return np.where((log_m >= self.lo) & (log_m <= self.hi), 1.0 / (self.hi - self.lo), 0.0)

    def to_dict(self) -> dict:
        """``{"kind", "lo", "hi"}``; :func:`make_sampler` rebuilds it."""
        return {"kind": self.name, "lo": self.lo, "hi": self.hi}

    def to_sbi(self) -> torch.distributions.Distribution:
        """The same prior as an ``sbi`` BoxUniform over a 1-D theta."""
        import torch
        from sbi.utils import BoxUniform

        return BoxUniform(torch.tensor([self.lo]), torch.tensor([self.hi]))


def halo_mass_function(log_m: np.ndarray, z: float) -> np.ndarray:
    """dn/dlog10 M of M200c halos, Tinker et al. 2008 (colossus, package cosmology).

    Args:
        log_m: log10(M200c / h^-1 Msun), any shape.
        z: redshift.

    Returns:
        Comoving number density per dex [h^3 Mpc^-3 dex^-1], same shape as ``log_m``.
    """
    from colossus.lss import mass_function

    get_cosmology()
    return np.log(10.0) * mass_function.massFunction(
        10.0 ** np.asarray(log_m), z, mdef="200c", model="tinker08", q_out="dndlnM")


@lru_cache(maxsize=8)
def hmf_cumulative(lo: float, hi: float, z: float, n: int = 2001
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Comoving number density of halos between ``lo`` and each grid mass.

    Returns:
        (grid of log10 M, ``n`` points over [lo, hi]; cumulative density [h^3 Mpc^-3]) by the
        trapezoid rule on :func:`halo_mass_function`.
    """
    grid = np.linspace(lo, hi, n)
    dn = halo_mass_function(grid, z)
    return grid, np.concatenate([[0.0], np.cumsum(0.5 * (dn[1:] + dn[:-1]) * np.diff(grid))])


def _hmf_cdf(lo: float, hi: float, z: float) -> tuple[np.ndarray, np.ndarray]:
    grid, cum = hmf_cumulative(lo, hi, z)
    return grid, cum / cum[-1]


@dataclass(frozen=True)
class HaloMassFunctionSampler:
    """log10 M drawn from the halo mass function dn/dlogM over [lo, hi] (test sets).

    Default range 14.0-15.3 (the test range of Wang, Thiele & Ho 2026).
    """

    lo: float = defaults.TEST_RANGE[0]
    hi: float = defaults.TEST_RANGE[1]
    z: float = defaults.Z
    name: str = "hmf"

    def __post_init__(self) -> None:
        _check_range(self.lo, self.hi)
        if self.z < 0:
            raise ValueError(f"z must be >= 0, got {self.z}")

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``n`` values of log10 M by inverting the tabulated HMF CDF, shape (n,)."""
        grid, cdf = _hmf_cdf(self.lo, self.hi, self.z)
        return np.interp(rng.random(n), cdf, grid)

    def density(self, log_m: np.ndarray) -> np.ndarray:
        """Normalised density in log10 M (per dex), zero outside [lo, hi]."""
        grid, cdf = _hmf_cdf(self.lo, self.hi, self.z)
        pdf = np.gradient(cdf, grid)
        return np.where((log_m >= self.lo) & (log_m <= self.hi), np.interp(log_m, grid, pdf), 0.0)

    def to_dict(self) -> dict:
        """``{"kind", "lo", "hi", "z"}``; :func:`make_sampler` rebuilds it."""
        return {"kind": self.name, "lo": self.lo, "hi": self.hi, "z": self.z}


def make_sampler(kind: str, lo: float | None = None, hi: float | None = None,
                 z: float = defaults.Z) -> FlatLogMassPrior | HaloMassFunctionSampler:
    """Build the ``flat`` prior or the ``hmf`` sampler, with default ranges unless given."""
    if kind == "flat":
        lo_d, hi_d = defaults.PRIOR_RANGE
        return FlatLogMassPrior(lo if lo is not None else lo_d, hi if hi is not None else hi_d)
    if kind == "hmf":
        lo_d, hi_d = defaults.TEST_RANGE
        return HaloMassFunctionSampler(lo if lo is not None else lo_d,
                                       hi if hi is not None else hi_d, z)
    raise ValueError(f"unknown prior {kind!r}: use 'flat' or 'hmf'")
