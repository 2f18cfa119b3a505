"""Classical interloper removal: shifting gapper and sigma clipping."""

import numpy as np
import pytest

from pyro_clusters.data.clusters import ClusterSet
from pyro_clusters.diagnostics import classification_metrics
from pyro_clusters.membership.gapper import shifting_gapper, sigma_clipping
from pyro_clusters.simulator import FlatLogMassPrior, SimulatorConfig, simulate_selected


def two_population_cluster(seed=0, n_i=15):
    """60 members N(0, 500 km/s) within 1 h^-1 Mpc plus n_i interlopers at 3000-4000 km/s."""
    rng = np.random.default_rng(seed)
    n_m = 60
    r = np.r_[rng.uniform(0, 1, n_m), rng.uniform(0, 1, n_i)]
    phi = rng.uniform(0, 2 * np.pi, r.size)
    v = np.r_[rng.normal(0, 500, n_m), rng.choice([-1, 1], n_i) * rng.uniform(3000, 4000, n_i)]
    gal = {"x_proj": (r * np.cos(phi)).astype(np.float32),
           "y_proj": (r * np.sin(phi)).astype(np.float32),
           "v_los": v.astype(np.float32), "member": np.r_[np.ones(n_m), np.zeros(n_i)] > 0}
    return ClusterSet({"log_m": np.array([14.5])}, gal, np.array([0, r.size]))


def test_gapper_removes_a_separated_population():
    cs = two_population_cluster(n_i=15)
    np.testing.assert_array_equal(shifting_gapper(cs), cs.galaxies["member"])


def test_sigma_clipping_removes_few_outliers_but_not_a_large_population():
    """4 outliers in 64 (sigma ~1.1e3 km/s, 3 sigma < 3000) are clipped; with 15 in 75 the
    interlopers inflate sigma to ~1.6e3 km/s and 3 sigma no longer reaches them -- the method's
    known weakness under heavy contamination."""
    few = two_population_cluster(n_i=4)
    np.testing.assert_array_equal(sigma_clipping(few), few.galaxies["member"])
    many = two_population_cluster(n_i=15)
    assert sigma_clipping(many).all()


def test_sigma_clipping_agrees_with_astropy():
    from astropy.stats import sigma_clip

    rng = np.random.default_rng(1)
    cs = simulate_selected(60, FlatLogMassPrior(14.0, 15.0), SimulatorConfig(setup="cylinder"),
                           rng)[0]
    ours = sigma_clipping(cs, 3.0)
    for i in range(len(cs)):
        v = cs.galaxies_of(i)["v_los"].astype(np.float64)
        ref = ~sigma_clip(v, sigma=3.0, maxiters=None, cenfunc="median",
                          stdfunc=lambda x, axis=None: np.std(x, ddof=1)).mask
        lo, hi = cs.offsets[i], cs.offsets[i + 1]
        np.testing.assert_array_equal(ours[lo:hi], ref)


def test_gapper_trades_completeness_for_purity_on_the_cylinder_mocks():
    """Inside |v_los| < 2200 km/s interlopers overlap the members in velocity, so a 1000 km/s
    gap removes almost nothing (measured on 300 clusters: precision 0.726 vs 0.724 for all
    galaxies, recall 1.0) and smaller gaps buy purity with completeness (300 km/s: 0.774 and
    0.873). Checked: the 1000 km/s gapper keeps >= 98 % of members without losing purity, and
    the 300 km/s one is purer and less complete."""
    rng = np.random.default_rng(2)
    cs = simulate_selected(150, FlatLogMassPrior(14.0, 15.0), SimulatorConfig(setup="cylinder"),
                           rng)[0]
    truth = cs.galaxies["member"]
    everything = classification_metrics(truth, np.ones_like(truth))
    wide = classification_metrics(truth, shifting_gapper(cs, gap_kms=1000))
    narrow = classification_metrics(truth, shifting_gapper(cs, gap_kms=300))
    assert wide["recall"] >= 0.98 and wide["precision"] >= everything["precision"] - 0.005
    assert narrow["precision"] > wide["precision"] + 0.02 and narrow["recall"] < wide["recall"]


def test_bad_parameters_raise():
    cs = two_population_cluster()
    with pytest.raises(ValueError):
        shifting_gapper(cs, gap_kms=0)
    with pytest.raises(ValueError):
        sigma_clipping(cs, n_sigma=-1)
