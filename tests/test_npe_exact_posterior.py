"""The Deep Sets NPE recovers a posterior known in closed form (end-to-end check).

Toy simulator with an exact likelihood: every cluster has N = 40 galaxies with
v_i ~ N(0, sigma(theta)^2), log10 sigma = 2.8 + 0.33 (theta - 14.5), positions independent of
theta; flat prior on theta = log10 M over [13.5, 15.5]. The exact posterior is
p(theta | v) ∝ sigma^-N exp(-sum v^2 / (2 sigma^2)) (width ~0.15 dex). With N fixed, mean
pooling loses nothing (the sufficient statistic is the mean of v^2).

Seed 0, 3,000 training clusters, 25 epochs at most (~10 s). Measured: width ratio 1.02, mean
shift 0.14 posterior sd, median KL 0.012 nats. Tolerances (for clusters away from the prior
edges): width ratio 0.9-1.1, mean shift < 0.3 sd, median KL < 0.05 nats.
"""

import numpy as np
import pytest

from pyro_clusters.data.clusters import ClusterSet
from pyro_clusters.estimators import NPEConfig, NPEDeepSets
from pyro_clusters.training import TrainConfig

#: one trained NPE (the module fixture, ~25 s) serves every test here
pytestmark = pytest.mark.integration

N_GAL = 40


def log_sigma(theta):
    return 2.8 + 0.33 * (theta - 14.5)


def toy_clusters(n: int, rng: np.random.Generator) -> ClusterSet:
    theta = rng.uniform(13.5, 15.5, n)
    v = rng.standard_normal((n, N_GAL)) * 10 ** log_sigma(theta)[:, None]
    xy = rng.standard_normal((n, N_GAL, 2))
    galaxies = {"x_proj": xy[..., 0].ravel().astype(np.float32),
                "y_proj": xy[..., 1].ravel().astype(np.float32),
                "v_los": v.ravel().astype(np.float32)}
    return ClusterSet({"log_m": theta}, galaxies, np.arange(n + 1) * N_GAL, {"setup": "toy"})


def exact_posterior(clusters: ClusterSet, grid: np.ndarray) -> np.ndarray:
    v = clusters.galaxies["v_los"].astype(np.float64).reshape(len(clusters), N_GAL)
    s2 = (v**2).sum(axis=1)
    sig = 10 ** log_sigma(grid)
    lp = -N_GAL * np.log(sig)[None] - s2[:, None] / (2 * sig[None] ** 2)
    p = np.exp(lp - lp.max(axis=1, keepdims=True))
    return p / np.trapezoid(p, grid, axis=1)[:, None]


def moments(p, grid):
    mu = np.trapezoid(p * grid, grid, axis=1)
    return mu, np.sqrt(np.trapezoid(p * (grid - mu[:, None]) ** 2, grid, axis=1))


@pytest.fixture(scope="module")
def comparison():
    rng = np.random.default_rng(0)
    train, val, test = toy_clusters(3000, rng), toy_clusters(500, rng), toy_clusters(300, rng)
    cfg = NPEConfig(hidden=32, context=16, blocks=2, flow_hidden=(32, 32),
                    train=TrainConfig(batch_size=32, max_epochs=25, patience=6, progress=False,
                                      seed=0))
    est = NPEDeepSets(cfg).fit(train, val)
    grid = np.linspace(13.0, 16.0, 1501)
    inner = (test.log_m > 13.8) & (test.log_m < 15.2)
    return exact_posterior(test, grid)[inner], np.exp(est.log_prob(test, grid))[inner], grid


def test_posterior_width_matches_the_exact_one(comparison):
    exact, npe, grid = comparison
    assert 0.9 < np.mean(moments(npe, grid)[1] / moments(exact, grid)[1]) < 1.1


def test_posterior_location_matches_the_exact_one(comparison):
    exact, npe, grid = comparison
    (mu_e, sd_e), (mu_n, _) = moments(exact, grid), moments(npe, grid)
    assert np.mean(np.abs(mu_n - mu_e) / sd_e) < 0.3


def test_kl_divergence_to_the_exact_posterior_is_small(comparison):
    exact, npe, grid = comparison
    kl = np.trapezoid(exact * (np.log(exact + 1e-300) - np.log(npe + 1e-300)), grid, axis=1)
    assert np.median(kl) < 0.05
