"""Exact-likelihood Jeans posterior of the spherical simulator, sampled with Pyro NUTS.

The classical method -- Jeans modelling of projected phase space, as in MAMPOSSt (Mamon,
Biviano & Boué 2013, MNRAS 429, 3079) -- written as a probabilistic program. For clusters of
the spherical simulator (:meth:`SimulatorConfig.spherical`) it is the exact posterior, the best
any estimator can do on the same data; on anything else (triaxial halos, substructure,
interlopers) it is a misspecified classical baseline.

Model (one cluster; the simulator's own priors and likelihood,
:mod:`pyro_clusters.simulator.likelihood`)::

    log_m    ~ Uniform(lo, hi)                       flat training prior, lo raised to the
                                                      smallest mass whose halo reaches max R
    log10_c  ~ Normal(log10 c_med(log_m), 0.16 dex)   colossus c-M relation with scatter
    beta_inf ~ Uniform(0, 0.6)                        anisotropy family (fixed 0 if isotropic)
    galaxies:  sum_i ln p(R_i, v_i | log_m, c, beta_inf)   (satellites; the central is at rest
                                                            at the centre and drops out)
    richness:  "ancillary": ln P(N >= N_min | log_m)  N conditions the likelihood but has no
                                                      P(N | M) term (the selection of the set
                                                      stays, as in the NPE's training set)
               "poisson":   ln P(N_sat | log_m)       the full posterior, N carries information

Which richness term is "like with like": the Deep Sets NPE pools with a mean and never sees
the galaxy count, so it is compared with ``"ancillary"``; ``"poisson"`` is the complete
Bayesian posterior of the simulator, the one simulation-based calibration tests exactly.

Each cluster is sampled by ``num_chains`` NUTS chains run one after the other (different
seeds, dispersed starts), giving r-hat, bulk ESS (ArviZ) and divergences per cluster;
clusters fan out over processes with joblib.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

from pyro_clusters.data.clusters import GALAXY_SOURCES, ClusterSet
from pyro_clusters.estimators.base import Estimator, SampleResult, Splits
from pyro_clusters.simulator.config import SimulatorConfig
from pyro_clusters.simulator.priors import FlatLogMassPrior

__all__ = ["JeansExact", "JeansExactConfig", "NutsDiagnostics", "satellites"]


@dataclass(frozen=True)
class JeansExactConfig:
    """Sampler settings of :class:`JeansExact`.

    Attributes:
        richness: ``"ancillary"`` or ``"poisson"`` (module docstring).
        prior_range: flat prior on log10(M200c / h^-1 Msun), the training prior's range.
        num_chains: NUTS chains per cluster (>= 2 for r-hat).
        warmup: warm-up (adaptation) steps per chain.
        samples: kept draws per chain.
        target_accept: NUTS target acceptance probability.
        max_tree_depth: NUTS maximum tree depth.
        n_los: Gauss-Legendre nodes of the line-of-sight integral.
        compile: evaluate the likelihood through ``torch.compile`` (about 40 s of compilation
            per worker process, then ~4x faster; worth it above a few tens of clusters).
        n_jobs: worker processes over clusters (1 = in process).
        progress: show a progress bar over clusters.
        unreachable: what to do with galaxies farther out (R >= u_max R200c at the top of the
            prior) than any halo of the prior can hold: ``"raise"``, or ``"drop"`` them
            (counted in the diagnostics). Under the spherical model they have probability
            zero for every parameter value, so dropping them leaves the posterior of the rest
            unchanged; they occur only when the model is misspecified (mergers, infalling
            groups, catalogue halos).
    """

    richness: Literal["ancillary", "poisson"] = "ancillary"
    prior_range: tuple[float, float] = (FlatLogMassPrior.lo, FlatLogMassPrior.hi)
    num_chains: int = 2
    warmup: int = 200
    samples: int = 300
    target_accept: float = 0.8
    max_tree_depth: int = 6
    n_los: int = 32
    compile: bool = False
    n_jobs: int = 1
    progress: bool = False
    unreachable: Literal["raise", "drop"] = "raise"

    def __post_init__(self) -> None:
        if self.unreachable not in ("raise", "drop"):
            raise ValueError(f"unreachable must be 'raise' or 'drop', got {self.unreachable!r}")
        if self.richness not in ("ancillary", "poisson"):
            raise ValueError(f"richness must be 'ancillary' or 'poisson', got {self.richness!r}")
        if not self.prior_range[0] < self.prior_range[1]:
            raise ValueError("prior_range must be ordered")
        if self.num_chains < 1 or self.warmup < 1 or self.samples < 1:
            raise ValueError("num_chains, warmup and samples must be positive")


@dataclass
class NutsDiagnostics:
    """Per-cluster sampler diagnostics of one :meth:`JeansExact.sample_with_info` call.

    Attributes (each (n_clusters,)):
        rhat: largest rank-normalised split r-hat over (log_m, log10_c, beta_inf) (ArviZ).
        ess_bulk: smallest bulk effective sample size over the same.
        divergences: divergent transitions after warm-up, summed over chains.
        seconds: wall time of the cluster's sampling on one core [s] (without set-up).
        setup_seconds: set-up before sampling [s] (the torch.compile compilation, once per
            worker process, lands here).
        n_satellites: galaxies in the likelihood.
        n_dropped: galaxies dropped as unreachable (``JeansExactConfig.unreachable``).
    """

    rhat: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ess_bulk: np.ndarray = field(default_factory=lambda: np.zeros(0))
    divergences: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    seconds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    setup_seconds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    n_satellites: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    n_dropped: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def summary(self, rhat_max: float = 1.01) -> dict:
        """JSON-safe summary: worst values and how many clusters fail the usual thresholds."""
        if self.rhat.size == 0:
            return {"n_clusters": 0}
        return {
            "n_clusters": int(self.rhat.size),
            "rhat_max": float(np.max(self.rhat)),
            "rhat_threshold": rhat_max,
            "n_rhat_above_threshold": int(np.sum(self.rhat > rhat_max)),
            "ess_bulk_min": float(np.min(self.ess_bulk)),
            "ess_bulk_median": float(np.median(self.ess_bulk)),
            "divergences_total": int(np.sum(self.divergences)),
            "n_clusters_with_divergences": int(np.sum(self.divergences > 0)),
            "seconds_per_cluster_mean": float(np.mean(self.seconds)),
            "seconds_per_cluster_median": float(np.median(self.seconds)),
            "setup_seconds_total": float(np.sum(self.setup_seconds)),
            "galaxies_dropped_total": int(np.sum(self.n_dropped)),
            "n_clusters_with_dropped": int(np.sum(self.n_dropped > 0)),
        }


def satellites(clusters: ClusterSet, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Projected radii [h^-1 Mpc] and v_los [km/s] of cluster ``i`` without its central.

    The central galaxy is the one with source code ``central`` when the set records sources,
    otherwise any galaxy exactly at the projected centre.
    """
    g = clusters.galaxies_of(i)
    r = np.hypot(g["x_proj"].astype(np.float64), g["y_proj"].astype(np.float64))
    if "source" in g:
        keep = np.asarray(g["source"]) != GALAXY_SOURCES["central"]
    else:
        keep = r > 0
    return r[keep], g["v_los"].astype(np.float64)[keep]


@lru_cache(maxsize=4)
def _likelihood(config_json: str, n_los: int):
    from pyro_clusters.simulator.likelihood import SphericalLikelihood

    return SphericalLikelihood(SimulatorConfig.from_json(config_json), n_los=n_los)


def cluster_model(lik, r_proj, v_los, richness: str, lo: float, hi: float):
    """The Pyro model of one cluster (module docstring); tensors are float64.

    Args:
        lik: a :class:`~pyro_clusters.simulator.likelihood.SphericalLikelihood`.
        r_proj: satellites' projected radii [physical h^-1 Mpc], (n,) tensor.
        v_los: satellites' line-of-sight velocities [km/s], (n,) tensor.
        richness: ``"ancillary"`` or ``"poisson"``.
        lo: lower end of the flat prior on log10(M200c / h^-1 Msun).
        hi: upper end of that prior.
    """
    import pyro
    import pyro.distributions as dist
    import torch

    kw = {"dtype": torch.float64}
    log_m = pyro.sample("log_m", dist.Uniform(torch.tensor(lo, **kw), torch.tensor(hi, **kw)))
    log10_c = pyro.sample("log10_c", dist.Normal(lik.log10_c_median(log_m),
                                                 torch.tensor(lik.log10_c_scatter, **kw)))
    b_lo, b_hi = lik.beta_range
    if b_hi > b_lo:
        beta = pyro.sample("beta_inf", dist.Uniform(torch.tensor(b_lo, **kw),
                                                    torch.tensor(b_hi, **kw)))
    else:
        beta = torch.tensor(b_lo, **kw)
    pyro.factor("data", _log_data(lik, r_proj, v_los, richness, log_m, log10_c, beta))


def _log_data(lik, r_proj, v_los, richness, log_m, log10_c, beta, n_sat=None):
    """Galaxies' log-likelihood plus the richness or selection term (a scalar tensor).

    ``n_sat`` (a float tensor, default the number of galaxies) is passed by the compiled
    potential so that the galaxy count stays a symbolic size there (no recompilation per N).
    """
    out = lik.log_density(r_proj, v_los, log_m, 10.0**log10_c, beta).sum()
    if richness == "poisson":
        n = torch_float(r_proj.shape[0]) if n_sat is None else n_sat
        return out + lik.log_richness(n, log_m)
    return out + lik.log_selection(log_m)


def torch_float(x):
    """A float64 scalar tensor."""
    import torch

    return torch.tensor(float(x), dtype=torch.float64)


def _interval(z, lo, hi):
    """Pyro's bijection of an interval (lo, hi) from the real line.

    Returns value lo + (hi - lo) sigmoid(z) and ln |d value / d z| - ln (hi - lo) (the Uniform
    density cancels the constant).
    """
    import torch
    import torch.nn.functional as F

    return lo + (hi - lo) * torch.sigmoid(z), -F.softplus(-z) - F.softplus(z)


def _neg_log_posterior(z_m, log10_c, z_b, lik, r_proj, v_los, richness, bounds, n_sat):
    """-ln p(unconstrained theta | data) of :func:`cluster_model`, one pure torch function.

    Args:
        z_m: unconstrained log-mass (scalar tensor).
        log10_c: log10 c200c.
        z_b: unconstrained beta_inf (ignored for isotropic models).
        lik: the :class:`~pyro_clusters.simulator.likelihood.SphericalLikelihood`.
        r_proj: satellites' projected radii [physical h^-1 Mpc], (n,).
        v_los: satellites' line-of-sight velocities [km/s], (n,).
        richness: ``"ancillary"`` or ``"poisson"``.
        bounds: tensor (lo, hi, beta_lo, beta_hi) -- a tensor, not floats, so that one
            compiled graph serves every cluster.
        n_sat: number of satellites as a float64 tensor (same reason).
    """
    log_m, jac = _interval(z_m, bounds[0], bounds[1])
    med = lik.log10_c_median(log_m)
    sc = lik.log10_c_scatter
    logp = jac - 0.5 * ((log10_c - med) / sc) ** 2 - math.log(sc * math.sqrt(2.0 * math.pi))
    if lik.beta_range[1] > lik.beta_range[0]:
        beta, jac_b = _interval(z_b, bounds[2], bounds[3])
        logp = logp + jac_b
    else:
        beta = bounds[2]
    return -(logp + _log_data(lik, r_proj, v_los, richness, log_m, log10_c, beta, n_sat))


@lru_cache(maxsize=1)
def _compiled_neg_log_posterior():
    import torch

    return torch.compile(_neg_log_posterior, dynamic=True)


class _Potential:
    """Potential energy for Pyro's NUTS: :func:`cluster_model`'s density, written by hand.

    The same density Pyro derives from the model (interval supports mapped by
    lo + (hi - lo) sigmoid(z), with their log-Jacobians; tested equal to Pyro's
    ``initialize_model`` potential), without tracing the model at every leapfrog step.
    With ``compiled`` the whole function goes through ``torch.compile`` (dynamic shapes:
    one compilation per process, ~40 s, then ~3x fewer seconds per evaluation).
    """

    def __init__(self, lik, r_proj, v_los, richness, lo, hi, compiled=False):
        import torch

        self.lik, self.r, self.v, self.richness = lik, r_proj, v_los, richness
        self.has_beta = lik.beta_range[1] > lik.beta_range[0]
        self.bounds = torch.tensor([lo, hi, *lik.beta_range], dtype=torch.float64)
        self.fn = _compiled_neg_log_posterior() if compiled else _neg_log_posterior
        self._zero = torch.zeros((), dtype=torch.float64)
        self._n_sat = torch.tensor(float(r_proj.shape[0]), dtype=torch.float64)

    def constrained(self, params: dict) -> dict:
        """Map unconstrained sites to (log_m, log10_c, beta_inf)."""
        b = self.bounds
        out = {"log_m": _interval(params["log_m"], b[0], b[1])[0],
               "log10_c": params["log10_c"]}
        if self.has_beta:
            out["beta_inf"] = _interval(params["beta_inf"], b[2], b[3])[0]
        return out

    def __call__(self, params: dict):
        return self.fn(params["log_m"], params["log10_c"], params.get("beta_inf", self._zero),
                       self.lik, self.r, self.v, self.richness, self.bounds, self._n_sat)


def _sample_cluster(config_json: str, cfg: JeansExactConfig, r_proj: np.ndarray,
                    v_los: np.ndarray, seed: int) -> dict:
    """NUTS on one cluster: draws of log_m (num_chains * samples,) and diagnostics."""
    import pyro
    import torch
    from arviz_stats.base import array_stats
    from pyro.infer import MCMC, NUTS

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    lik = _likelihood(config_json, cfg.n_los)
    hi = cfg.prior_range[1]
    reach = lik.u_max * float(lik.r200(torch.tensor(hi, dtype=torch.float64)))
    outside = r_proj >= reach * (1.0 - 1e-6)
    if outside.any():
        if cfg.unreachable == "raise":
            raise ValueError(f"a galaxy at R = {np.max(r_proj):.2f} h^-1 Mpc lies outside every "
                             f"halo of the prior range (u_max R200c = {reach:.2f} h^-1 Mpc at "
                             f"log M = {hi}); JeansExactConfig(unreachable='drop') drops such")
        r_proj, v_los = r_proj[~outside], v_los[~outside]
    lo = max(cfg.prior_range[0], lik.min_log_mass(r_proj) + 1e-6)
    potential = _Potential(lik, torch.as_tensor(r_proj), torch.as_tensor(v_los), cfg.richness,
                           lo, hi, compiled=cfg.compile)
    # One evaluation first: with ``compile`` the first call in a process compiles (~40 s),
    # which is set-up, not sampling; it is reported separately.
    mid = torch.tensor((lo + hi) / 2, dtype=torch.float64)
    probe = {"log_m": torch.zeros((), dtype=torch.float64, requires_grad=True),
             "log10_c": lik.log10_c_median(mid).detach().requires_grad_()}
    if potential.has_beta:
        probe["beta_inf"] = torch.zeros((), dtype=torch.float64, requires_grad=True)
    torch.autograd.grad(potential(probe), list(probe.values()))
    potential({k: v.detach() for k, v in probe.items()})  # NUTS also calls it without grad
    setup_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    gen = np.random.default_rng(seed)
    chains: dict[str, list] = {}
    divergences = 0
    for k in range(cfg.num_chains):
        pyro.set_rng_seed(seed + 7919 * k)
        # Dispersed starts (for r-hat): log M anywhere in the middle of its range, c about
        # its median, beta_inf anywhere.
        z_m = torch.tensor(gen.uniform(-1.5, 1.5), dtype=torch.float64)
        lm = lo + (hi - lo) * torch.sigmoid(z_m)
        init = {"log_m": z_m,
                "log10_c": lik.log10_c_median(lm) + lik.log10_c_scatter * gen.uniform(-1, 1)}
        if potential.has_beta:
            init["beta_inf"] = torch.tensor(gen.uniform(-1.5, 1.5), dtype=torch.float64)
        kernel = NUTS(potential_fn=potential, target_accept_prob=cfg.target_accept,
                      max_tree_depth=cfg.max_tree_depth)
        mcmc = MCMC(kernel, num_samples=cfg.samples, warmup_steps=cfg.warmup,
                    initial_params=init, disable_progbar=True)
        mcmc.run()
        draws = potential.constrained(mcmc.get_samples())
        for name, x in draws.items():
            chains.setdefault(name, []).append(x.detach().numpy())
        divergences += int(sum(len(d) for d in mcmc.diagnostics()["divergences"].values()))
    stacked = {n: np.stack(v) for n, v in chains.items()}  # (chains, draws)
    if cfg.num_chains >= 2:
        rhat = max(float(array_stats.rhat(x, chain_axis=0, draw_axis=1)) for x in stacked.values())
    else:
        rhat = float("nan")
    ess = min(float(array_stats.ess(x, chain_axis=0, draw_axis=1, method="bulk"))
              for x in stacked.values())
    return {"log_m": stacked["log_m"].ravel(), "rhat": rhat, "ess_bulk": ess,
            "divergences": divergences, "seconds": time.perf_counter() - t0,
            "setup_seconds": setup_seconds,
            "n_satellites": int(r_proj.size), "n_dropped": int(outside.sum())}


class JeansExact(Estimator):
    """``jeans_exact``: Pyro NUTS on the exact likelihood of the spherical simulator.

    Args:
        config: sampler settings.
        model: the spherical simulator configuration the likelihood describes (default:
            ``SimulatorConfig.spherical()``).

    There is nothing to train: :meth:`fit` does nothing; :meth:`sample_with_info` runs NUTS
    on every cluster and returns the draws with per-cluster diagnostics (``info["nuts"]``, a
    :class:`NutsDiagnostics`). Saved, ``model.json`` holds the simulator configuration of the
    likelihood (``model``) and the sampler settings (``config``).
    """

    name = "jeans_exact"
    config_class = JeansExactConfig
    format = "pyro_clusters.jeans_exact/2"

    def __init__(self, config: JeansExactConfig | None = None,
                 model: SimulatorConfig | None = None):
        self.model = model or SimulatorConfig.spherical()
        if not self.model.is_spherical:
            raise ValueError("jeans_exact needs a spherical model configuration "
                             "(SimulatorConfig.spherical())")
        self.config = config or JeansExactConfig()

    def _fit(self, splits: Splits) -> None:
        """Nothing to learn (the likelihood is known)."""

    def sample_cluster_draws(self, clusters: ClusterSet, rng: np.random.Generator
                             ) -> list[dict]:
        """Run NUTS on every cluster; one result dict per cluster (see ``_sample_cluster``)."""
        from joblib import Parallel, delayed
        from tqdm.auto import tqdm

        seeds = rng.integers(0, 2**31 - 1, len(clusters))
        jobs = [delayed(_sample_cluster)(self.model.to_json(), self.config,
                                         *satellites(clusters, i), int(seeds[i]))
                for i in range(len(clusters))]
        parallel = Parallel(n_jobs=self.config.n_jobs, return_as="generator")
        return list(tqdm(parallel(jobs), total=len(jobs), desc="jeans_exact NUTS",
                         disable=not self.config.progress))

    def sample(self, clusters: ClusterSet, n: int, rng: np.random.Generator) -> np.ndarray:
        """Posterior draws of log10(M200c / h^-1 Msun), (len(clusters), n)."""
        return self.sample_with_info(clusters, n, rng).draws

    def sample_with_info(self, clusters: ClusterSet, n: int, rng: np.random.Generator
                         ) -> SampleResult:
        """Draws (len(clusters), n) and ``info["nuts"]``, the :class:`NutsDiagnostics`.

        The chains' draws are permuted and, when ``n`` exceeds their number, resampled with
        replacement.
        """
        results = self.sample_cluster_draws(clusters, rng)
        out = np.empty((len(clusters), n))
        for i, res in enumerate(results):
            d = rng.permutation(res["log_m"])
            out[i] = d[:n] if n <= d.size else rng.choice(d, n, replace=True)
        nuts = NutsDiagnostics(
            rhat=np.array([r["rhat"] for r in results]),
            ess_bulk=np.array([r["ess_bulk"] for r in results]),
            divergences=np.array([r["divergences"] for r in results], dtype=np.int64),
            seconds=np.array([r["seconds"] for r in results]),
            setup_seconds=np.array([r["setup_seconds"] for r in results]),
            n_satellites=np.array([r["n_satellites"] for r in results], dtype=np.int64),
            n_dropped=np.array([r["n_dropped"] for r in results], dtype=np.int64))
        return SampleResult(out, {"nuts": nuts})

    # -- persistence: model.json only ---------------------------------------------------------
    def _state(self) -> dict:
        return {"model": self.model.to_dict()}

    @classmethod
    def _from_config(cls, config: JeansExactConfig, meta: dict, path: Path,
                     device: str | None) -> JeansExact:
        return cls(config, SimulatorConfig.from_dict(meta["model"]))
