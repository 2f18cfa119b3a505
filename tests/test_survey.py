"""Many clusters of one survey: ``pyro-clusters infer --centres`` and ``infer_survey``."""

import csv

import numpy as np
import pytest

from pyro_clusters.__main__ import main as cli
from pyro_clusters.realfield.bundle import CylinderModel
from pyro_clusters.realfield.inference import infer_cluster
from pyro_clusters.realfield.survey import (
    infer_survey,
    mock_survey,
    read_centres,
    write_survey_outputs,
)
from pyro_clusters.realfield.table import observe_field, write_redshift_table
from pyro_clusters.simulator import FlatLogMassPrior, SimulatorConfig, simulate_selected

N = 40


@pytest.fixture(scope="module")
def survey():
    rng = np.random.default_rng(8)
    cs = simulate_selected(N, FlatLogMassPrior(14.2, 15.0), SimulatorConfig(setup="cylinder"),
                           rng)[0]
    table, centres = mock_survey(cs, seed=2)
    return cs, table, centres, CylinderModel.load()


def test_every_cluster_gets_the_single_cluster_posterior(survey):
    cs, table, centres, model = survey
    res = infer_survey(table, centres, model, n_draws=2000, seed=1, progress=False)
    assert [r["name"] for r in res.rows] == list(centres.name)
    assert all(r["status"] == "ok" for r in res.rows) and res.draws.shape == (N, 2000)
    lo = np.array([r["p2.5"] for r in res.rows])
    hi = np.array([r["p97.5"] for r in res.rows])
    # 95 % intervals: 40 clusters, expected 38 inside; >= 34 is a 3-sigma binomial bound
    assert np.sum((cs.log_m >= lo) & (cs.log_m <= hi)) >= 34
    # cluster 3 alone, through the single-cluster path, gives the same posterior
    t = model.trained_on
    obs = observe_field(table, centres.ra[3], centres.dec[3], centres.z[3], t["aperture"],
                        t["v_cut"])
    single = infer_cluster(obs, model, n_draws=2000, seed=1)
    row = res.rows[3]
    assert row["n_galaxies_in_cylinder"] == obs.n_gal == cs.n_gal[3]
    assert row["median"] == pytest.approx(single.summary["log10_M200c_hinv_Msun"]["median"],
                                          abs=0.02)  # Monte Carlo noise ~0.005 dex
    assert row["n_members_classifier"] == single.summary["n_members_classifier"]


def test_refine_z_in_a_batch(survey, tmp_path):
    """--refine-z per cluster: a cluster given 600 km/s too high is moved back; correctly
    centred ones move by about the error of their members' mean (~100 km/s for ~100
    galaxies; up to 260 km/s among these five), and the rows record it."""
    from pyro_clusters.cosmology import C_KMS

    _, table, centres, model = survey
    sub = type(centres)(centres.name[:6], centres.ra[:6], centres.dec[:6],
                        centres.z[:6].copy(), centres.columns, centres.source)
    sub.z[0] += (1 + sub.z[0]) * 600.0 / C_KMS
    res = infer_survey(table, sub, model, n_draws=300, seed=1, progress=False, refine_z=True)
    shifts = np.array([r["z_shift_kms"] for r in res.rows])
    assert -750.0 < shifts[0] < -450.0 and np.all(np.abs(shifts[1:]) < 400.0)
    plain = infer_survey(table, sub, model, n_draws=300, seed=1, progress=False)
    assert plain.rows[0]["member_velocity_offset_kms"] < -150.0
    assert "z_refined" not in plain.rows[0]
    write_survey_outputs(res, tmp_path / "out")
    with open(tmp_path / "out" / "clusters.csv") as f:
        header = next(csv.reader(f))
    assert header[3:6] == ["z", "z_refined", "z_shift_kms"]


def test_cli_skips_bad_rows_and_writes_one_row_per_cluster(survey, tmp_path, capsys):
    import xarray as xr

    cs, table, centres, _ = survey
    galaxies = write_redshift_table(tmp_path / "galaxies.csv", table.ra, table.dec, table.cz)
    rows = [(centres.name[i], f"{centres.ra[i]:.8f}", f"{centres.dec[i]:.8f}",
             f"{centres.z[i]:.6f}") for i in range(5)]
    rows += [("no_z", "10.0", "10.0", ""), ("bad_dec", "10.0", "95.0", "0.1"),
             ("text_z", "10.0", "10.0", "abc"), ("empty_sky", f"{centres.ra[0]:.6f}",
                                                 f"{centres.dec[0] + 2.5:.6f}", "0.117"),
             ("wrong_z", f"{centres.ra[1]:.8f}", f"{centres.dec[1]:.8f}", "0.2")]
    with open(tmp_path / "centres.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "RA", "Dec", "z"])
        w.writerows(rows)
    out = tmp_path / "out"
    assert cli(["infer", "--table", str(galaxies), "--centres", str(tmp_path / "centres.csv"),
                "--out", str(out), "--draws", "500", "--no-progress", "--figures"]) == 0
    printed = capsys.readouterr().out
    assert "5 of 10 clusters with a posterior" in printed
    with open(out / "clusters.csv") as f:
        got = list(csv.DictReader(f))
    assert [r["name"] for r in got] == [r[0] for r in rows]
    assert [r["status"] for r in got] == ["ok"] * 5 + ["skipped"] * 5
    reasons = {r["name"]: r["reason"] for r in got}
    assert "missing" in reasons["no_z"] and "missing" in reasons["text_z"]
    assert "declination" in reasons["bad_dec"]
    assert "no galaxy" in reasons["empty_sky"]
    assert "no galaxy" in reasons["wrong_z"] or "only" in reasons["wrong_z"]
    assert all(abs(float(r["median"]) - m) < 0.6 for r, m in zip(got[:5], cs.log_m[:5],
                                                               strict=True))
    tree = xr.open_datatree(out / "posteriors.nc", engine="h5netcdf")
    post = tree["posterior"]["log10_M200c"]
    assert post.shape == (1, 500, 5)
    assert list(post["cluster"].values) == list(centres.name[:5])
    assert len(list((out / "figures").glob("*.png"))) == 5


def test_centres_table_errors(tmp_path):
    from pyro_clusters.realfield.table import ObservationError

    (tmp_path / "c.csv").write_text("name,ra,dec\nA,1,2\n")
    with pytest.raises(ObservationError, match="no column for \\['z'\\]"):
        read_centres(tmp_path / "c.csv")
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(ObservationError, match="empty"):
        read_centres(tmp_path / "e.csv")
    (tmp_path / "ok.csv").write_text("RAJ2000 DEJ2000 redshift\n10 20 0.1\n")
    c = read_centres(tmp_path / "ok.csv")
    assert list(c.name) == ["row1"] and c.columns["z"] == "redshift"


def test_one_cluster_is_a_batch_of_one(survey):
    """The single-cluster path and the batch give a cluster the same draws, warnings and
    leakage (same seed, the cluster alone in the batch)."""
    _, table, centres, model = survey
    t = model.trained_on
    one = type(centres)(centres.name[3:4], centres.ra[3:4], centres.dec[3:4], centres.z[3:4],
                        centres.columns, centres.source)
    batch = infer_survey(table, one, model, n_draws=500, seed=4, progress=False)
    obs = observe_field(table, centres.ra[3], centres.dec[3], centres.z[3], t["aperture"],
                        t["v_cut"])
    from pyro_clusters.realfield.redshift import CHECK_TOL_KMS, refine_redshift

    # the check single-cluster infer makes (as the batch does for every cluster)
    check = refine_redshift(table, centres.ra[3], centres.dec[3], centres.z[3], model,
                            tol_kms=CHECK_TOL_KMS)
    single = infer_cluster(obs, model, n_draws=500, seed=4, refined=check)
    np.testing.assert_array_equal(batch.draws[0], single.draws)
    assert batch.warnings[0] == single.warnings
    assert batch.posteriors[0].settings["leakage_fraction"] == \
        single.settings["leakage_fraction"]
    assert batch.posteriors[0].settings["member_velocity_offset_kms"] == \
        single.settings["member_velocity_offset_kms"]


def test_leakage_is_each_clusters_own():
    """A batch reports each cluster's own share of draws outside the prior, not the batch's."""
    from pyro_clusters.estimators.base import Estimator
    from pyro_clusters.estimators.reweighted import PriorReweighted

    class Fixed(Estimator):
        name = "fixed_test"

        def __init__(self, centres):
            self.centres = np.asarray(centres)

        def _fit(self, splits):
            pass

        def sample(self, clusters, n, rng):
            noise = 0.1 * rng.standard_normal((len(clusters), n))
            return self.centres[:len(clusters), None] + noise

    cs = simulate_selected(2, FlatLogMassPrior(14.2, 14.4), SimulatorConfig(),
                           np.random.default_rng(0))[0]
    est = PriorReweighted(Fixed([14.0, 15.5]), lambda x: ((x >= 13.5) & (x <= 15.5)) * 1.0)
    info = est.sample_with_info(cs, 4000, np.random.default_rng(1)).info
    each = info["zero_weight_fraction_per_cluster"]
    assert each[0] == 0.0 and each[1] == pytest.approx(0.5, abs=0.03)  # half above 15.5
    assert info["zero_weight_fraction"] == pytest.approx(each.mean())


def test_a_listed_neighbour_in_the_cylinder_is_named(survey):
    """A second centre 0.8 h^-1 Mpc from cluster 0 at its redshift: both name each other;
    one 3 h^-1 Mpc away, or 4000 km/s behind, is not named."""
    from pyro_clusters.cosmology import C_KMS, angular_diameter_distance
    from pyro_clusters.realfield.survey import Centres, neighbour_warnings

    _, table, centres, model = survey
    z = float(centres.z[0])
    step = np.rad2deg(1.0 / float(angular_diameter_distance(z)))  # deg per h^-1 Mpc
    dec0 = float(centres.dec[0])
    ra = np.array([centres.ra[0], centres.ra[0], centres.ra[0], centres.ra[0]])
    dec = np.array([dec0, dec0 + 0.8 * step, dec0 - 3.0 * step, dec0 - 0.5 * step])
    zs = np.array([z, z, z, z + 4000.0 * (1 + z) / C_KMS])
    c = Centres(np.array(["main", "near", "far", "behind"]), ra, dec, zs, centres.columns)
    t = model.trained_on
    w = neighbour_warnings(c, 0, t["aperture"], t["v_cut"])
    assert len(w) == 1 and "near at R = 0.80" in w[0]
    assert any("main" in m for m in neighbour_warnings(c, 1, t["aperture"], t["v_cut"]))
    res = infer_survey(table, c, model, n_draws=200, seed=0, progress=False)
    assert "another listed cluster lies in the cylinder: near" in res.rows[0]["warnings"]
    assert res.posteriors[0].summary["warnings"] == res.warnings[0]


def test_a_cluster_outside_the_prior_fails_alone_not_its_group():
    """One cluster of a prior group whose posterior lies beyond the prior range is skipped with
    its reason; the others of the group still get their draws."""
    from types import SimpleNamespace

    from pyro_clusters.estimators.base import Estimator
    from pyro_clusters.realfield.inference import sample_posteriors

    class Fixed(Estimator):
        name = "fixed_test_outside"

        def _fit(self, splits):
            pass

        def sample(self, clusters, n, rng):
            centres = np.array([14.0, 17.0, 14.5])[np.asarray(clusters.clusters["i"])]
            return centres[:, None] + 0.05 * rng.standard_normal((len(clusters), n))

    cs = simulate_selected(3, FlatLogMassPrior(14.2, 14.4), SimulatorConfig(),
                           np.random.default_rng(0))[0]
    cs.clusters["i"] = np.arange(3)
    model = SimpleNamespace(trained_on={"prior_range": [13.5, 15.5]}, npe=Fixed())
    draws, leakage, failed = sample_posteriors(cs, np.full(3, 0.117), model, 200, "flat",
                                               np.random.default_rng(1))
    assert list(failed) == [1] and "entirely outside" in failed[1]
    assert np.isfinite(draws[[0, 2]]).all() and np.isnan(draws[1]).all()
    assert np.all((draws[[0, 2]] >= 13.5) & (draws[[0, 2]] <= 15.5))
