"""Conditional normalising flows for a one-dimensional target.

A flow is a function of a context returning a distribution (as zuko's ``LazyDistribution``):
``flow(c)`` is a Pyro ``ConditionalTransformedDistribution`` conditioned on ``c``. The one flow
the package uses is a rational-quadratic spline (Durkan et al. 2019, arXiv:1906.04032;
``pyro.distributions.transforms.conditional_spline``) on a standard-normal base, as in Wang,
Thiele & Ho 2026 (arXiv:2606.12938). The base's tensors are module buffers, so ``.to(device)``
moves them (pyro-ppl issue 2761). The target is standardised by the caller; the same module
serves ``npe_deepsets`` and the sbi density estimator built by ``npe_deepsets_builder``.

:class:`GaussianFlowStack` is the conditional Gaussian flow of ``nf_kde2d`` (Kodi Ramanah et
al. 2020), whose output is a Gaussian for a scalar target.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import pyro.distributions.transforms as T
import torch
from torch import nn

__all__ = ["ConditionalSplineFlow", "GaussianFlowStack"]


class ConditionalSplineFlow(nn.Module):
    """p(z | c) of a standardised scalar z through a conditional spline.

    Args:
        context: width C of the context vector.
        hidden: hidden layer widths of the spline's conditioning network (Pyro's default
            [10, 10] is too small for this problem).
        count_bins: spline segments.
        bound: half-width of the spline's support in z (identity outside).
    """

    def __init__(self, context: int, hidden: tuple[int, ...] = (64, 64), count_bins: int = 8,
                 bound: float = 5.0):
        super().__init__()
        self.transform = T.conditional_spline(1, context, hidden_dims=list(hidden),
                                              count_bins=count_bins, bound=bound, order="linear")
        self.register_buffer("base_loc", torch.zeros(1))
        self.register_buffer("base_scale", torch.ones(1))

    def forward(self, context: torch.Tensor) -> dist.TorchDistribution:
        """The distribution of z (event shape (1,)) given contexts (B, C)."""
        base = dist.Normal(self.base_loc, self.base_scale).to_event(1)
        return dist.ConditionalTransformedDistribution(base, [self.transform]).condition(context)

    def log_prob(self, z: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Log-density of z (..., B) given contexts (B, C), shape (..., B)."""
        return self(context).log_prob(z.unsqueeze(-1))

    def sample(self, n: int, context: torch.Tensor, generator: torch.Generator | None = None
               ) -> torch.Tensor:
        """Draw z, (n, B): n per context; base noise from ``generator`` (None: torch's)."""
        eps = torch.randn((n, context.shape[0], 1), generator=generator, device=context.device,
                          dtype=context.dtype)
        return self.transform.condition(context)(self.base_loc + self.base_scale * eps)[..., 0]


class GaussianFlowStack(nn.Module):
    """The conditional Gaussian-flow stack of Kodi Ramanah et al. 2020 (arXiv:2003.05951).

    K blocks on a flattened image d; block k maps u_{k-1} -> u_k = (u_{k-1} - mu_k(d)) /
    sigma_k(d) with an MLP of tanh layers; u_0 = standardised target, u_K ~ N(0, 1) (their
    eqs. 5, 7). For a scalar target each block is affine, so p(u_0 | d) is Gaussian.

    Args:
        n_in: input width (pixels of the flattened image).
        blocks: K.
        hidden: hidden tanh widths of each block's MLP.
    """

    def __init__(self, n_in: int, blocks: int, hidden: tuple[int, ...]):
        super().__init__()
        nets = []
        for _ in range(blocks):
            layers: list[nn.Module] = []
            width = n_in
            for h in hidden:
                layers += [nn.Linear(width, h), nn.Tanh()]
                width = h
            nets.append(nn.Sequential(*layers, nn.Linear(width, 2)))
        self.blocks = nn.ModuleList(nets)

    def forward(self, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, n_in) -> (mu, log_sigma), each (B, K)."""
        out = torch.stack([b(d) for b in self.blocks], dim=1)  # (B, K, 2)
        return out[..., 0], out[..., 1].clamp(-7.0, 7.0)

    @staticmethod
    def log_prob(u0: torch.Tensor, mu: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
        """Log-density log p(u0 | d) of standardised targets u0 (B,) -> (B,)."""
        u = u0
        for k in range(mu.shape[1]):
            u = (u - mu[:, k]) * torch.exp(-log_sigma[:, k])
        return -0.5 * u * u - 0.5 * math.log(2 * math.pi) - log_sigma.sum(dim=1)

    @staticmethod
    def moments(mu: torch.Tensor, log_sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of u0 (the composition of affine maps)."""
        mean, std = torch.zeros_like(mu[:, 0]), torch.ones_like(mu[:, 0])
        for k in reversed(range(mu.shape[1])):
            sig = torch.exp(log_sigma[:, k])
            mean, std = mu[:, k] + sig * mean, sig * std
        return mean, std
