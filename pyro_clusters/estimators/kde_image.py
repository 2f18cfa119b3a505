r"""Estimators on KDE images of phase space: ``cnn_kde_slice``, ``mc_dropout``, ``nf_kde2d``.

All three see a cluster only through its KDE image (:mod:`pyro_clusters.features.kde`; 48 x 48
{R_proj, v_los}, h0 = 0.25, Ho et al. 2019 section 3.1; or the 3D {x, y, v} option), scaled to mean
one per pixel. Targets are log10 M standardised with the training mean and standard deviation.

``cnn_kde_slice`` (Kodi Ramanah, Wojtak & Arendse 2021 section 3.1): the CNN of Ho et al. 2019
regresses log M (mean squared error); its prediction is a summary s. A bivariate Gaussian KDE of (s,
log M) over a separate calibration set -- bandwidth matrix H from ``scipy.stats.gaussian_kde``
(Scott's rule times the sample covariance) -- sliced at the observed s is the posterior. The slice
of a Gaussian mixture is a Gaussian mixture, sampled exactly:

    p(m | s) = sum_c w_c N(m; m_c + H_ms/H_ss (s - s_c), H_mm - H_ms^2/H_ss),
    w_c ∝ N(s; s_c, H_ss).

``mc_dropout`` (Ho et al. 2022 Methods): the same CNN with a Gaussian head (mu, log sigma) trained
by negative log-likelihood; at inference dropout stays on and T = 100 stochastic passes are mixed:
p(m | x) = (1/T) sum_t N(m; mu_t, sigma_t).

``nf_kde2d`` (Kodi Ramanah et al. 2020 sections 3.3-4): a stack of K = 3 conditional Gaussian flow
blocks on the flattened image d; block k maps u_{k-1} -> u_k = (u_{k-1} - mu_k(d)) / sigma_k(d) with
an MLP of tanh layers 512-64-512; u_0 = standardised log M, u_K ~ N(0, 1):

    log p(m | d) = log N(u_K) - sum_k log sigma_k(d)      (Kodi Ramanah et al. 2020, eqs. 5, 7).

For a scalar target each block is affine in m, so the posterior is Gaussian; 003 uses 50 x 50
images, this uses the same 48 x 48 images as the CNNs so the three are compared on one input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pyro_clusters.data.clusters import ClusterSet
from pyro_clusters.estimators.base import Estimator, Splits
from pyro_clusters.estimators.neural import NeuralModel
from pyro_clusters.estimators.reweighted import resample_weighted
from pyro_clusters.features.kde import KDEImageSpec, kde_images
from pyro_clusters.nets.cnn import make_cnn
from pyro_clusters.nets.flows import GaussianFlowStack
from pyro_clusters.training import TrainConfig

__all__ = ["CNNKDESlice", "GaussianFlowKDE", "ImageConfig", "MCDropoutCNN"]


@dataclass(frozen=True)
class ImageConfig:
    """Settings shared by the image estimators.

    Attributes:
        kind: ``"2d"`` or ``"3d"`` KDE images.
        bins: grid points per axis (None: 48 in 2D, 24 in 3D).
        h0: bandwidth factor (None: 0.25 in 2D, 0.175 in 3D).
        dropout: dropout probability of the CNN head (Ho et al. 2022 keep it on at inference).
        mc_passes: stochastic forward passes mixed by ``mc_dropout``.
        flow_blocks: conditional Gaussian blocks of ``nf_kde2d`` (3 in Kodi Ramanah et al. 2020).
        flow_hidden: hidden tanh widths of each block (512, 64, 512 in Kodi Ramanah et al. 2020).
        train: optimisation settings (Ho et al. 2019: Adam 1e-3, batch 100).
        eval_batch_size: clusters per forward pass at inference.
    """

    kind: str = "2d"
    bins: int | None = None
    h0: float | None = None
    dropout: float = 0.2
    mc_passes: int = 100
    flow_blocks: int = 3
    flow_hidden: tuple[int, ...] = (512, 64, 512)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(batch_size=100))
    eval_batch_size: int = 1024


class _ImageEstimator(NeuralModel, Estimator):
    """KDE images, target scaling; subclasses define the network's use.

    Class attributes: ``n_out`` network outputs, ``flatten`` feeds flattened images,
    ``needs_calibration`` holds out a calibration set for :meth:`_after_fit`.
    """

    config_class = ImageConfig
    format = "pyro_clusters.kde_image/2"
    legacy_formats = ("pyro_clusters.kde_image/1",)
    n_out = 1
    flatten = False
    needs_calibration = False

    def __init__(self, config: ImageConfig | None = None):
        super().__init__(config)
        self.spec: KDEImageSpec | None = None
        self.m_mean, self.m_std = 0.0, 1.0

    # -- training hooks -------------------------------------------------------------------
    def _prepare(self, splits: Splits) -> Splits:
        """Image spec and target scaling.

        Without a calibration set (where one is needed) the second half of ``val`` (split with
        the training seed) calibrates and the first half stops early.
        """
        cfg = self.config
        if self.needs_calibration and splits.calibration is None:
            val = splits.val
            perm = np.random.default_rng(cfg.train.seed).permutation(len(val))
            half = len(val) // 2
            splits = replace(splits, val=val.select(np.sort(perm[:half])),
                             calibration=val.select(np.sort(perm[half:])))
        self.spec = KDEImageSpec.for_clusters(splits.train, cfg.kind, cfg.bins, cfg.h0)
        self.m_mean = float(splits.train.log_m.mean())
        self.m_std = float(splits.train.log_m.std())
        return splits

    def _network(self) -> nn.Module:
        return make_cnn(self.spec.kind, self.spec.bins, self.n_out, self.config.dropout)

    def _inputs(self, clusters: ClusterSet) -> torch.Tensor:
        return self.images(clusters)

    def _targets(self, clusters: ClusterSet) -> torch.Tensor:
        """Standardised log10 M, (n_clusters,) on the device."""
        return torch.from_numpy(((clusters.log_m - self.m_mean) / self.m_std
                                 ).astype(np.float32)).to(self.device)

    def _batches(self, clusters: ClusterSet, img: torch.Tensor, z: torch.Tensor, size: int,
                 rng: np.random.Generator | None):
        order = rng.permutation(len(img)) if rng is not None else np.arange(len(img))
        for lo in range(0, len(img), size):
            idx = torch.from_numpy(order[lo:lo + size])
            yield img[idx], z[idx]

    # -- data -----------------------------------------------------------------------------
    def images(self, clusters: ClusterSet) -> torch.Tensor:
        """Scaled KDE images (n, *spec.shape) as a float32 tensor on the model's device."""
        img = kde_images(clusters, self.spec) * np.float32(np.prod(self.spec.shape))
        if self.flatten:
            img = img.reshape(len(img), -1)
        return torch.from_numpy(img).to(self.device)

    def _outputs(self, img: torch.Tensor, train_mode: bool = False) -> torch.Tensor:
        self.model.train(train_mode)
        bs = self.config.eval_batch_size
        with torch.no_grad():
            return torch.cat([self.model(img[lo:lo + bs]) for lo in range(0, len(img), bs)])

    # -- persistence ----------------------------------------------------------------------
    def _network_state(self) -> dict:
        return {"spec": self.spec.to_dict(), "m_mean": self.m_mean, "m_std": self.m_std}

    def _restore_network(self, meta: dict, path: Path) -> None:
        self.spec = KDEImageSpec(**meta["spec"])
        self.m_mean, self.m_std = meta["m_mean"], meta["m_std"]


class CNNKDESlice(_ImageEstimator):
    """CNN summary + bivariate-KDE slice posterior (``cnn_kde_slice``; module docstring)."""

    name = "cnn_kde_slice"
    needs_calibration = True

    def __init__(self, config: ImageConfig | None = None):
        super().__init__(config)
        self.calib: np.ndarray | None = None  # (2, n_cal): summary, log M
        self.bandwidth: np.ndarray | None = None  # (2, 2) kernel covariance

    def _loss(self, model, batch):
        img, z = batch
        return ((model(img)[:, 0] - z) ** 2).mean()

    def summary(self, clusters: ClusterSet) -> np.ndarray:
        """The CNN's point prediction of log10 M, (n_clusters,)."""
        self._check(clusters)
        out = self._outputs(self.images(clusters))[:, 0].double().cpu().numpy()
        return out * self.m_std + self.m_mean

    def _after_fit(self, splits: Splits) -> None:
        from scipy.stats import gaussian_kde

        calibration = splits.calibration
        s = self.summary(calibration)
        self.calib = np.vstack([s, calibration.log_m])
        self.bandwidth = gaussian_kde(self.calib).covariance

    def _network_state(self) -> dict:
        return {**super()._network_state(), "calibration": self.calib.tolist(),
                "bandwidth": self.bandwidth.tolist()}

    def _restore_network(self, meta: dict, path: Path) -> None:
        super()._restore_network(meta, path)
        self.calib = np.asarray(meta["calibration"])
        self.bandwidth = np.asarray(meta["bandwidth"])

    def _slice(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Mixture weights (n, n_cal), component means (n, n_cal) and the common std."""
        (h_ss, h_sm), (_, h_mm) = self.bandwidth
        ds = s[:, None] - self.calib[0][None, :]
        logw = -0.5 * ds * ds / h_ss
        w = np.exp(logw - logw.max(axis=1, keepdims=True))
        means = self.calib[1][None, :] + h_sm / h_ss * ds
        return w, means, math.sqrt(h_mm - h_sm * h_sm / h_ss)

    def log_prob(self, clusters: ClusterSet, grid: np.ndarray) -> np.ndarray:
        """Log-density log p(log10 M | x) on a grid, (n_clusters, len(grid)) [per dex]."""
        s = self.summary(clusters)
        out = np.empty((len(s), len(grid)))
        for lo in range(0, len(s), 256):
            w, means, sd = self._slice(s[lo:lo + 256])
            w = w / w.sum(axis=1, keepdims=True)
            dens = (w[:, None, :] * np.exp(-0.5 * ((grid[None, :, None] - means[:, None, :])
                                                    / sd) ** 2)).sum(-1)
            out[lo:lo + 256] = np.log(dens / (sd * math.sqrt(2 * math.pi)))
        return out

    def sample(self, clusters: ClusterSet, n: int, rng: np.random.Generator) -> np.ndarray:
        """Exact draws from the sliced KDE mixture, (n_clusters, n)."""
        s = self.summary(clusters)
        out = np.empty((len(s), n))
        for lo in range(0, len(s), 256):
            w, means, sd = self._slice(s[lo:lo + 256])
            picked = resample_weighted(means, w, n, rng)
            out[lo:lo + 256] = picked + sd * rng.standard_normal(picked.shape)
        return out


class MCDropoutCNN(_ImageEstimator):
    """Gaussian-head CNN with dropout kept on at inference (``mc_dropout``)."""

    name = "mc_dropout"
    n_out = 2

    def _loss(self, model, batch):
        img, z = batch
        out = model(img)
        mu, log_sigma = out[:, 0], out[:, 1].clamp(-7.0, 5.0)
        return (0.5 * ((z - mu) * torch.exp(-log_sigma)) ** 2 + log_sigma).mean()

    def passes(self, clusters: ClusterSet, rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray]:
        """Mean mu and std sigma of log10 M from each stochastic pass, each (T, n_clusters)."""
        self._check(clusters)
        img = self.images(clusters)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(rng.integers(2**63)))
            outs = torch.stack([self._outputs(img, train_mode=True)
                                for _ in range(self.config.mc_passes)])
        self.model.eval()
        out = outs.double().cpu().numpy()
        mu = out[..., 0] * self.m_std + self.m_mean
        sigma = np.exp(np.clip(out[..., 1], -7.0, 5.0)) * self.m_std
        return mu, sigma

    def sample(self, clusters: ClusterSet, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draws from the mixture of the T passes' Gaussians, (n_clusters, n)."""
        mu, sigma = self.passes(clusters, rng)
        t = rng.integers(0, mu.shape[0], size=(mu.shape[1], n))
        cols = np.arange(mu.shape[1])[:, None]
        return mu[t, cols] + sigma[t, cols] * rng.standard_normal((mu.shape[1], n))


class GaussianFlowKDE(_ImageEstimator):
    """The conditional Gaussian-flow stack on the flattened 2D KDE (``nf_kde2d``)."""

    name = "nf_kde2d"
    flatten = True

    def _network(self) -> nn.Module:
        if self.spec.kind != "2d":
            raise ValueError("nf_kde2d works on 2D KDE images (Kodi Ramanah et al. 2020)")
        return GaussianFlowStack(self.spec.bins ** 2, self.config.flow_blocks,
                                 tuple(self.config.flow_hidden))

    def _loss(self, model, batch):
        img, z = batch
        mu, log_sigma = model(img)
        return -GaussianFlowStack.log_prob(z, mu, log_sigma).mean()

    def moments(self, clusters: ClusterSet) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of log10 M, each (n_clusters,)."""
        self._check(clusters)
        img = self.images(clusters)
        self.model.eval()
        bs = self.config.eval_batch_size
        means, stds = [], []
        with torch.no_grad():
            for lo in range(0, len(img), bs):
                m, s = GaussianFlowStack.moments(*self.model(img[lo:lo + bs]))
                means.append(m)
                stds.append(s)
        mean = torch.cat(means).double().cpu().numpy() * self.m_std + self.m_mean
        return mean, torch.cat(stds).double().cpu().numpy() * self.m_std

    def log_prob(self, clusters: ClusterSet, grid: np.ndarray) -> np.ndarray:
        """Gaussian log-density of log10 M on a grid, (n_clusters, len(grid)) [per dex]."""
        mean, std = self.moments(clusters)
        z = (np.asarray(grid, dtype=np.float64)[None, :] - mean[:, None]) / std[:, None]
        return -0.5 * z * z - np.log(std[:, None] * math.sqrt(2.0 * math.pi))

    def sample(self, clusters: ClusterSet, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draws from the Gaussian posterior, (n_clusters, n)."""
        mean, std = self.moments(clusters)
        return mean[:, None] + std[:, None] * rng.standard_normal((len(mean), n))
