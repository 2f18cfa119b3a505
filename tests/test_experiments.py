"""Every experiment runs end to end at a tiny size."""

import csv
import json
from dataclasses import replace

import numpy as np
import pytest

from experiments import realism
from pyro_clusters.defaults import setup_of
from pyro_clusters.diagnostics.posterior import load_posterior
from pyro_clusters.estimators import MSigmaConfig
from pyro_clusters.simulator import SimulatorConfig


def test_realism_report_end_to_end(tmp_path):
    assert realism.main(["--size", "tiny", "--out", str(tmp_path), "--seed", "1"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("msigma_pure_slope", "msigma_pure_sigma15_kms", "log_sigma_scatter_dex",
                "median_richness_at_14p2", "interloper_fraction_by_mass",
                "msigma_contaminated_over_pure_scatter", "clusters_per_second_idealized",
                "clusters_per_second_cylinder", "n_train", "n_test", "seed", "config",
                "package_version"):
        assert key in metrics
    assert all({"lo", "hi", "fraction"} <= set(b) for b in metrics["interloper_fraction_by_mass"])
    assert metrics["clusters_per_second_cylinder"] > 0
    report = (tmp_path / "report.md").read_text()
    depths = metrics["richness_by_depth"]
    assert set(depths) == {"9.5", "8"}
    deep, default = depths["8"][-1], depths["9.5"][-1]  # the heaviest bin
    assert deep["median_n_gal"] > 3 * default["median_n_gal"]
    for fig in ("msigma", "richness_mass", "interloper_fraction", "phase_space_example",
                "richness_depth"):
        assert (tmp_path / "figures" / f"{fig}.png").stat().st_size > 10_000
        assert f"figures/{fig}.png" in report


def test_idealized_experiment_end_to_end(tmp_path):
    from experiments import idealized

    assert idealized.main(["--size", "tiny", "--out", str(tmp_path), "--seed", "2",
                           "--no-progress", "--fresh"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["fresh_training"] is True
    contract = {"scatter_dex", "bias_dex", "residual_median_dex", "residual_p16_dex",
                "residual_p84_dex", "skewness", "kurtosis", "mean_posterior_std_dex", "hpd_ecp",
                "tarp_ecp", "hpd_max_abs_dev", "tarp_max_abs_dev", "by_mass_bin",
                "train_seconds", "infer_ms_per_cluster"}
    for name in ("msigma", "npe_deepsets", "msigma_hmf", "npe_deepsets_hmf"):
        assert contract <= set(metrics[name])
        assert (tmp_path / f"posterior_{name}.nc").exists()
    assert {"n_train", "n_test", "seed", "config", "package_version"} <= set(metrics)
    assert metrics["npe_deepsets"]["train_seconds"] > 0
    assert set(metrics["robustness"]) == {"msigma", "npe_deepsets"}
    assert (tmp_path / "flat_test" / "metrics.json").exists()
    assert (tmp_path / "models" / "npe_deepsets" / "weights.pt").exists()
    report = (tmp_path / "report.md").read_text()
    assert "Which prior?" in report and "Robustness" in report


@pytest.mark.integration
def test_idealized_same_seed_same_metrics(tmp_path):
    """A seed reproduces a run: no wall-clock budget in the sizes, so only timings differ."""
    from experiments import idealized
    from pyro_clusters.diagnostics.report import without_timings

    runs = []
    for name in ("a", "b"):
        assert idealized.main(["--size", "tiny", "--out", str(tmp_path / name), "--seed", "4",
                               "--no-progress"]) == 0
        runs.append(json.loads((tmp_path / name / "metrics.json").read_text()))
    assert runs[0]["npe_deepsets"]["train_seconds"] > 0
    assert "train_seconds" not in without_timings(runs[0])["npe_deepsets"]
    assert without_timings(runs[0]) == without_timings(runs[1])


def test_cylinder_experiment_end_to_end(tmp_path):
    from experiments import cylinder

    assert cylinder.main(["--size", "tiny", "--out", str(tmp_path), "--seed", "3",
                          "--no-progress", "--workers", "2", "--fresh"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["fresh_training"] is True
    for name in ("msigma_contaminated", "msigma", "msigma_pure", "npe_deepsets",
                 "npe_deepsets_hmf"):
        assert "scatter_dex" in metrics[name] and "tarp_ecp" in metrics[name]
    other = [k for k in metrics if k.startswith("npe_deepsets_with") or
             k.startswith("npe_deepsets_without")]
    assert len(other) == 1  # the NPE variant not chosen is reported too
    inter = metrics["interlopers"]
    for method in ("deepsets_classifier", "shifting_gapper", "sigma_clipping", "caustic"):
        assert {"accuracy", "precision", "recall", "contamination", "f1"} <= \
            set(inter[method]["overall"])
        assert inter[method]["by_mass_bin"]
    assert 0.5 < inter["deepsets_classifier"]["auc_roc"] <= 1.0
    assert (tmp_path / "figures" / "interlopers_roc_pr.png").stat().st_size > 10_000
    assert (tmp_path / "models" / "classifier" / "weights.pt").exists()
    report = (tmp_path / "report.md").read_text()
    assert "## Interlopers" in report and "caustic" in report


def test_compare_size_settings_per_estimator():
    from experiments.compare import SIZES

    full = SIZES["full"]
    npe = full.train_config_for("npe_deepsets", 0, "cpu", False)
    cnn = full.train_config_for("cnn_kde_slice", 0, "cpu", False)
    sbi = full.train_config_for("sbi_npe", 0, "cpu", False)
    assert (npe.max_epochs, npe.patience) == (full.max_epochs, 12)
    assert (cnn.max_epochs, cnn.patience) == (full.max_epochs, full.patience)
    assert (sbi.max_epochs, sbi.patience) == (30, full.patience)


def test_compare_experiment_end_to_end_and_reuse(tmp_path, capsys):
    from experiments import compare

    first, second = tmp_path / "a", tmp_path / "b"
    args = ["--size", "tiny", "--seed", "4", "--no-progress", "--setup", "cylinder"]
    assert compare.main(args + ["--out", str(first)]) == 0
    metrics = json.loads((first / "metrics.json").read_text())
    for name in compare.ESTIMATORS:
        assert {"scatter_dex", "hpd_max_abs_dev", "tarp_max_abs_dev", "mean_posterior_std_dex",
                "infer_ms_per_cluster"} <= set(metrics[name])
        assert metrics["infer_ms_per_cluster"][name] > 0
    assert metrics["reused"] == [] and metrics["setup"] == "cylinder"
    report = (first / "report.md").read_text()
    assert "## Inference time" in report and "÷ npe_deepsets" in report
    assert set(metrics["subsampling_drift"]) == set(compare.ESTIMATORS)
    assert metrics["subsampling_drift"]["msigma"]["n_clusters"] == 20
    assert "## Does it read the galaxy count?" in report
    assert (first / "figures" / "coverage.png").exists()
    assert (first / "flat_test" / "metrics.json").exists()
    # the same data: every model is reused, not retrained, and gives the same numbers
    assert compare.main(args + ["--out", str(second), "--reuse", str(first)]) == 0
    again = json.loads((second / "metrics.json").read_text())
    assert again["reused"] == list(compare.ESTIMATORS)
    for name in ("msigma", "cnn_kde_slice", "nf_kde2d"):
        assert again[name]["scatter_dex"] == metrics[name]["scatter_dex"]
        assert again["subsampling_drift"][name] == metrics["subsampling_drift"][name]
    # other data: refused
    with pytest.raises(SystemExit, match="only reused on the same data"):
        compare.main(["--size", "tiny", "--seed", "5", "--no-progress", "--setup", "cylinder",
                      "--out", str(tmp_path / "c"), "--reuse", str(first)])
    with pytest.raises(SystemExit):
        compare.main(args + ["--out", str(tmp_path / "d"), "--estimators", "msigma,nope"])
    # new training clusters every epoch for the neural estimators only; not a reusable match
    some = ["--estimators", "msigma,npe_deepsets,cnn_kde_slice", "--fresh"]
    assert compare.main(args + ["--out", str(tmp_path / "e")] + some) == 0
    fresh = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert fresh["fresh_training"] == ["npe_deepsets", "cnn_kde_slice"]
    assert fresh["msigma"]["scatter_dex"] == metrics["msigma"]["scatter_dex"]
    assert fresh["npe_deepsets"]["scatter_dex"] != metrics["npe_deepsets"]["scatter_dex"]
    with pytest.raises(SystemExit, match="only reused on the same data"):
        compare.main(args + ["--out", str(tmp_path / "f"), "--reuse", str(first), "--fresh"])
    with pytest.raises(SystemExit) as stop:  # refused at parsing: exit 2, one line
        compare.main(args + ["--out", str(tmp_path / "g"), "--fresh", "--data", str(tmp_path)])
    assert stop.value.code == 2


@pytest.mark.integration
def test_information_limit_experiment_end_to_end(tmp_path):
    from experiments import information_limit

    # --fresh: both NPEs train on new clusters every epoch (the catalogue test covers without)
    assert information_limit.main(["--size", "tiny", "--out", str(tmp_path), "--seed", "3",
                                   "--no-progress", "--jobs", "1", "--fresh",
                                   "--max-epochs", "1"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["fresh_training"] is True
    assert len(metrics["training"]["history"]) == metrics["max_epochs"] == 1
    for name in ("npe_deepsets", "jeans_exact"):
        assert {"scatter_dex", "hpd_max_abs_dev", "tarp_max_abs_dev",
                "infer_ms_per_cluster"} <= set(metrics[name])
    lim = metrics["information_limit"]
    assert lim["n_clusters"] == metrics["n_test"] == 3
    assert lim["std_ratio_mean"] > 0 and lim["jeans_exact_s_per_cluster"] > 0
    assert lim["meets_std_ratio_target_every_bin"] == all(
        abs(r["std_ratio_mean"] - 1) <= 0.1 for r in lim["by_mass_bin"])
    assert {"rhat_max", "divergences_total"} <= set(metrics["nuts"])
    assert metrics["sbc"]["n_clusters"] == 3 and metrics["sbc"]["richness"] == "poisson"
    assert "all" in metrics["misspecified"]["by_subset"]
    for fig in ("posterior_pairs", "std_ratio_vs_mass", "misspecified_residuals"):
        assert (tmp_path / "figures" / f"{fig}.png").stat().st_size > 5_000
    assert (tmp_path / "per_cluster.csv").read_text().count("\n") == 4
    report = (tmp_path / "report.md").read_text()
    assert "Information limit" in report and "SBC" in report
    # the HMF test population: its own clusters, both posteriors, both drifts
    hmf = metrics["hmf_test"]
    assert hmf["n_clusters"] == 3 and hmf["range"] == [14.0, 15.3] and hmf["reused_from"] is None
    for name in ("npe_deepsets", "jeans_exact"):
        assert hmf[name]["scatter_dex"] > 0 and hmf[name]["mean_posterior_std_dex"] > 0
        assert hmf[name]["drift"]["n_clusters"] == 2 and len(hmf[name]["drift"]["mean_dex"]) == 2
        assert sum(b["n"] for b in hmf[name]["by_mass_bin"]) == 3
    truth = load_posterior(tmp_path / "posterior_jeans_exact_hmf.nc").truth
    assert np.all((truth >= 14.0) & (truth <= 15.3))
    assert "count-blind limit on the HMF test population" in report
    assert metrics["config"]["npe"]["encoder"] == "deepsets"

    # a second NPE judged against the first run's exact posteriors, without NUTS
    again = tmp_path / "again"
    assert information_limit.main(["--size", "tiny", "--out", str(again), "--seed", "3",
                                   "--no-progress", "--max-epochs", "2", "--encoder",
                                   "histogram", "--exact-from", str(tmp_path)]) == 0
    m2 = json.loads((again / "metrics.json").read_text())
    assert len(m2["training"]["history"]) == 2  # its own NPE, with the other encoder
    assert m2["config"]["npe"]["encoder"] == "histogram"
    assert m2["hmf_test"]["reused_from"] == str(tmp_path)
    for key in ("scatter_dex", "bias_dex", "mean_posterior_std_dex"):  # recomputed: rounding
        assert m2["hmf_test"]["jeans_exact"][key] == pytest.approx(hmf["jeans_exact"][key])
    assert m2["hmf_test"]["jeans_exact"]["drift"] == hmf["jeans_exact"]["drift"]
    assert m2["jeans_exact"]["scatter_dex"] == metrics["jeans_exact"]["scatter_dex"]
    for key in ("nuts", "sbc", "misspecified"):
        assert m2[key]["reused_from"] == str(tmp_path)
    assert m2["information_limit"]["sigma_eps_b"] == lim["sigma_eps_b"]
    assert m2["information_limit"]["jeans_exact_s_per_cluster"] == pytest.approx(
        lim["jeans_exact_s_per_cluster"])
    assert not (again / "sbc").exists() and (again / "figures" / "posterior_pairs.png").is_file()
    assert "not run again" in (again / "report.md").read_text()
    with pytest.raises(SystemExit, match="same --seed"):
        information_limit.main(["--size", "tiny", "--out", str(tmp_path / "other"), "--seed",
                                "4", "--no-progress", "--exact-from", str(tmp_path)])
    assert not (tmp_path / "other" / "models" / "npe_deepsets").exists()  # refused first
    with pytest.raises(SystemExit, match="no finished"):
        information_limit.main(["--size", "tiny", "--out", str(tmp_path / "none"),
                                "--no-progress", "--exact-from", str(tmp_path / "nowhere")])


def test_information_limit_refuses_fresh_catalogue_training(tmp_path, capsys):
    from experiments import information_limit

    # refused before any simulation: the idealized NPE would train on catalogue sets
    with pytest.raises(SystemExit) as stop:
        information_limit.main(["--size", "tiny", "--out", str(tmp_path), "--fresh",
                                "--data", str(tmp_path / "catalogue")])
    assert stop.value.code == 2 and "--fresh" in capsys.readouterr().err
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_fresh_clusters_with_a_depth_nuisance_draw_the_depth_and_keep_the_rest():
    from pyro_clusters.pipeline.sets import fresh_clusters

    config = SimulatorConfig(setup="idealized")
    fresh = fresh_clusters(config, 96, depth_range=(9.0, 10.0))
    a, b = fresh(np.random.default_rng(0)), fresh(np.random.default_rng(0))
    depth = np.asarray(a.clusters["log_mstar_min"])
    assert len(a) == 96 and np.array_equal(depth, b.clusters["log_mstar_min"])  # seeded
    assert depth.min() >= 9.0 and depth.max() <= 10.0 and np.unique(depth).size == 3  # 3 chunks
    np.testing.assert_allclose(a.clusters["z"], config.z)
    assert a.attrs["setup"] == "idealized" and setup_of(a.attrs)["z"] == config.z
    plain = fresh_clusters(config, 50)(np.random.default_rng(0))
    assert "log_mstar_min" not in plain.clusters


def test_ablation_experiment_end_to_end(tmp_path):
    from experiments import ablation

    assert ablation.main(["--size", "tiny", "--out", str(tmp_path), "--seed", "2",
                          "--no-progress", "--variants", "deepsets,histogram_wide_32_fresh",
                          "--references", "cnn_kde_slice", "--max-epochs", "2"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for name in ("deepsets", "histogram_wide_32_fresh", "cnn_kde_slice"):
        assert metrics[name]["scatter_dex"] > 0 and name in metrics["flat_test"]
        assert (tmp_path / "models" / name / "model.json").is_file()
    t = metrics["training"]
    assert t["deepsets"]["parameters"] < t["histogram_wide_32_fresh"]["parameters"]
    assert metrics["max_epochs"] == 2 and t["deepsets"]["epochs"] <= 2
    drift = metrics["subsampling_drift"]
    assert set(drift) == {"deepsets", "histogram_wide_32_fresh", "cnn_kde_slice"}
    for d in drift.values():  # removing galaxies moves a median by far less than 1 dex
        assert d["rates"] == [0.5, 0.7] and np.all(np.abs(d["mean_dex"]) < 1.0)
    # experiments.richness on the saved model: the same clusters and protocol, the same numbers
    from experiments import richness

    model = str(tmp_path / "models" / "deepsets")
    assert richness.main([model, "--size", "tiny", "--seed", "2",
                          "--out", str(tmp_path / "richness")]) == 0
    again = json.loads((tmp_path / "richness" / "richness.json").read_text())["models"]
    np.testing.assert_allclose(again[model]["drift_mean_dex"], drift["deepsets"]["mean_dex"])
    assert again[model]["scatter_dex"] > 0 and f"{model} (its M–σ baseline)" in again
    with pytest.raises(SystemExit, match="neither"):
        richness.main([str(tmp_path / "nothing"), "--size", "tiny"])
    report = (tmp_path / "report.md").read_text()
    assert "## Ablation" in report and "`cnn_kde_slice` (reference)" in report
    assert "drift ε(0.5)" in report
    run_size = ablation.SIZES["tiny"]
    msigma = MSigmaConfig(z=0.117)
    cosine = ablation._config("histogram_wide_32_fresh_cosine", run_size, 0, "cpu", False, msigma)
    plateau = ablation._config("histogram_wide_32_fresh", run_size, 0, "cpu", False, msigma)
    assert (cosine.train.lr_schedule, plateau.train.lr_schedule) == ("cosine", "plateau")
    assert replace(cosine, train=plateau.train) == plateau  # the schedule is its only change
    depth = ablation._config("histogram_wide_32_fresh_depth", run_size, 0, "cpu", False, msigma)
    assert depth == plateau  # the depth nuisance changes the training clusters, not the network
    bf16 = ablation._config("histogram_wide_32_fresh_bf16", run_size, 0, "cpu", False, msigma)
    assert (bf16.train.precision, plateau.train.precision) == ("bfloat16", "float32")
    assert replace(bf16, train=plateau.train) == plateau
    assert replace(bf16.train, precision="float32") == plateau.train
    with pytest.raises(SystemExit):
        ablation.main(["--size", "tiny", "--out", str(tmp_path / "x"), "--variants", "nope"])


def test_richness_experiment_measures_a_shipped_bundle(tmp_path):
    from experiments import richness

    assert richness.main(["default", "--setup", "cylinder", "--size", "tiny", "--clusters", "8",
                          "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "richness.json").read_text())
    assert result["n_clusters"] == 8 and result["pure_richness_dex"][0] == pytest.approx(-0.301,
                                                                                         abs=1e-3)
    assert set(result["models"]) == {"default", "default (its M–σ baseline)"}
    assert "drift r = 0.5" in (tmp_path / "report.md").read_text()


def test_no_run_size_has_a_wall_clock_budget():
    """Quick and full sizes stop by epochs and patience; a budget is only an explicit option."""
    from pyro_clusters.pipeline.sizes import SIZES

    for run, sizes in SIZES.items():
        for size, run_size in sizes.items():
            assert run_size.max_seconds is None, (run, size)


def test_amortised_experiment_end_to_end(tmp_path):
    from experiments import amortised

    assert amortised.main(["--size", "tiny", "--out", str(tmp_path), "--seed", "1",
                           "--n-case", "7", "--no-progress"]) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert len(m["grid"]) == len(amortised.GRID_Z) * len(amortised.GRID_DEPTH)
    assert {"scatter_dex", "bias_dex", "hpd_max_abs_dev", "tarp_max_abs_dev"} <= set(
        m["grid"][0])
    deep = [c for c in m["grid"] if c["log_mstar_min"] == 8.2]
    shallow = [c for c in m["grid"] if c["log_mstar_min"] == 10.0]
    assert min(c["median_n_gal"] for c in deep) > max(c["median_n_gal"] for c in shallow)
    assert set(m["cases"]) == {"deep_nearby", "z0.3"}
    assert {c["n"] for c in m["cases"].values()} == {7}
    variants = {r["variant"]: r for r in m["cluster_physics"]}
    assert set(variants) == set(amortised.CLUSTER_PHYSICS)
    # one random stream for every variant: the change alone changes the clusters
    assert variants["every cluster merging"]["median_n_gal"] > variants[
        "relaxed: no infalling group, no merger"]["median_n_gal"]
    assert "Cluster physics" in (tmp_path / "report.md").read_text()
    assert m["trained_on"]["amortised"] and m["trained_on"]["z_range"] == [0.01, 0.3]
    assert (tmp_path / "figures" / "grid.png").stat().st_size > 10_000
    assert (tmp_path / "model" / "bundle.json").is_file()
    # the bundle infers a cluster at another redshift without a redshift warning
    from pyro_clusters.realfield.bundle import CylinderModel
    from pyro_clusters.realfield.inference import infer_cluster
    from pyro_clusters.realfield.table import RedshiftTable, cluster_to_table, observe_field

    model = CylinderModel.load(tmp_path / "model")
    cs = amortised._clusters(1, 0.05, 9.0, np.random.default_rng(3),
                             amortised.FlatLogMassPrior(14.6, 14.8))
    ra, dec, cz = cluster_to_table(cs, 0, 150.0, 2.0, 0.05)
    table = RedshiftTable(ra, dec, cz, np.arange(ra.size), ra.size, 0, {}, "mock")
    obs = observe_field(table, 150.0, 2.0, 0.05, 1.6, 2200.0)
    post = infer_cluster(obs, model, n_draws=200)
    assert not any("redshift" in w for w in post.warnings)


def test_realdata_validation_end_to_end(tmp_path):
    """The shipped manifest (Shapley survey + two HeCS clusters) through one model."""
    from experiments import realdata

    assert realdata.main(["--models", "default", "--draws", "300", "--no-progress",
                          "--out", str(tmp_path)]) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    s = m["summary"]["default"]
    assert set(s) == {"X-ray (MCXC)", "SZ (PSZ2)", "caustic (HeCS)"}
    assert s["SZ (PSZ2)"]["n"] == 7 and s["caustic (HeCS)"]["n"] == 2
    assert s["X-ray (MCXC)"]["n"] == 17  # 15 Shapley clusters with a posterior + 2 HeCS
    assert abs(s["SZ (PSZ2)"]["mean_offset_dex"]) < 0.2
    assert "MCXCJ1329.8-3310" in s["X-ray (MCXC)"]["far"]  # a neighbour in its cylinder
    with open(tmp_path / "validation.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["status"] for r in rows} == {"ok", "skipped"}
    assert (tmp_path / "figures" / "validation.png").stat().st_size > 10_000
    assert realdata.main(["--manifest", str(tmp_path / "none.json"), "--out",
                          str(tmp_path / "x")]) == 2
