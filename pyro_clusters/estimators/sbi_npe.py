r"""sbi's own NPE (``sbi_npe``), and ``npe_deepsets`` as a density estimator sbi trains.

``SbiNPE`` is what an sbi user would do instead of our estimator: ``sbi.inference.NPE`` with
its neural spline flow (``posterior_nn("nsf")``, 5 transforms, 10 bins) on theta = log10 M,
given our masked Deep Sets encoder (:class:`~pyro_clusters.nets.set_embedding.
DeepSetsEmbedding`) as embedding net, trained by sbi's loop on x = (B, N, 4) zero-padded
clusters (N = the largest training cluster), with sbi's random validation split, early
stopping and ``DirectPosterior`` sampling (rejection of draws outside the prior). Its
differences from ``npe_deepsets`` are the point of the comparison: no M-sigma residual, sbi's
flow and training loop, and padding to the largest cluster (random batches; no grouping by
size).

``npe_deepsets_builder`` goes the other way: it returns a builder ``(theta, x) ->
ConditionalDensityEstimator`` that ``sbi.inference.NPE(density_estimator=...)`` accepts, so
sbi users get our model -- Deep Sets context, Pyro conditional spline flow on the standardised
residual r = log M - log M_(M-sigma) (Wang, Thiele & Ho 2026) -- inside their own sbi workflow. The
M-sigma baseline is fitted by the builder on the (theta, x) sbi passes it (the training data), with
sigma_v of all galaxies in x (sbi's x has no membership probabilities).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pyro_clusters import defaults
from pyro_clusters.data.clusters import ClusterSet, pad
from pyro_clusters.estimators.base import Estimator, Splits, check_same_setup, provenance
from pyro_clusters.estimators.msigma import fit_msigma, invert_msigma
from pyro_clusters.features.dispersion import velocity_dispersion_torch
from pyro_clusters.nets.flows import ConditionalSplineFlow
from pyro_clusters.nets.set_embedding import DeepSetsEmbedding
from pyro_clusters.simulator.priors import FlatLogMassPrior

__all__ = ["DeepSetsResidualFlow", "SbiNPE", "SbiNPEConfig", "clusters_to_x",
           "npe_deepsets_builder"]


class _NoTracker:
    """An sbi tracker that records nothing (sbi otherwise writes ./sbi-logs/)."""

    log_dir = None

    def log_metric(self, name, value, step=None):
        """Ignore."""

    def log_metrics(self, metrics, step=None):
        """Ignore."""

    def log_params(self, params):
        """Ignore."""

    def add_figure(self, name, figure, step=None):
        """Ignore."""

    def flush(self):
        """Ignore."""


def clusters_to_x(clusters: ClusterSet, n_max: int | None = None,
                  rng: np.random.Generator | None = None) -> torch.Tensor:
    """The x of sbi for a set of clusters: (n, N, 4) float32, N = ``n_max`` or the largest set.

    With an ``rng``, a cluster larger than ``n_max`` is randomly subsampled to it (with a
    warning): sbi's x has one fixed shape, set by the largest training cluster.
    """
    n_max = int(n_max or clusters.n_gal.max())
    overflow = "subsample" if rng is not None else "raise"
    return torch.from_numpy(pad(clusters, n_max, overflow, rng).astype(np.float32))


@dataclass(frozen=True)
class SbiNPEConfig:
    """Settings of ``sbi_npe``.

    Attributes:
        hidden, context, blocks: Deep Sets embedding (as ``npe_deepsets``).
        hidden_features, num_transforms, num_bins: sbi's neural spline flow.
        n_max: galaxy slots of sbi's fixed-shape x; a larger cluster is randomly subsampled
            to n_max galaxies (seeded, with a warning), in training and at inference. Padding
            every cluster to the largest one (~1,500 galaxies) made training ~9x slower
            for no gain in the mean-pooled embedding; the richest clusters lose galaxies.
        batch_size, lr, stop_after_epochs, max_epochs: sbi's training loop.
        seed: torch seed for initialisation, batches and validation split.
        device: torch device.
        progress: sbi's progress bars.
    """

    hidden: int = 64
    context: int = 32
    blocks: int = 3
    hidden_features: int = 50
    num_transforms: int = 5
    num_bins: int = 10
    n_max: int = 256
    batch_size: int = 100
    lr: float = 5e-4
    stop_after_epochs: int = 10
    max_epochs: int = 60
    seed: int = 0
    device: str = "cpu"
    progress: bool = False


class SbiNPE(Estimator):
    """sbi's NPE with a neural spline flow and our Deep Sets embedding (module docstring)."""

    name = "sbi_npe"
    config_class = SbiNPEConfig
    format = "pyro_clusters.sbi_npe/2"
    legacy_formats = ("pyro_clusters.sbi_npe/1",)

    @classmethod
    def configure(cls, train=None, msigma=None) -> SbiNPEConfig:
        """Settings of sbi's loop from ``train``.

        Its epochs, seed, device, progress and batch size (None: sbi's loop keeps its own,
        100); its patience becomes ``stop_after_epochs`` (at least 2).
        """
        if train is None:
            return SbiNPEConfig()
        batch = {} if train.batch_size is None else {"batch_size": train.batch_size}
        return SbiNPEConfig(max_epochs=train.max_epochs, seed=train.seed, device=train.device,
                            progress=train.progress, stop_after_epochs=max(train.patience, 2),
                            **batch)

    def __init__(self, config: SbiNPEConfig | None = None):
        self.config = config or SbiNPEConfig()
        self.prior = FlatLogMassPrior()
        self.posterior = None
        self.trained_on: dict = {}
        self.n_max: int | None = None
        self.train_seconds: float | None = None
        self.summary: dict = {}

    def _builder(self, x_train: torch.Tensor):
        from sbi.neural_nets import posterior_nn

        c = self.config
        return posterior_nn("nsf", z_score_x="none", hidden_features=c.hidden_features,
                            num_transforms=c.num_transforms, num_bins=c.num_bins,
                            embedding_net=DeepSetsEmbedding(x_train, c.hidden, c.context,
                                                            c.blocks))

    def _fit(self, splits: Splits) -> None:
        """Train with sbi on train + val (sbi draws its validation split of len(val))."""
        from sbi.inference import NPE

        train = splits.train
        val = splits.require_val("sbi_npe (its share of the data is sbi's validation "
                                 "fraction)")
        t0 = time.perf_counter()
        c = self.config
        self.trained_on = provenance(train)
        both = ClusterSet.concatenate([train, val])
        self.n_max = int(min(c.n_max, both.n_gal.max()))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*subsampled to n_max.*")
            x = clusters_to_x(both, self.n_max, np.random.default_rng(c.seed))
        theta = torch.from_numpy(both.log_m.astype(np.float32))[:, None]
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            # x's validity column is constant for full clusters; x is not z-scored anyway
            warnings.filterwarnings("ignore", message=".*constant values in dimension.*")
            torch.manual_seed(c.seed)
            inference = NPE(prior=self.prior.to_sbi(),
                            density_estimator=self._builder(x[:len(train)]),
                            device=c.device, show_progress_bars=c.progress,
                            tracker=_NoTracker())
            estimator = inference.append_simulations(theta, x).train(
                training_batch_size=c.batch_size, learning_rate=c.lr,
                validation_fraction=len(val) / len(both), stop_after_epochs=c.stop_after_epochs,
                max_num_epochs=c.max_epochs, show_train_summary=False)
        self.posterior = inference.build_posterior(estimator)
        s = inference.summary
        self.summary = {"epochs": int(s["epochs_trained"][-1]),
                        "best_val_loss": float(s["best_validation_loss"][-1])}
        self.train_seconds = time.perf_counter() - t0

    def _require_fitted(self) -> None:
        if self.posterior is None:
            raise RuntimeError("fit or load sbi_npe first")

    def _require(self, clusters: ClusterSet) -> None:
        self._require_fitted()
        check_same_setup(self.trained_on, clusters)

    def sample(self, clusters: ClusterSet, n: int, rng: np.random.Generator) -> np.ndarray:
        """Posterior draws (inside the prior) of log10 M, shape (n_clusters, n)."""
        self._require(clusters)
        out = np.empty((len(clusters), n))
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*max_sampling_batch_size.*")
            torch.manual_seed(int(rng.integers(2**63)))
            for lo in range(0, len(clusters), 256):
                sub = clusters.select(np.arange(lo, min(lo + 256, len(clusters))))
                x = clusters_to_x(sub, self.n_max, rng).to(self.config.device)
                d = self.posterior.sample_batched((n,), x=x, show_progress_bars=False)
                out[lo:lo + len(sub)] = d[..., 0].T.double().cpu().numpy()
        return out

    # -- persistence: model.json + weights.pt (the trained sbi density estimator) ---------
    def _state(self) -> dict:
        return {"trained_on": self.trained_on, "n_max": self.n_max,
                "train_seconds": self.train_seconds, "training": self.summary}

    def _write_files(self, path: Path) -> None:
        torch.save(self.posterior.posterior_estimator.state_dict(), path / "weights.pt")

    @classmethod
    def _config_for_device(cls, config: dict | None, device: str | None) -> dict | None:
        return config if device is None else {**config, "device": device}

    def _restore(self, meta: dict, path: Path, device: str | None) -> None:
        from sbi.inference.posteriors import DirectPosterior

        self.trained_on, self.n_max = meta["trained_on"], meta["n_max"]
        self.train_seconds, self.summary = meta.get("train_seconds"), meta.get("training", {})
        # the network's shapes and buffers come from the state dict; the dummy batch only
        # fixes the input shapes (its values are overwritten by load_state_dict)
        x = torch.zeros((2, self.n_max, 4))
        x[..., 3] = 1.0
        x[1, :, :3] = torch.randn(self.n_max, 3)
        theta = torch.tensor([[14.0], [15.0]])
        net = self._builder(x)(theta, x)
        net.load_state_dict(torch.load(path / "weights.pt", map_location="cpu",
                                       weights_only=True))
        net.to(self.config.device).eval()
        self.posterior = DirectPosterior(net, self.prior.to_sbi(), device=self.config.device)


class DeepSetsResidualFlow(nn.Module):
    """Our NPE as an sbi ``ConditionalDensityEstimator`` (built by :func:`npe_deepsets_builder`).

    Input theta (sample, batch, 1) log10 M; condition x (batch, N, 4).
    """

    def __init__(self, x_train: torch.Tensor, theta_train: torch.Tensor, z: float,
                 mass_cut: float, hidden: int, context: int, blocks: int,
                 flow_hidden: tuple[int, ...], count_bins: int, bound: float,
                 encoder: str = "deepsets", histogram_bins: int = 32,
                 cluster_units: bool = False):
        super().__init__()
        with torch.no_grad():
            sigma = velocity_dispersion_torch(x_train).double().numpy()
        log_m = theta_train[:, 0].double().numpy()
        fit = fit_msigma(log_m, sigma, z, mass_cut)
        self.register_buffer("msigma", torch.tensor([fit.slope, fit.intercept, fit.log_ez]))
        with np.errstate(divide="ignore", invalid="ignore"):
            resid = log_m - fit.predict_log_mass(sigma)
        ok = np.isfinite(resid)
        self.register_buffer("r_loc", torch.tensor(float(resid[ok].mean())))
        self.register_buffer("r_scale", torch.tensor(float(resid[ok].std())))
        self.embedding = DeepSetsEmbedding(x_train, hidden, context, blocks, encoder,
                                           histogram_bins, cluster_units)
        self.flow = ConditionalSplineFlow(context, tuple(flow_hidden), count_bins, bound)

    def baseline(self, x: torch.Tensor) -> torch.Tensor:
        """log10 M of the inverted M-sigma relation (B,), in torch.

        :func:`~pyro_clusters.estimators.msigma.invert_msigma` on x's velocity dispersion
        (sigma_v clamped at 1 km/s so that a cluster with < 2 galaxies stays finite).
        """
        sigma = velocity_dispersion_torch(x).clamp_min(1.0)
        return invert_msigma(torch.log10(sigma), *self.msigma)


def npe_deepsets_builder(z: float = defaults.Z, mass_cut: float = 13.5,
                         hidden: int | None = None, context: int | None = None,
                         blocks: int | None = None, flow_hidden: tuple[int, ...] | None = None,
                         count_bins: int | None = None, bound: float | None = None,
                         encoder: str | None = None, histogram_bins: int | None = None,
                         cluster_units: bool | None = None):
    """A density-estimator builder for ``sbi.inference.NPE(density_estimator=...)``.

    Every network option left at None takes the default of ``npe_deepsets``
    (:class:`~pyro_clusters.estimators.npe_deepsets.NPEConfig`).

    Args:
        z: redshift of the M-sigma relation's E(z).
        mass_cut: clusters above this log10 M are used for the M-sigma fit.
        hidden: set-encoder hidden width.
        context: set-encoder context (flow conditioning) width.
        blocks: Deep Sets blocks.
        flow_hidden: hidden widths of the spline's conditioner.
        count_bins: spline bins.
        bound: spline support [-bound, bound] of the standardised residual.
        encoder: ``"deepsets"`` or ``"histogram"``.
        histogram_bins: histogram grid points per axis.
        cluster_units: the Deep Sets encoder also sees R and v in cluster units.

    Returns:
        ``build(theta, x) -> ConditionalDensityEstimator`` (sbi calls it with the training
        data: theta (n, 1) log10 M, x (n, N, 4)).
    """
    from sbi.neural_nets.estimators import ConditionalDensityEstimator

    from pyro_clusters.estimators.npe_deepsets import NPEConfig

    given = {"hidden": hidden, "context": context, "blocks": blocks, "flow_hidden": flow_hidden,
             "count_bins": count_bins, "bound": bound, "encoder": encoder,
             "histogram_bins": histogram_bins, "cluster_units": cluster_units}
    default = NPEConfig()
    o = {k: getattr(default, k) if v is None else v for k, v in given.items()}

    class _Estimator(ConditionalDensityEstimator):
        def __init__(self, net: DeepSetsResidualFlow, condition_shape: torch.Size):
            super().__init__(net, torch.Size([1]), condition_shape)

        def _standardise(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            r = theta[..., 0] - self.net.baseline(x)
            return (r - self.net.r_loc) / self.net.r_scale

        def log_prob(self, input: torch.Tensor, condition: torch.Tensor, **kwargs
                     ) -> torch.Tensor:
            """Log density of theta (sample, batch, 1) given x (batch, N, 4) -> (sample, B)."""
            if input.dim() == 2:
                input = input.unsqueeze(0)
            zs = self._standardise(input, condition)  # (sample, B)
            return (self.net.flow.log_prob(zs, self.net.embedding(condition))
                    - torch.log(self.net.r_scale))

        def loss(self, input: torch.Tensor, condition: torch.Tensor, **kwargs) -> torch.Tensor:
            """Negative log-likelihood per pair, (B,)."""
            return -self.log_prob(input.unsqueeze(0), condition)[0]

        def sample(self, sample_shape: torch.Size, condition: torch.Tensor, **kwargs
                   ) -> torch.Tensor:
            """Draws (*sample_shape, B, 1) of log10 M."""
            n = int(torch.Size(sample_shape).numel())
            net = self.net
            zs = net.flow.sample(n, net.embedding(condition))
            theta = zs * net.r_scale + net.r_loc + net.baseline(condition)
            return theta.reshape(*sample_shape, condition.shape[0], 1)

        @property
        def embedding_net(self):
            return self.net.embedding

    def build(theta: torch.Tensor, x: torch.Tensor) -> ConditionalDensityEstimator:
        net = DeepSetsResidualFlow(x, theta, z, mass_cut, o["hidden"], o["context"],
                                   o["blocks"], tuple(o["flow_hidden"]), o["count_bins"],
                                   o["bound"], o["encoder"], o["histogram_bins"],
                                   o["cluster_units"])
        return _Estimator(net, x.shape[1:])

    return build
