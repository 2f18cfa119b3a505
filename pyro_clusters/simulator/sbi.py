"""The cluster simulator and its prior as ``sbi`` objects.

theta is a (batch, 1) tensor of log10(M200c / h^-1 Msun); x is a fixed-shape float32 tensor
(batch, n_max, 4) of [x_proj (h^-1 Mpc), y_proj (h^-1 Mpc), v_los (km/s), valid], galaxies
zero-padded to ``n_max`` with the explicit validity column (NaN padding breaks sbi's
``run_sbc``/``run_tarp``/single-observation paths of sbi 0.27). Galaxy order within a
cluster is random.

``n_max`` (default 2048) is far above the richest default cluster (~900 galaxies at
log M = 15.5 plus interlopers). A cluster with more galaxies than ``n_max`` raises ``ValueError``
by default (``overflow="subsample"`` keeps a random n_max of them and warns): never a silent
truncation.

A cluster with fewer than N_min observed galaxies is not an observation (Ho et al. 2019 discards
it); the simulator returns an all-NaN x for it, sbi's convention for a failed simulation, which
``append_simulations(..., exclude_invalid_x=True)`` (the default) drops. Dropping on a property
of x leaves the posterior of every kept x unchanged.

Randomness: with ``seed=None`` (default) every call draws its seed from torch's global
generator, which ``simulate_for_sbi(..., seed=S)`` seeds per batch and per worker, so sbi runs are
reproducible. With an integer ``seed`` the i-th call uses ``default_rng([seed, i])``; do not
combine that with ``num_workers > 1`` (each worker would replay the same calls).

Example::

    prior, simulator = make_sbi_simulator(SimulatorConfig(setup="idealized"))
    theta, x = simulate_for_sbi(simulator, prior, 1000, simulation_batch_size=100, seed=1)
"""

from __future__ import annotations

import numpy as np
import torch

from pyro_clusters.data.clusters import pad
from pyro_clusters.simulator.config import SimulatorConfig
from pyro_clusters.simulator.core import simulate
from pyro_clusters.simulator.priors import FlatLogMassPrior

__all__ = ["ClusterSimulator", "make_sbi_simulator"]


class ClusterSimulator:
    """Callable ``theta (B, 1) -> x (B, n_max, 4)``, both torch tensors (see module docstring).

    Args:
        config: simulator configuration.
        n_max: galaxy slots per cluster.
        overflow: ``"raise"`` or ``"subsample"`` for clusters with more than ``n_max`` galaxies.
        seed: ``None`` to follow torch's global generator (sbi's convention), or an int.
    """

    def __init__(self, config: SimulatorConfig | None = None, n_max: int = 2048,
                 overflow: str = "raise", seed: int | None = None):
        self.config = config or SimulatorConfig()
        if n_max < self.config.observation.n_min:
            raise ValueError(f"n_max={n_max} is below N_min={self.config.observation.n_min}")
        self.n_max, self.overflow, self.seed = n_max, overflow, seed
        self._calls = 0

    def _rng(self) -> np.random.Generator:
        if self.seed is None:
            return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
        self._calls += 1
        return np.random.default_rng([self.seed, self._calls - 1])

    def __call__(self, theta: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Simulate x (B, n_max, 4) for theta (B, 1) log10 M; NaN rows below N_min."""
        theta_np = np.asarray(theta, dtype=np.float64).reshape(-1, 1)
        rng = self._rng()
        clusters = simulate(theta_np[:, 0], self.config, rng)
        x = pad(clusters, self.n_max, overflow=self.overflow, rng=rng)
        x[clusters.n_gal < self.config.observation.n_min] = np.nan
        return torch.from_numpy(x)


def make_sbi_simulator(
    config: SimulatorConfig | None = None,
    prior: FlatLogMassPrior | None = None,
    n_max: int = 2048,
    overflow: str = "raise",
    seed: int | None = None,
):
    """The prior and simulator, passed through sbi's ``process_prior``/``process_simulator``.

    Args:
        config: simulator configuration (default: cylinder setup).
        prior: flat log-mass prior (default 13.5-15.5).
        n_max: galaxy slots per cluster (see :class:`ClusterSimulator`).
        overflow: ``"raise"`` or ``"subsample"`` for clusters above ``n_max``.
        seed: ``None`` (follow torch's generator, as sbi seeds it) or an int.

    Returns:
        (prior, simulator): a torch distribution over theta (1-D) and a batched callable
        returning torch tensors, as ``simulate_for_sbi`` and ``NPE`` expect.
    """
    from sbi.utils.user_input_checks import process_prior, process_simulator

    prior = prior or FlatLogMassPrior()
    sbi_prior, _, prior_returns_numpy = process_prior(prior.to_sbi())
    simulator = process_simulator(ClusterSimulator(config, n_max, overflow, seed), sbi_prior,
                                  prior_returns_numpy)
    return sbi_prior, simulator
