"""Deep Sets membership classifier (papers/002 section 2.2, eq. 5; section 4).

The hierarchical Deep Sets encoder of the NPE without the flow: each galaxy's final latent
h_i^(K), which carries the cluster context, goes through a linear layer and a sigmoid to a
membership probability p_i; trained with binary cross-entropy on the simulator's true
membership, averaged over real galaxies (padding masked out). Galaxies with p > threshold
(0.5 by default) are called members. Same features (:mod:`pyro_clusters.features`) and the same
training machinery (:func:`pyro_clusters.training.train_model`: early stopping, checkpoints,
resume) as the NPE.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from pyro_clusters.data.clusters import ClusterSet, ragged_rows, ragged_to_padded
from pyro_clusters.estimators.model_files import read_model, write_model
from pyro_clusters.features import (
    FeatureSpec,
    check_same_setup,
    make_batches,
    pad_features,
    provenance,
)
from pyro_clusters.nets.deepsets import DeepSetsEncoder
from pyro_clusters.training import TrainConfig, TrainResult, train_model

__all__ = ["MembershipClassifier", "MembershipConfig", "MembershipNet"]

FORMAT = "pyro_clusters.membership/1"


@dataclass(frozen=True)
class MembershipConfig:
    """Architecture and training of the classifier.

    Attributes:
        hidden: width of the Deep Sets MLPs and per-galaxy latents.
        context: width of the context vector.
        blocks: stacked Deep Sets blocks (papers/002: 3).
        threshold: p above which a galaxy is called a member (papers/002: 0.5).
        train: optimisation settings.
        eval_batch_size: clusters per batch at prediction.
    """

    hidden: int = 64
    context: int = 32
    blocks: int = 3
    threshold: float = 0.5
    train: TrainConfig = field(default_factory=lambda: TrainConfig(batch_size=32))
    eval_batch_size: int = 512

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")

    @classmethod
    def from_dict(cls, d: dict) -> MembershipConfig:
        """Inverse of ``dataclasses.asdict``."""
        d = dict(d)
        d["train"] = TrainConfig(**d.get("train", {}))
        return cls(**d)


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


@dataclass
class _Batch:
    x: torch.Tensor
    mask: torch.Tensor
    g: torch.Tensor
    y: torch.Tensor


class MembershipClassifier:
    """Per-galaxy membership probabilities for observed clusters (see module docstring).

    Args:
        config: architecture, threshold and training settings.
    """

    name = "deepsets_membership"

    def __init__(self, config: MembershipConfig | None = None):
        self.config = config or MembershipConfig()
        self.features: FeatureSpec | None = None
        self.model: MembershipNet | None = None
        self.trained_on: dict = {}
        self.result: TrainResult | None = None
        self.train_seconds: float | None = None

    def _batches(self, clusters: ClusterSet, batch_size: int, rng: np.random.Generator | None,
                 features: tuple | None = None, labels: bool = True):
        gal, glob = features if features is not None else self.features.transform(clusters)
        dev = torch.device(self.config.train.device)
        member = clusters.galaxies["member"].astype(np.float32) if labels else None
        for index in make_batches(clusters.n_gal, batch_size, rng):
            pb = pad_features(gal, glob, clusters.offsets, index)
            y = (torch.from_numpy(ragged_to_padded(member, clusters.offsets, index)[0]).to(dev)
                 if labels else torch.empty(0))
            yield index, _Batch(torch.from_numpy(pb.x).to(dev), torch.from_numpy(pb.mask).to(dev),
                                torch.from_numpy(pb.g).to(dev), y)

    @staticmethod
    def _loss(model: MembershipNet, batch: _Batch) -> torch.Tensor:
        logits = model(batch.x, batch.mask, batch.g)
        bce = nn.functional.binary_cross_entropy_with_logits(logits, batch.y, reduction="none")
        m = batch.mask.to(bce.dtype)
        return (bce * m).sum() / m.sum().clamp_min(1.0)

    def fit(self, train: ClusterSet, val: ClusterSet, checkpoint: str | os.PathLike | None = None,
            resume: bool = False) -> MembershipClassifier:
        """Train on clusters whose galaxies carry the true ``member`` column.

        Args:
            train: training clusters (cylinder setup: interlopers included).
            val: validation clusters for early stopping.
            checkpoint: per-epoch checkpoint file; ``resume=True`` continues from it.
            resume: continue an interrupted training.
        """
        for name, cs in (("train", train), ("val", val)):
            if "member" not in cs.galaxies:
                raise ValueError(f"the {name} clusters have no 'member' column to learn from")
        t0 = time.perf_counter()
        cfg = self.config
        self.trained_on = provenance(train)
        self.features = FeatureSpec.fit(train)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.train.seed)
            self.model = MembershipNet(len(self.features.galaxy), len(self.features.global_),
                                       cfg).to(cfg.train.device)
        val_batches = [b for _, b in self._batches(val, cfg.eval_batch_size, None)]
        train_features = self.features.transform(train)
        self.result = train_model(
            self.model, self._loss,
            lambda rng: (b for _, b in self._batches(train, cfg.train.batch_size, rng,
                                                     train_features)),
            val_batches, cfg.train, checkpoint=checkpoint, resume=resume)
        self.train_seconds = time.perf_counter() - t0
        return self

    @torch.no_grad()
    def predict_proba(self, clusters: ClusterSet) -> np.ndarray:
        """Membership probability of every galaxy, (n_galaxies_total,), in the set's order."""
        if self.model is None:
            raise RuntimeError("fit or load the classifier first")
        check_same_setup(self.trained_on, clusters, "classifier")
        self.model.eval()
        out = np.empty(clusters.offsets[-1], dtype=np.float32)
        for index, b in self._batches(clusters, self.config.eval_batch_size, None, labels=False):
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

    def save(self, path: str | os.PathLike) -> None:
        """Write ``path/model.json`` (config, features, training) and ``path/weights.pt``."""
        if self.model is None:
            raise RuntimeError("fit the classifier before saving it")
        write_model(path, {
            "format": FORMAT, "estimator": self.name, "config": asdict(self.config),
            "features": self.features.to_dict(), "trained_on": self.trained_on,
            "train_seconds": self.train_seconds,
            "training": self.result.to_dict() if self.result else None},
            self.model.state_dict())

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> MembershipClassifier:
        """Restore a classifier written by :meth:`save`."""
        meta, state = read_model(path, FORMAT, "a membership classifier")
        if device is not None:
            meta["config"]["train"]["device"] = device
        clf = cls(MembershipConfig.from_dict(meta["config"]))
        clf.features = FeatureSpec(**meta["features"])
        clf.trained_on = meta["trained_on"]
        clf.train_seconds = meta.get("train_seconds")
        clf.model = MembershipNet(len(clf.features.galaxy), len(clf.features.global_), clf.config)
        clf.model.load_state_dict(state)
        clf.model.to(clf.config.train.device).eval()
        return clf
