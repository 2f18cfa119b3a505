"""Hierarchical Deep Sets encoder (Wang, Thiele & Ho 2026 section 2.2, eq. 3).

Block k (k = 1..K) updates every galaxy's latent with an MLP phi_k that sees the galaxy and the
current cluster context, pools the latents by a masked mean over real galaxies, and updates the
context with an MLP rho_k:

    h_i^(k) = phi_k([h_i^(k-1), c^(k-1)]),      h_i^(0) = x_i (galaxy features)
    c^(k)   = rho_k([mean_{i valid} h_i^(k), c^(k-1)]),   c^(0) = global features

Mean pooling keeps the galaxy count out of the representation (002: "to avoid encoding cluster
richness as an implicit feature"); padding never enters the mean, so padded and unpadded
inputs give identical outputs (tested), and the output is invariant to permutations of the
galaxies (tested). The final context c^(K) conditions the flow; the final per-galaxy latents
h^(K) (which carry the context) serve the membership classifier.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DeepSetsEncoder", "cluster_units", "mlp"]


def mlp(sizes: list[int], activation: type[nn.Module] = nn.SiLU) -> nn.Sequential:
    """Fully connected network with ``activation`` between (not after) the layers."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def _first_layer(linear: nn.Linear, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``linear(cat([h, c broadcast over galaxies], -1))`` without building the concatenation.

    The context part of the product is the same for every galaxy of a cluster, so it is
    computed once per cluster: (B, N, H) @ W_h + ((B, C) @ W_c + b)[:, None] -- the same
    numbers as the concatenated product (to rounding) for about H / (H + C) of its cost.

    Args:
        linear: the layer, with ``in_features = H + C``.
        h: (B, N, H) per-galaxy inputs.
        c: (B, C) per-cluster context.

    Returns:
        (B, N, out_features).
    """
    width = h.shape[-1]
    w = linear.weight
    return (torch.nn.functional.linear(h, w[:, :width])
            + torch.nn.functional.linear(c, w[:, width:], linear.bias).unsqueeze(1))


def cluster_units(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Columns of x (B, N, K) centred on, and divided by, each cluster's own mean and std.

    Args:
        x: per-galaxy values (B, N, K), e.g. standardised R_proj and v_los.
        m: (B, N, 1) float mask of the real galaxies.

    Returns:
        (B, N, K): (x - mean) / std over each cluster's real galaxies (values at padding are
        meaningless), e.g. v_los / sigma_v -- the shape of a cluster whatever its scale. The
        std is the population one (divided by n), so that repeating every galaxy (a richer
        cluster of the same shape) changes nothing.
    """
    n = m.sum(1, keepdim=True).clamp_min(1.0)  # (B, 1, 1)
    mean = (x * m).sum(1, keepdim=True) / n
    var = (((x - mean) * m) ** 2).sum(1, keepdim=True) / n
    return (x - mean) / torch.sqrt(var + 1e-4)


class DeepSetsEncoder(nn.Module):
    """Stacked Deep Sets blocks with a global context vector.

    Args:
        galaxy_features: F, features per galaxy.
        global_features: G, global features per cluster.
        hidden: width of the hidden layers and of the per-galaxy latents.
        context: width of the context vector.
        blocks: number of stacked blocks K (Wang, Thiele & Ho 2026: 3).
        units: append R_proj and v_los in the cluster's own units (:func:`cluster_units` of
            columns ``r_col`` and ``v_col``) to every galaxy's features.
        v_col: column of v_los among the galaxy features.
        r_col: column of R_proj among the galaxy features.
    """

    def __init__(self, galaxy_features: int, global_features: int, hidden: int = 64,
                 context: int = 32, blocks: int = 3, units: bool = False, v_col: int = 0,
                 r_col: int = 1):
        super().__init__()
        if blocks < 1:
            raise ValueError("blocks must be >= 1")
        self.context_dim, self.latent_dim = context, hidden
        self.units, self.v_col, self.r_col = units, v_col, r_col
        self.c0 = mlp([global_features, hidden, context])
        self.phi = nn.ModuleList()
        self.rho = nn.ModuleList()
        width = galaxy_features + (2 if units else 0)
        for _ in range(blocks):
            self.phi.append(mlp([width + context, hidden, hidden]))
            self.rho.append(mlp([hidden + context, hidden, context]))
            width = hidden

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a padded batch.

        Args:
            x: (B, N, F) galaxy features (values at padding are ignored).
            mask: (B, N) bool, True for real galaxies.
            g: (B, G) global features.

        Returns:
            (context (B, C), per-galaxy latents (B, N, H)); latents at padding are zero.
        """
        m = mask.unsqueeze(-1).to(x.dtype)
        count = m.sum(dim=1).clamp_min(1.0)
        if self.units:
            x = torch.cat([x, cluster_units(x[..., [self.r_col, self.v_col]], m)], dim=-1)
        c = self.c0(g)
        h = x * m
        for phi, rho in zip(self.phi, self.rho, strict=True):
            h = phi[1:](_first_layer(phi[0], h, c)) * m
            pooled = h.sum(dim=1) / count
            c = rho(torch.cat([pooled, c], dim=-1))
        return c, h
