"""Robustness diagnostics, the M-sigma estimator, the report writer and its command."""

import json

import numpy as np
import pytest

from pyro_clusters.cli.report import main as report_main
from pyro_clusters.diagnostics import (
    PosteriorSamples,
    calibrated_max_dev,
    recentre,
    save_posterior,
    subsample,
    subsampling_drift,
    velocity_error_shift,
    write_report,
)
from pyro_clusters.estimators import MSigmaConfig, MSigmaEstimator
from pyro_clusters.simulator import (
    FlatLogMassPrior,
    HaloMassFunctionSampler,
    SimulatorConfig,
    simulate_selected,
)

CONTRACT = {"scatter_dex", "bias_dex", "residual_median_dex", "residual_p16_dex",
            "residual_p84_dex", "skewness", "kurtosis", "mean_posterior_std_dex", "hpd_ecp",
            "tarp_ecp", "hpd_max_abs_dev", "tarp_max_abs_dev", "by_mass_bin", "train_seconds",
            "infer_ms_per_cluster"}


@pytest.fixture(scope="module")
def sets():
    rng = np.random.default_rng(21)
    cfg = SimulatorConfig(setup="idealized")
    train, _ = simulate_selected(3000, FlatLogMassPrior(), cfg, rng)
    test, _ = simulate_selected(600, HaloMassFunctionSampler(), cfg, rng)
    return train, test


@pytest.fixture(scope="module")
def msigma(sets):
    return MSigmaEstimator().fit(sets[0])


def test_subsample_keeps_the_stated_share_of_real_galaxies(sets):
    test = sets[1]
    sub = subsample(test, 0.3, np.random.default_rng(0))
    np.testing.assert_array_equal(sub.n_gal, np.maximum(np.rint(0.3 * test.n_gal), 1))
    for i in (0, 5, 77):
        assert set(sub.galaxies_of(i)["v_los"]) <= set(test.galaxies_of(i)["v_los"])
    with pytest.raises(ValueError, match="sampling rate"):
        subsample(test, 0.0, np.random.default_rng(0))


def test_subsampling_drift_known_behaviour(msigma, sets):
    """At r = 1 nothing changes (common random numbers make it exact for M-sigma); removing
    galaxies widens the drift; the unbiased sigma keeps the median drift small at 0.6-0.8
    (Ho et al. 2019 Table 4: M-sigma_pure median -0.005, width 0.18 dex)."""
    test = sets[1].select(np.arange(300))
    d = subsampling_drift(msigma, test, np.random.default_rng(1), n_repeats=5)
    assert d.rates[-1] == 1.0
    np.testing.assert_allclose(d.epsilon[-1], 0.0, atol=1e-9)
    width = d.p84 - d.p16
    assert width[0] > width[6] > width[-1]
    s = d.summary_0608
    assert abs(s["median_dex"]) < 0.03 and 0.02 < s["width_dex"] < 0.3
    assert set(d.to_dict()) == {"rates", "median_dex", "p16_dex", "p84_dex", "summary_0608"}


def test_velocity_errors_raise_msigma_masses(msigma, sets):
    test = sets[1].select(np.arange(300))
    none = velocity_error_shift(msigma, test, np.random.default_rng(2), error_kms=0.0)
    assert none["median_shift_dex"] == pytest.approx(0.0, abs=1e-9)
    big = velocity_error_shift(msigma, test, np.random.default_rng(2), error_kms=300.0)
    assert big["median_shift_dex"] > 0.02  # errors inflate sigma, hence the M-sigma mass


def test_msigma_estimator_contract(msigma, sets, tmp_path):
    train, test = sets
    draws = msigma.sample(test, 100, np.random.default_rng(3))
    assert draws.shape == (len(test), 100) and np.isfinite(draws).all()
    assert 0.30 < msigma.fit_.slope < 0.37
    msigma.save(tmp_path / "m")
    again = MSigmaEstimator.load(tmp_path / "m")
    np.testing.assert_array_equal(again.sample(test, 100, np.random.default_rng(3)), draws)
    # a cluster without two galaxies falls back to the training distribution, never NaN
    empty = test.filter_galaxies(np.zeros(test.offsets[-1], dtype=bool))
    fb = msigma.sample(empty.select(np.arange(3)), 1000, np.random.default_rng(4))
    assert np.isfinite(fb).all()
    assert fb.mean() == pytest.approx(train.log_m.mean(), abs=0.05)
    assert MSigmaEstimator(MSigmaConfig(dispersion="biweight")).fit(train).fit_.slope > 0.25
    with pytest.raises(ValueError, match="dispersion"):
        MSigmaConfig(dispersion="gapper")


def _posterior(msigma, test, name="msigma"):
    draws = msigma.sample(test, 400, np.random.default_rng(5))
    return PosteriorSamples(draws, test.log_m, {"richness": test.clusters["n_members"]}, name,
                            {"train_seconds": 0.01, "infer_ms_per_cluster": 0.001})


def test_write_report_contract_and_figures(msigma, sets, tmp_path):
    test = sets[1]
    a = _posterior(msigma, test)
    wide = PosteriorSamples(a.truth[:, None] + 2 * (a.samples - a.truth[:, None]), a.truth,
                            estimator="msigma_wide")
    metrics = write_report(tmp_path, [a, wide], seed=3, top_level={"n_train": 3000})
    for name in ("msigma", "msigma_wide"):
        assert CONTRACT <= set(metrics[name])
        assert (tmp_path / f"posterior_{name}.nc").exists()
        assert all({"lo", "hi", "n", "bias_dex", "scatter_dex", "mean_posterior_std_dex"}
                   <= set(b) for b in metrics[name]["by_mass_bin"])
    assert {"n_train", "n_test", "seed", "config", "package_version"} <= set(metrics)
    assert metrics["msigma"]["richness_split"]["sigma_n_dex"] > 0
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["msigma"]["scatter_dex"] == pytest.approx(metrics["msigma"]["scatter_dex"])
    report = (tmp_path / "report.md").read_text()
    for fig in ("predicted_vs_true", "coverage", "bias_std_vs_mass", "std_vs_scatter",
                "residuals"):
        assert (tmp_path / "figures" / f"{fig}.png").stat().st_size > 10_000
        assert f"figures/{fig}.png" in report
    assert "`msigma_wide`" in report
    n = len(test)
    assert f"calibrated posterior on {n} clusters" in report
    assert f"{calibrated_max_dev(n, 0.95):.3f}" in report


def test_tarp_of_one_estimator_independent_of_its_company(msigma, sets, tmp_path):
    """TARP reference points are keyed by seed and estimator name, not by list position."""
    test = sets[1]
    a = _posterior(msigma, test)
    wide = PosteriorSamples(a.truth[:, None] + 2 * (a.samples - a.truth[:, None]), a.truth,
                            estimator="msigma_wide")
    alone = write_report(tmp_path / "alone", [a], seed=3, save_samples=False)
    pair = write_report(tmp_path / "pair", [wide, a], seed=3, save_samples=False)
    assert pair["msigma"]["tarp_ecp"] == alone["msigma"]["tarp_ecp"]
    assert pair["msigma"]["tarp_max_abs_dev"] == alone["msigma"]["tarp_max_abs_dev"]
    other_seed = write_report(tmp_path / "seed4", [a], seed=4, save_samples=False)
    assert other_seed["msigma"]["tarp_ecp"] != alone["msigma"]["tarp_ecp"]


def test_report_refuses_mismatched_test_sets(msigma, sets, tmp_path):
    test = sets[1]
    a = _posterior(msigma, test)
    b = _posterior(msigma, test.select(np.arange(100)), name="other")
    with pytest.raises(ValueError, match="same test clusters"):
        write_report(tmp_path, [a, b])
    with pytest.raises(ValueError, match="unique"):
        write_report(tmp_path, [a, a])


def test_report_command_from_saved_samples(msigma, sets, tmp_path, capsys):
    path = save_posterior(_posterior(msigma, sets[1]), tmp_path / "posterior_msigma.nc")
    out = tmp_path / "rep"
    assert report_main(["--posterior", str(path), "--out", str(out), "--seed", "1"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert CONTRACT <= set(metrics["msigma"])
    assert "msigma            scatter" in capsys.readouterr().out
    assert report_main(["--posterior", str(tmp_path / "missing.nc"), "--out", str(out)]) == 2
    # a run directory stands for its posterior files
    again = tmp_path / "rep2"
    assert report_main(["--posterior", str(tmp_path), "--out", str(again)]) == 0
    assert "msigma" in json.loads((again / "metrics.json").read_text())
    assert report_main(["--posterior", str(out), "--out", str(again)]) == 2  # no posteriors there


def test_figure_labels_and_zero_richness_note():
    from pyro_clusters.diagnostics.plots import display_name
    from pyro_clusters.diagnostics.report import _richness_note

    assert display_name("npe_deepsets_hmf") == "set NPE, HMF prior"
    assert display_name("msigma_contaminated") == "M–σ, all galaxies"
    assert display_name("my_estimator") == "my_estimator"
    assert _richness_note("npe_deepsets", {"sigma_n_dex": 0.05}) == ""
    note = _richness_note("npe_deepsets_hmf", {"sigma_n_dex": 1e-6})
    assert "lower bound" in note and "HMF prior" in note


def test_recentre_cuts_a_displaced_cylinder():
    """Galaxies are re-expressed about the displaced centre and cut again: none outside the
    new cylinder, some enter from the wider one, the members move by the offset."""
    import dataclasses

    cfg = SimulatorConfig(setup="cylinder")
    cfg = cfg.replace(observation=dataclasses.replace(cfg.observation, aperture=2.0,
                                                      v_cut=2600.0))
    wide = simulate_selected(30, FlatLogMassPrior(14.5, 15.0), cfg,
                             np.random.default_rng(4))[0]
    g = wide.galaxies
    inside = (np.hypot(g["x_proj"], g["y_proj"]) < 1.6) & (np.abs(g["v_los"]) < 2200.0)
    same = recentre(wide, 0.0, 0.0, 1.6, 2200.0, np.random.default_rng(0))
    np.testing.assert_array_equal(same.n_gal, wide.filter_galaxies(inside).n_gal)
    assert same.attrs["aperture"] == 1.6 and same.attrs["v_cut"] == 2200.0
    moved = recentre(wide, 0.3, 400.0, 1.6, 2200.0, np.random.default_rng(0))
    m = moved.galaxies
    assert np.hypot(m["x_proj"], m["y_proj"]).max() < 1.6 and np.abs(m["v_los"]).max() < 2200
    # galaxies from outside the original 1.6 h^-1 Mpc cylinder enter the displaced one
    assert not np.array_equal(moved.n_gal, same.n_gal)
    idx = moved.cluster_index()
    member = m["member"].astype(bool)
    n = np.bincount(idx[member], minlength=len(moved))
    centre = np.hypot(np.bincount(idx[member], m["x_proj"][member], len(moved)),
                      np.bincount(idx[member], m["y_proj"][member], len(moved))) / n
    v_mean = np.abs(np.bincount(idx[member], m["v_los"][member], len(moved)) / n)
    # the new cut truncates the cluster on its far side: its centroid lies a bit short of the
    # offset (0.22 of 0.3 h^-1 Mpc, 350 of 400 km/s here), far from the unmoved 0
    assert 0.15 < np.median(centre) <= 0.3 and 250.0 < np.median(v_mean) <= 400.0
    with pytest.raises(ValueError, match="wider"):
        recentre(wide, 0.5, 0.0, 1.6, 2200.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match=">= 0"):
        recentre(wide, -0.1, 0.0, 1.6, 2200.0, np.random.default_rng(0))
