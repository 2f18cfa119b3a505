"""Every experiment runs end to end at a tiny size."""

import json

from experiments import mocks


def test_mocks_report_end_to_end(tmp_path):
    assert mocks.main(["--size", "tiny", "--out", str(tmp_path), "--seed", "1"]) == 0
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
    for fig in ("msigma", "richness_mass", "interloper_fraction", "phase_space_example"):
        assert (tmp_path / "figures" / f"{fig}.png").stat().st_size > 10_000
        assert f"figures/{fig}.png" in report
