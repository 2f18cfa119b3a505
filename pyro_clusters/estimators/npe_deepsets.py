"""Neural posterior estimation with Deep Sets and a Pyro conditional spline flow (``npe_deepsets``).

Wang, Thiele & Ho 2026, sections 2.2 and 3: the flow models the residual about the M-sigma baseline,

    r = log10 M - log10 M_base,    p(log M | x) = p_flow(r = log M - log M_base | c(x)),

(a shift, unit Jacobian), where c(x) is the final context of the hierarchical Deep Sets encoder
(:class:`~pyro_clusters.nets.deepsets.DeepSetsEncoder`) and the flow is the conditional spline
of :class:`~pyro_clusters.nets.flows.ConditionalSplineFlow`. r is standardised with the
training set's mean and standard deviation before the flow; encoder and flow are trained
jointly by maximum likelihood (Wang, Thiele & Ho 2026 eq. 4). The training skeleton, saving and
loading are :class:`~pyro_clusters.estimators.neural.SetNetwork`'s.

Each cluster is embedded once, however many draws or grid points are asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from pyro_clusters.data.clusters import ClusterSet
from pyro_clusters.estimators.base import Estimator, Splits
from pyro_clusters.estimators.msigma import MSigmaConfig, MSigmaEstimator
from pyro_clusters.estimators.neural import SetBatch, SetNetConfig, SetNetwork
from pyro_clusters.nets.deepsets import DeepSetsEncoder
from pyro_clusters.nets.flows import ConditionalSplineFlow
from pyro_clusters.nets.histogram import HistogramSetEncoder, phase_space_ranges

__all__ = ["HISTOGRAM_ENCODER", "NPEConfig", "NPEDeepSets", "ResidualFlow"]

#: the histogram encoder as the ablation chose it (docs/estimators.md): soft 32 x 32 histograms
#: and a Deep Sets branch of width 128 with a 64-wide context. The most precise encoder on
#: simulations at one survey depth, but it reads the galaxy count (it loses 0.12 dex in the
#: idealized setup and 0.22 in the cylinder when half the galaxies are removed at random), so
#: it is not the default; the amortised bundle uses it, trained over survey depths with the
#: depth measured from the table, where it does not (+0.02).
HISTOGRAM_ENCODER = {"encoder": "histogram", "hidden": 128, "context": 64, "histogram_bins": 32}


@dataclass(frozen=True)
class NPEConfig(SetNetConfig):
    """Architecture and training of the set NPE (the encoder fields: :class:`SetNetConfig`).

    The default encoder is the first design of the ablation in docs/estimators.md: Deep Sets
    with mean pooling (width 64, context 32), blind to the galaxy count as Wang, Thiele & Ho
    2026 intend (when galaxies are removed at random its masses move within 0.02 dex of what
    the M-sigma baseline's do). ``replace(config, **HISTOGRAM_ENCODER)`` is the more precise
    encoder that reads the count (:data:`HISTOGRAM_ENCODER`).

    Attributes:
        hidden: width of the Deep Sets MLPs and per-galaxy latents.
        context: width of the context vector that conditions the flow.
        encoder: ``"histogram"`` (the Deep Sets encoder plus learned soft phase-space
            histograms read by a small CNN,
            :class:`~pyro_clusters.nets.histogram.HistogramSetEncoder`) or ``"deepsets"`` (the
            hierarchical Deep Sets encoder with mean pooling alone, the first design).
        histogram_bins: grid points per axis of the ``"histogram"`` encoder.
        cluster_units: the Deep Sets encoder also sees each galaxy's R_proj and v_los in its
            cluster's own units (centred, divided by the cluster's standard deviation).
        flow_hidden: hidden layers of the spline's conditioning network.
        count_bins: spline segments.
        bound: spline half-width in standardised residual units (identity outside).
        msigma: the baseline's configuration (``mass_cut="auto"``: chosen on validation).
        extra_features: names of galaxy columns appended to the per-galaxy features (e.g. the
            classifier's ``p_member`` in the cylinder setup, Wang, Thiele & Ho 2026 section 4).
    """

    hidden: int = 64
    context: int = 32
    encoder: Literal["deepsets", "histogram"] = "deepsets"
    histogram_bins: int = 32
    cluster_units: bool = False
    flow_hidden: tuple[int, ...] = (64, 64)
    count_bins: int = 8
    bound: float = 5.0
    msigma: MSigmaConfig = field(default_factory=MSigmaConfig)
    extra_features: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.encoder not in ("deepsets", "histogram"):
            raise ValueError(f"encoder must be 'deepsets' or 'histogram', got {self.encoder!r}")
        if self.histogram_bins < 4:
            raise ValueError(f"histogram_bins must be >= 4, got {self.histogram_bins}")


class ResidualFlow(nn.Module):
    """Set encoder + conditional spline flow on the standardised residual.

    ``ranges``: the histogram encoder's grid ranges (:func:`~pyro_clusters.nets.histogram.
    phase_space_ranges`; None when loading: the saved grid is restored with the weights).
    """

    def __init__(self, galaxy_features: int, global_features: int, config: NPEConfig,
                 ranges: np.ndarray | None = None):
        super().__init__()
        if config.encoder == "histogram":
            self.encoder = HistogramSetEncoder(
                galaxy_features, global_features, config.hidden, config.context, config.blocks,
                config.histogram_bins, units=config.cluster_units,
                ranges=None if ranges is None else torch.as_tensor(ranges))
        else:
            self.encoder = DeepSetsEncoder(galaxy_features, global_features, config.hidden,
                                           config.context, config.blocks, config.cluster_units)
        self.flow = ConditionalSplineFlow(config.context, tuple(config.flow_hidden),
                                          config.count_bins, config.bound)

    def embed(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Context (B, C) of a padded batch."""
        return self.encoder(x, mask, g)[0]


class NPEDeepSets(SetNetwork, Estimator):
    """The core estimator (see module docstring).

    Args:
        config: architecture, training and baseline settings.
    """

    name = "npe_deepsets"
    config_class = NPEConfig
    format = "pyro_clusters.npe_deepsets/2"
    legacy_formats = ("pyro_clusters.npe_deepsets/1",)
    legacy_state_keys = {"transform.": "flow.transform.", "base_loc": "flow.base_loc",
                         "base_scale": "flow.base_scale"}

    def __init__(self, config: NPEConfig | None = None):
        super().__init__(config)
        self.baseline: MSigmaEstimator | None = None
        self.r_mean = 0.0
        self.r_std = 1.0
        self._ranges: np.ndarray | None = None  # histogram grid, fitted in _prepare

    @classmethod
    def configure(cls, train=None, msigma: MSigmaConfig | None = None) -> NPEConfig:
        """Run settings as :meth:`NeuralModel.configure`, and the baseline's ``msigma``."""
        config = super().configure(train)
        return config if msigma is None else replace(config, msigma=msigma)

    @classmethod
    def _config_for_device(cls, config: dict | None, device: str | None) -> dict | None:
        config = super()._config_for_device(config, device)
        # models saved before the encoder was a choice are the 64/32-wide Deep Sets design
        legacy = {"encoder": "deepsets", "hidden": 64, "context": 32}
        return config if "encoder" in config else {**legacy, **config}

    # -- training hooks -------------------------------------------------------------------
    def _prepare(self, splits: Splits) -> Splits:
        self.baseline = MSigmaEstimator(self.config.msigma).fit(splits.train, splits.val)
        r_train = splits.train.log_m - self.baseline.predict(splits.train)
        self.r_mean, self.r_std = float(r_train.mean()), float(r_train.std())
        splits = super()._prepare(splits)
        if self.config.encoder == "histogram":
            gal, _ = self._inputs(splits.train)
            self._ranges = phase_space_ranges(gal[:, 1], gal[:, 0],
                                              splits.train.cluster_index())
        return splits

    def _network(self) -> ResidualFlow:
        return ResidualFlow(len(self.features.galaxy), len(self.features.global_), self.config,
                            self._ranges)

    def _targets(self, clusters: ClusterSet) -> np.ndarray:
        """Standardised residuals about the baseline, (n_clusters,) float32."""
        r = clusters.log_m - self.baseline.predict(clusters)
        return ((r - self.r_mean) / self.r_std).astype(np.float32)

    def _batch_targets(self, clusters: ClusterSet, targets: np.ndarray, index: np.ndarray
                       ) -> np.ndarray:
        return targets[index]

    def _nll(self, model: ResidualFlow, batch: SetBatch) -> torch.Tensor:
        """Negative log density of each cluster's residual target [nats], (batch,)."""
        context = model.embed(batch.x, batch.mask, batch.g)
        # the density is float32 even in mixed-precision training (TrainConfig.precision):
        # the encoder carries the cost, the spline's log-Jacobian wants the digits
        with torch.autocast(context.device.type, enabled=False):
            return -model.flow.log_prob(batch.y, context.float())

    def _loss(self, model: ResidualFlow, batch: SetBatch) -> torch.Tensor:
        return self._nll(model, batch).mean()

    # -- estimator contract ---------------------------------------------------------------
    @torch.no_grad()
    def context(self, clusters: ClusterSet) -> torch.Tensor:
        """Flow contexts (n_clusters, C), each cluster embedded once."""
        self._check(clusters)
        self.model.eval()
        out = torch.empty((len(clusters), self.config.context), device=self.device)
        for index, b in self._indexed_batches(clusters, None, None, self.config.eval_batch_size):
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
            z = self.model.flow.sample(n, ctx[lo:lo + step], gen)  # (n, b)
            out[lo:lo + step] = (z.T.double().cpu().numpy() * self.r_std + self.r_mean)
        return out + self.baseline.predict(clusters)[:, None]

    @torch.no_grad()
    def log_prob(self, clusters: ClusterSet, grid: np.ndarray) -> np.ndarray:
        """Log p(log10 M | x) on a grid of log10 M, shape (n_clusters, len(grid)) [per dex]."""
        ctx = self.context(clusters)
        base = self.baseline.predict(clusters)
        r = np.asarray(grid, dtype=np.float64)[:, None] - base[None, :]
        z = torch.from_numpy(((r - self.r_mean) / self.r_std).astype(np.float32)).to(ctx.device)
        lp = self.model.flow.log_prob(z, ctx).double().cpu().numpy().T
        return lp - math.log(self.r_std)

    # -- persistence: model.json + weights.pt + baseline/ ---------------------------------
    def _network_state(self) -> dict:
        return {**super()._network_state(), "r_mean": self.r_mean, "r_std": self.r_std}

    def _write_files(self, path: Path) -> None:
        super()._write_files(path)
        self.baseline.save(path / "baseline")

    def _restore_network(self, meta: dict, path: Path) -> None:
        super()._restore_network(meta, path)
        self.r_mean, self.r_std = meta["r_mean"], meta["r_std"]
        legacy = path / "msigma.json"  # format version 1 kept the baseline in one file
        self.baseline = MSigmaEstimator.load(legacy if legacy.is_file() else path / "baseline")
