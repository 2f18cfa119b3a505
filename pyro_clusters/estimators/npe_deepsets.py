"""Neural posterior estimation with Deep Sets and a Pyro conditional spline flow (``npe_deepsets``).

Papers/002 sections 2.2 and 3: the flow models the residual about the M-sigma baseline,

    r = log10 M - log10 M_base,    p(log M | x) = p_flow(r = log M - log M_base | c(x)),

(a shift, unit Jacobian), where c(x) is the final context of the hierarchical Deep Sets encoder
(:class:`~pyro_clusters.nets.deepsets.DeepSetsEncoder`) and the flow is
``pyro.distributions.transforms.conditional_spline`` on a standard-normal base whose tensors are
module buffers (so ``.to(device)`` moves them; pyro issue 2761). r is standardised with the
training set's mean and standard deviation before the flow; encoder and flow are trained
jointly by maximum likelihood (papers/002 eq. 4).

Each cluster is embedded once, however many draws or grid points are asked for.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyro.distributions.transforms as T
import torch
from torch import nn

from pyro_clusters.data.clusters import ClusterSet
from pyro_clusters.estimators.base import Estimator
from pyro_clusters.estimators.model_files import read_model, write_model
from pyro_clusters.estimators.msigma import MSigmaConfig, MSigmaEstimator
from pyro_clusters.features import (
    FeatureSpec,
    PaddedBatch,
    check_same_setup,
    make_batches,
    pad_features,
    provenance,
)
from pyro_clusters.nets.deepsets import DeepSetsEncoder
from pyro_clusters.training import TrainConfig, TrainResult, train_model

__all__ = ["NPEConfig", "NPEDeepSets", "ResidualFlow"]

FORMAT = "pyro_clusters.npe_deepsets/1"


@dataclass(frozen=True)
class NPEConfig:
    """Architecture and training of the Deep Sets NPE.

    Attributes:
        hidden: width of the Deep Sets MLPs and per-galaxy latents.
        context: width of the context vector that conditions the flow.
        blocks: stacked Deep Sets blocks (papers/002: 3).
        flow_hidden: hidden layers of the spline's conditioning network (Pyro's default [10, 10]
            is too small; shared/STACK.md).
        count_bins: spline segments.
        bound: spline half-width in standardised residual units (identity outside).
        train: optimisation settings (batch 32: larger batches give too few steps per epoch
            for the flow to leave its initial plateau on a few thousand clusters).
        msigma: the baseline's configuration.
        eval_batch_size: clusters per batch when embedding for sampling.
        extra_features: names of galaxy columns appended to the per-galaxy features (e.g. the
            classifier's ``p_member`` in the cylinder setup, papers/002 section 4).
    """

    hidden: int = 64
    context: int = 32
    blocks: int = 3
    flow_hidden: tuple[int, ...] = (64, 64)
    count_bins: int = 8
    bound: float = 5.0
    train: TrainConfig = field(default_factory=lambda: TrainConfig(batch_size=32))
    msigma: MSigmaConfig = field(default_factory=MSigmaConfig)
    eval_batch_size: int = 512
    extra_features: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, d: dict) -> NPEConfig:
        """Inverse of ``dataclasses.asdict``."""
        d = dict(d)
        d["flow_hidden"] = tuple(d.get("flow_hidden", (64, 64)))
        d["extra_features"] = tuple(d.get("extra_features", ()))
        d["train"] = TrainConfig(**d.get("train", {}))
        d["msigma"] = MSigmaConfig(**d.get("msigma", {}))
        return cls(**d)


class ResidualFlow(nn.Module):
    """Deep Sets encoder + conditional spline flow on the standardised residual."""

    def __init__(self, galaxy_features: int, global_features: int, config: NPEConfig):
        super().__init__()
        self.encoder = DeepSetsEncoder(galaxy_features, global_features, config.hidden,
                                       config.context, config.blocks)
        self.transform = T.conditional_spline(1, config.context,
                                              hidden_dims=list(config.flow_hidden),
                                              count_bins=config.count_bins, bound=config.bound,
                                              order="linear")
        self.register_buffer("base_loc", torch.zeros(1))
        self.register_buffer("base_scale", torch.ones(1))

    def embed(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Context (B, C) of a padded batch."""
        return self.encoder(x, mask, g)[0]

    def log_prob(self, z: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Log density of standardised residuals ``z`` (..., B) given contexts (B, C)."""
        import pyro.distributions as dist

        base = dist.Normal(self.base_loc, self.base_scale).to_event(1)
        flow = dist.ConditionalTransformedDistribution(base, [self.transform]).condition(context)
        return flow.log_prob(z.unsqueeze(-1))

    def sample(self, n: int, context: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Draw n standardised residuals per context, (n, B).

        The base noise comes from ``generator``; torch's global generator is not used.
        """
        eps = torch.randn((n, context.shape[0], 1), generator=generator,
                          device=context.device, dtype=context.dtype)
        return self.transform.condition(context)(self.base_loc + self.base_scale * eps)[..., 0]


@dataclass
class _Batch:
    x: torch.Tensor
    mask: torch.Tensor
    g: torch.Tensor
    z: torch.Tensor


class NPEDeepSets(Estimator):
    """The core estimator (see module docstring).

    Args:
        config: architecture, training and baseline settings.
    """

    name = "npe_deepsets"

    def __init__(self, config: NPEConfig | None = None):
        self.config = config or NPEConfig()
        self.baseline: MSigmaEstimator | None = None
        self.features: FeatureSpec | None = None
        self.model: ResidualFlow | None = None
        self.r_mean = 0.0
        self.r_std = 1.0
        self.trained_on: dict = {}
        self.result: TrainResult | None = None
        self.train_seconds: float | None = None

    # -- data -----------------------------------------------------------------------------
    def _check_data(self, clusters: ClusterSet) -> None:
        check_same_setup(self.trained_on, clusters)

    def _extra(self, clusters: ClusterSet) -> dict[str, np.ndarray]:
        missing = [n for n in self.config.extra_features if n not in clusters.galaxies]
        if missing:
            raise ValueError(f"the model uses galaxy feature(s) {missing} that these clusters do "
                             "not have (for classifier probabilities: "
                             "MembershipClassifier.annotate)")
        return {n: clusters.galaxies[n] for n in self.config.extra_features}

    def _transform(self, clusters: ClusterSet) -> tuple[np.ndarray, np.ndarray]:
        return self.features.transform(clusters, self._extra(clusters))

    def _batches(self, clusters: ClusterSet, z: np.ndarray | None, batch_size: int,
                 rng: np.random.Generator | None, features: tuple | None = None):
        """Padded tensor batches; ``features`` = precomputed (galaxy, global) features."""
        gal, glob = features if features is not None else self._transform(clusters)
        dev = torch.device(self.config.train.device)
        for index in make_batches(clusters.n_gal, batch_size, rng):
            pb: PaddedBatch = pad_features(gal, glob, clusters.offsets, index)
            zz = torch.from_numpy(z[index]).to(dev) if z is not None else torch.empty(0)
            yield index, _Batch(torch.from_numpy(pb.x).to(dev), torch.from_numpy(pb.mask).to(dev),
                                torch.from_numpy(pb.g).to(dev), zz)

    @staticmethod
    def _loss(model: ResidualFlow, batch: _Batch) -> torch.Tensor:
        return -model.log_prob(batch.z, model.embed(batch.x, batch.mask, batch.g)).mean()

    # -- estimator contract ---------------------------------------------------------------
    def fit(self, train: ClusterSet, val: ClusterSet | None = None,
            checkpoint: str | os.PathLike | None = None, resume: bool = False) -> NPEDeepSets:
        """Fit the M-sigma baseline and train encoder + flow on the residuals.

        Args:
            train: training clusters (flat prior).
            val: validation clusters for early stopping (required).
            checkpoint: file for per-epoch checkpoints; ``resume=True`` continues from it.
            resume: continue an interrupted training.
        """
        if val is None:
            raise ValueError("npe_deepsets needs a validation set for early stopping")
        t0 = time.perf_counter()
        cfg = self.config
        self.trained_on = provenance(train)
        self.baseline = MSigmaEstimator(cfg.msigma).fit(train)
        r_train = train.log_m - self.baseline.predict(train)
        self.r_mean, self.r_std = float(r_train.mean()), float(r_train.std())
        z_train = ((r_train - self.r_mean) / self.r_std).astype(np.float32)
        z_val = ((val.log_m - self.baseline.predict(val) - self.r_mean) / self.r_std
                 ).astype(np.float32)
        self.features = FeatureSpec.fit(train, self._extra(train))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.train.seed)
            self.model = ResidualFlow(len(self.features.galaxy), len(self.features.global_),
                                      cfg).to(cfg.train.device)
        val_batches = [b for _, b in self._batches(val, z_val, cfg.eval_batch_size, None)]
        train_features = self._transform(train)  # once, not every epoch
        self.result = train_model(
            self.model, self._loss,
            lambda rng: (b for _, b in self._batches(train, z_train, cfg.train.batch_size, rng,
                                                     train_features)),
            val_batches, cfg.train, checkpoint=checkpoint, resume=resume)
        self.train_seconds = time.perf_counter() - t0
        return self

    def _require_fit(self) -> None:
        if self.model is None:
            raise RuntimeError("fit or load the estimator first")

    @torch.no_grad()
    def context(self, clusters: ClusterSet) -> torch.Tensor:
        """Flow contexts (n_clusters, C), each cluster embedded once."""
        self._require_fit()
        self._check_data(clusters)
        self.model.eval()
        out = torch.empty((len(clusters), self.config.context),
                          device=torch.device(self.config.train.device))
        for index, b in self._batches(clusters, None, self.config.eval_batch_size, None):
            out[torch.from_numpy(index)] = self.model.embed(b.x, b.mask, b.g)
        return out

    @torch.no_grad()
    def sample(self, clusters: ClusterSet, n: int, rng: np.random.Generator) -> np.ndarray:
        """Posterior draws of log10 M, shape (n_clusters, n)."""
        ctx = self.context(clusters)
        gen = torch.Generator(device=ctx.device).manual_seed(int(rng.integers(2**63)))
        out = np.empty((len(clusters), n))
        step = max(1, (2**22) // max(n, 1))  # bound memory: ~4M draws per flow call
        for lo in range(0, len(clusters), step):
            z = self.model.sample(n, ctx[lo:lo + step], gen)  # (n, b)
            out[lo:lo + step] = (z.T.double().cpu().numpy() * self.r_std + self.r_mean)
        return out + self.baseline.predict(clusters)[:, None]

    @torch.no_grad()
    def log_prob(self, clusters: ClusterSet, grid: np.ndarray) -> np.ndarray:
        """Log p(log10 M | x) on a grid of log10 M, shape (n_clusters, len(grid)) [per dex]."""
        ctx = self.context(clusters)
        base = self.baseline.predict(clusters)
        r = np.asarray(grid, dtype=np.float64)[:, None] - base[None, :]
        z = torch.from_numpy(((r - self.r_mean) / self.r_std).astype(np.float32)).to(ctx.device)
        lp = self.model.log_prob(z, ctx).double().cpu().numpy().T
        return lp - math.log(self.r_std)

    def save(self, path: str | os.PathLike) -> None:
        """Write the model directory ``path/``.

        ``model.json`` holds the config, features, residual scaling and what the model was
        trained on; ``msigma.json`` the baseline; ``weights.pt`` the network weights.
        """
        self._require_fit()
        meta = {"format": FORMAT, "estimator": self.name, "config": asdict(self.config),
                "features": self.features.to_dict(), "r_mean": self.r_mean,
                "r_std": self.r_std, "trained_on": self.trained_on,
                "train_seconds": self.train_seconds,
                "training": self.result.to_dict() if self.result else None}
        path = write_model(path, meta, self.model.state_dict())
        self.baseline.save(path / "msigma.json")

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> NPEDeepSets:
        """Restore a model written by :meth:`save` (optionally onto another ``device``)."""
        path = Path(path)
        meta, state = read_model(path, FORMAT, "an npe_deepsets model")
        cfg_dict = meta["config"]
        if device is not None:
            cfg_dict["train"]["device"] = device
        est = cls(NPEConfig.from_dict(cfg_dict))
        est.features = FeatureSpec(**meta["features"])
        est.r_mean, est.r_std = meta["r_mean"], meta["r_std"]
        est.trained_on = meta["trained_on"]
        est.train_seconds = meta.get("train_seconds")
        est.baseline = MSigmaEstimator.load(path / "msigma.json")
        est.model = ResidualFlow(len(est.features.galaxy), len(est.features.global_), est.config)
        est.model.load_state_dict(state)
        est.model.to(est.config.train.device).eval()
        return est
