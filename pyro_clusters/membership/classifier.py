"""Deep Sets membership classifier (Wang, Thiele & Ho 2026 section 2.2, eq. 5; section 4).

The hierarchical Deep Sets encoder of the NPE without the flow: each galaxy's final latent
h_i^(K), which carries the cluster context, goes through a linear layer and a sigmoid to a
membership probability p_i; trained with binary cross-entropy on the simulator's true
membership, averaged over real galaxies (padding masked out). Galaxies with p > threshold
(0.5 by default) are called members. Same features, training skeleton and model directory as
the NPE (:class:`~pyro_clusters.estimators.neural.SetNetwork`). It is a model, not a mass
estimator: its output is a probability per galaxy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pyro_clusters.data.clusters import ClusterSet, ragged_rows, ragged_to_padded
from pyro_clusters.estimators.base import Splits
from pyro_clusters.estimators.neural import SetBatch, SetNetConfig, SetNetwork
from pyro_clusters.nets.deepsets import DeepSetsEncoder

__all__ = ["MembershipClassifier", "MembershipConfig", "MembershipNet"]


@dataclass(frozen=True)
class MembershipConfig(SetNetConfig):
    """Architecture and training of the classifier (the encoder fields: :class:`SetNetConfig`).

    Attributes:
        threshold: p above which a galaxy is called a member (Wang, Thiele & Ho 2026: 0.5).
    """

    threshold: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")


class MembershipNet(nn.Module):
    """Deep Sets encoder + per-galaxy logit head."""

    def __init__(self, galaxy_features: int, global_features: int, config: MembershipConfig):
        super().__init__()
        self.encoder = DeepSetsEncoder(galaxy_features, global_features, config.hidden,
                                       config.context, config.blocks)
        self.head = nn.Linear(config.hidden, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Membership logits (B, N); values at padding are meaningless."""
        _, h = self.encoder(x, mask, g)
        return self.head(h)[..., 0]


class MembershipClassifier(SetNetwork):
    """Per-galaxy membership probabilities (module docstring); ``config``: a MembershipConfig."""

    name = "deepsets_membership"
    config_class = MembershipConfig
    network_class = MembershipNet
    format = "pyro_clusters.membership/2"
    legacy_formats = ("pyro_clusters.membership/1",)

    # -- training hooks -------------------------------------------------------------------
    def _prepare(self, splits: Splits) -> Splits:
        for name, cs in (("train", splits.train), ("val", splits.val)):
            if "member" not in cs.galaxies:
                raise ValueError(f"the {name} clusters have no 'member' column to learn from")
        return super()._prepare(splits)

    def _targets(self, clusters: ClusterSet) -> np.ndarray:
        """True membership of every galaxy, (n_galaxies,) float32."""
        return clusters.galaxies["member"].astype(np.float32)

    def _batch_targets(self, clusters: ClusterSet, targets: np.ndarray, index: np.ndarray
                       ) -> np.ndarray:
        return ragged_to_padded(targets, clusters.offsets, index)[0]

    def _loss(self, model: MembershipNet, batch: SetBatch) -> torch.Tensor:
        logits = model(batch.x, batch.mask, batch.g)
        bce = nn.functional.binary_cross_entropy_with_logits(logits, batch.y, reduction="none")
        m = batch.mask.to(bce.dtype)
        return (bce * m).sum() / m.sum().clamp_min(1.0)

    # -- prediction -----------------------------------------------------------------------
    @torch.no_grad()
    def predict_proba(self, clusters: ClusterSet) -> np.ndarray:
        """Membership probability of every galaxy, (n_galaxies_total,), in the set's order."""
        self._check(clusters)
        self.model.eval()
        out = np.empty(clusters.offsets[-1], dtype=np.float32)
        for index, b in self._indexed_batches(clusters, None, None, self.config.eval_batch_size):
            p = torch.sigmoid(self.model(b.x, b.mask, b.g)).cpu().numpy()
            out[ragged_rows(clusters.offsets, index)[0]] = p[b.mask.cpu().numpy()]
        return out

    def annotate(self, clusters: ClusterSet, column: str = "p_member") -> ClusterSet:
        """The same clusters with the membership probabilities as a float32 galaxy column.

        This is how the probability reaches the NPE (``NPEConfig.extra_features``) and the
        M-sigma baseline on selected members (``MSigmaConfig(galaxies=column)``).
        """
        galaxies = dict(clusters.galaxies)
        galaxies[column] = self.predict_proba(clusters)
        return ClusterSet(clusters.clusters, galaxies, clusters.offsets, dict(clusters.attrs))

    def predict(self, clusters: ClusterSet, threshold: float | None = None) -> np.ndarray:
        """Boolean membership calls, p > threshold (default: the configured 0.5)."""
        t = self.config.threshold if threshold is None else threshold
        return self.predict_proba(clusters) > t
