"""KDE images and the image-based estimators (cnn_kde_slice, mc_dropout, nf_kde2d)."""

import math

import numpy as np
import pytest
import torch

from pyro_clusters.data.clusters import ClusterSet
from pyro_clusters.estimators.kde_image import (
    CNNKDESlice,
    GaussianFlowKDE,
    GaussianFlowStack,
    ImageConfig,
    MCDropoutCNN,
)
from pyro_clusters.features.kde import KDEImageSpec, kde_images
from pyro_clusters.simulator import FlatLogMassPrior, SimulatorConfig, simulate_selected
from pyro_clusters.training import TrainConfig


@pytest.fixture(scope="module")
def sets(simulated):
    return simulated("cylinder", (400, 200, 60), seed=21)


def _brute(R, v, spec, grids):
    hs = [spec.h0 * np.std(c, ddof=1) for c in (R, v)]
    img = np.zeros((len(grids[1]), len(grids[0])))
    for r_i, v_i in zip(R, v, strict=True):
        img += np.outer(np.exp(-0.5 * ((grids[1] - v_i) / hs[1]) ** 2),
                        np.exp(-0.5 * ((grids[0] - r_i) / hs[0]) ** 2))
    return img / img.sum()


def test_2d_images_equal_the_direct_sum(sets):
    test = sets[2]
    spec = KDEImageSpec(r_max=1.6, v_max=2200.0)
    imgs = kde_images(test, spec, batch_size=7)  # several padded batches
    grids = (np.linspace(0, 1.6, 48), np.linspace(-2200, 2200, 48))
    for i in (0, 13, 59):
        g = test.galaxies_of(i)
        ref = _brute(np.hypot(g["x_proj"], g["y_proj"]).astype(float),
                     g["v_los"].astype(float), spec, grids)
        np.testing.assert_allclose(imgs[i], ref, atol=1e-7)
    np.testing.assert_allclose(imgs.reshape(len(test), -1).sum(1), 1.0, rtol=1e-5)


def test_3d_images_equal_the_direct_sum(sets):
    test = sets[2].select(np.arange(3))
    spec = KDEImageSpec(kind="3d", bins=12, h0=0.175)
    imgs = kde_images(test, spec)
    grid_r, grid_v = np.linspace(-1.6, 1.6, 12), np.linspace(-2200, 2200, 12)
    g = test.galaxies_of(1)
    cols = [g[k].astype(float) for k in ("x_proj", "y_proj", "v_los")]
    # bandwidths never below half a grid step (kde_images docstring)
    floors = [0.5 * (grid_r[1] - grid_r[0])] * 2 + [0.5 * (grid_v[1] - grid_v[0])]
    hs = [max(0.175 * np.std(c, ddof=1), f) for c, f in zip(cols, floors, strict=True)]
    assert hs[0] == floors[0]  # the floor is active on this coarse grid
    ref = np.zeros((12, 12, 12))
    for x, y, v in zip(*cols, strict=True):
        ref += np.einsum("i,j,k->ijk", np.exp(-0.5 * ((grid_r - x) / hs[0]) ** 2),
                         np.exp(-0.5 * ((grid_r - y) / hs[1]) ** 2),
                         np.exp(-0.5 * ((grid_v - v) / hs[2]) ** 2))
    np.testing.assert_allclose(imgs[1], ref / ref.sum(), atol=1e-7)


def test_degenerate_cluster_gives_a_finite_image():
    n = 5
    c = ClusterSet({"log_m": np.array([14.0])},
                   {"x_proj": np.full(n, 0.3, np.float32), "y_proj": np.zeros(n, np.float32),
                    "v_los": np.full(n, 100.0, np.float32)}, np.array([0, n]))
    img = kde_images(c, KDEImageSpec())
    assert np.isfinite(img).all() and img.sum() == pytest.approx(1.0, rel=1e-5)


def test_spec_validation_and_grid_choice(sets):
    with pytest.raises(ValueError):
        KDEImageSpec(kind="4d")
    spec = KDEImageSpec.for_clusters(sets[0])
    assert (spec.r_max, spec.v_max, spec.bins, spec.h0) == (1.6, 2200.0, 48, 0.25)


def test_gaussian_flow_stack_is_a_gaussian():
    """The stack's log-density equals N(mean, std) from its composed affine maps."""
    torch.manual_seed(0)
    net = GaussianFlowStack(10, 3, (16, 8, 16))
    d = torch.randn(5, 10)
    mu, log_sigma = net(d)
    mean, std = GaussianFlowStack.moments(mu, log_sigma)
    u0 = torch.randn(5)
    ref = torch.distributions.Normal(mean, std).log_prob(u0)
    torch.testing.assert_close(GaussianFlowStack.log_prob(u0, mu, log_sigma), ref,
                               rtol=1e-5, atol=1e-5)


def _tiny_config():
    return ImageConfig(mc_passes=20, train=TrainConfig(batch_size=50, max_epochs=3, patience=2,
                                                       seed=3, progress=False))


@pytest.mark.parametrize("cls", [CNNKDESlice, MCDropoutCNN, GaussianFlowKDE])
def test_estimators_fit_sample_save_load(sets, tmp_path, cls):
    train, val, test = sets
    est = cls(_tiny_config()).fit(train, val)
    a = est.sample(test, 200, np.random.default_rng(1))
    assert a.shape == (len(test), 200) and np.isfinite(a).all()
    b = est.sample(test, 200, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)  # seeded, no global state
    est.save(tmp_path / cls.name)
    again = cls.load(tmp_path / cls.name)
    np.testing.assert_allclose(again.sample(test, 200, np.random.default_rng(1)), a, atol=1e-9)
    # learnt something: posterior medians correlate with the truth
    assert np.corrcoef(np.median(a, 1), test.log_m)[0, 1] > 0.5
    with pytest.raises(ValueError, match="idealized"):
        est.sample(simulate_selected(12, FlatLogMassPrior(), SimulatorConfig(setup="idealized"),
                                     np.random.default_rng(0))[0], 5, np.random.default_rng(0))


def test_kde_slice_matches_scipy_gaussian_kde(sets):
    """The sliced mixture equals scipy's bivariate KDE at (s, m), normalised over m."""
    from scipy.stats import gaussian_kde

    train, val, test = sets
    est = CNNKDESlice(_tiny_config()).fit(train, val)
    kde = gaussian_kde(est.calib)
    # the mixture is normalised over the real line: the grid must reach its tails
    grid = np.linspace(12.0, 17.0, 1001)
    sub = test.select(np.arange(4))
    mine = np.exp(est.log_prob(sub, grid))
    s = est.summary(sub)
    for i in range(4):
        ref = kde(np.vstack([np.full_like(grid, s[i]), grid]))
        assert np.trapezoid(mine[i], grid) == pytest.approx(1.0, abs=1e-3)  # normalised
        # same shape as scipy's slice (both normalised by the same quadrature)
        np.testing.assert_allclose(mine[i] / np.trapezoid(mine[i], grid),
                                   ref / np.trapezoid(ref, grid), rtol=1e-6,
                                   atol=1e-9 * ref.max())
    # draws follow the same density (KS test, 4000 draws, seed fixed)
    from scipy.stats import kstest

    draws = est.sample(sub.select([0]), 4000, np.random.default_rng(5))[0]
    cdf = np.cumsum(mine[0]) * (grid[1] - grid[0])
    assert kstest(draws, lambda x: np.interp(x, grid, cdf / cdf[-1])).pvalue > 0.01


def test_mc_dropout_passes_differ(sets):
    train, val, test = sets
    est = MCDropoutCNN(_tiny_config()).fit(train, val)
    mu, sigma = est.passes(test, np.random.default_rng(0))
    assert mu.shape == (20, len(test)) and (sigma > 0).all()
    assert np.std(mu, axis=0).mean() > 0  # dropout is on at inference
    assert math.isfinite(float(mu.mean()))


def test_3d_option_trains_a_3d_cnn(sets, tmp_path):
    train, val, test = sets
    cfg = ImageConfig(kind="3d", bins=12, mc_passes=5,
                      train=TrainConfig(batch_size=50, max_epochs=2, patience=2, progress=False))
    est = MCDropoutCNN(cfg).fit(train, val)
    assert est.spec.shape == (12, 12, 12) and est.spec.h0 == 0.175
    draws = est.sample(test, 50, np.random.default_rng(0))
    assert draws.shape == (len(test), 50) and np.isfinite(draws).all()
    est.save(tmp_path / "m3")
    np.testing.assert_allclose(MCDropoutCNN.load(tmp_path / "m3").sample(
        test, 50, np.random.default_rng(0)), draws, atol=1e-9)
    with pytest.raises(ValueError, match="2D"):
        GaussianFlowKDE(cfg).fit(train, val)
