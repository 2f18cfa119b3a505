"""Cluster-by-cluster posterior comparison (diagnostics.comparison)."""

from __future__ import annotations

import numpy as np
import pytest

from pyro_clusters.diagnostics import compare_posteriors, per_cluster_comparison


def test_identical_posteriors_compare_as_equal():
    rng = np.random.default_rng(0)
    b = rng.normal(14.0, 0.1, (50, 4000))
    a = rng.normal(14.0, 0.1, (50, 4000))
    s = compare_posteriors(a, b)
    assert s["std_ratio_mean"] == pytest.approx(1.0, abs=0.01)
    assert s["kl_gauss_mean"] < 1e-3 and s["w1_median"] < 0.05


def test_known_width_ratio_shift_and_kl():
    rng = np.random.default_rng(1)
    b = rng.normal(0.0, 0.1, (20, 20000))
    a = rng.normal(0.05, 0.12, (20, 20000))  # 1.2x wider, shifted by half a reference sd
    c = per_cluster_comparison(a, b)
    np.testing.assert_allclose(c["std_ratio"], 1.2, rtol=0.02)
    np.testing.assert_allclose(c["shift"], 0.5, atol=0.03)
    kl = np.log(1.2) + (1 + 0.25) / (2 * 1.44) - 0.5  # KL(N(0,1) || N(0.5,1.2)) in sd units
    np.testing.assert_allclose(c["kl_gauss"], kl, atol=0.02)
    truth = np.zeros(20)
    s = compare_posteriors(a, b, truth)
    assert s["sigma_eps_a"] > 0 and "sigma_eps_rel_diff" in s


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="same clusters"):
        compare_posteriors(np.zeros((3, 10)), np.zeros((4, 10)))
    with pytest.raises(ValueError, match="finite"):
        compare_posteriors(np.full((2, 10), np.nan), np.ones((2, 10)))
    with pytest.raises(ValueError, match="spread"):
        compare_posteriors(np.ones((2, 10)), np.ones((2, 10)))
