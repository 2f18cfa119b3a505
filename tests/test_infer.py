"""Model bundles, the shipped default and ``python -m pyro_clusters infer`` end to end."""

import json

import numpy as np
import pytest

from pyro_clusters.__main__ import main as cli
from pyro_clusters.pipeline import train_bundle
from pyro_clusters.realfield.bundle import (
    AMORTISED_NPE_GLOBALS,
    CylinderModel,
    default_model_path,
)
from pyro_clusters.realfield.inference import infer_cluster, subsample_sets
from pyro_clusters.realfield.mismatch import mismatch_warnings
from pyro_clusters.realfield.redshift import member_velocity_offset, refine_redshift
from pyro_clusters.realfield.table import (
    ObservationError,
    cluster_to_table,
    observe_field,
    read_redshift_table,
    write_redshift_table,
)
from pyro_clusters.simulator import (
    FlatLogMassPrior,
    HaloMassFunctionSampler,
    SimulatorConfig,
    simulate_selected,
)

CENTER = (194.95, 27.98, 0.117)


@pytest.fixture(scope="module")
def default_model():
    return CylinderModel.load()


@pytest.fixture(scope="module")
def rich_cluster(tmp_path_factory):
    """A log M ~ 14.8 mock cluster written as a redshift table; (path, log_m, n_gal)."""
    rng = np.random.default_rng(3)
    cs = simulate_selected(1, FlatLogMassPrior(14.7, 14.9), SimulatorConfig(setup="cylinder"),
                           rng)[0]
    path = tmp_path_factory.mktemp("table") / "cluster.csv"
    write_redshift_table(path, *cluster_to_table(cs, 0, *CENTER))
    return path, float(cs.log_m[0]), int(cs.n_gal[0])


def _observe(path, model, center=CENTER):
    t = model.trained_on
    return observe_field(read_redshift_table(path), *center, t["aperture"], t["v_cut"])


def test_shipped_default_matches_default_setup(default_model):
    t, sim = default_model.trained_on, SimulatorConfig(setup="cylinder")
    assert default_model.path == default_model_path()
    assert (t["setup"], t["z"], t["aperture"], t["v_cut"]) == (
        "cylinder", sim.z, sim.observation.aperture, sim.observation.v_cut)
    assert default_model.info["size"] == "full"
    assert default_model.npe.config.extra_features == ("p_member",)
    assert default_model.msigma.config.galaxies == "p_member"


def test_shipped_amortised_model(rich_cluster, capsys):
    """``--model amortised``: the bundle over z 0.01-0.3 and depth 10^7.5-10^11, on 300 fresh
    flat-prior clusters at z = 0.25 in a shallow survey (10^10 h^-1 Msun), a setup the
    default model was not trained for. Measured: sigma_eps 0.311 dex, bias +0.029, 0.71 in
    the 68 % intervals (the validation cells at depth 10 gave 0.256-0.307); bounds
    sigma_eps < 0.36, |bias| < 0.06 (3 standard errors), 68 % intervals containing the truth
    in 0.58-0.78."""
    from pyro_clusters.simulator.depth import at_depth

    model = CylinderModel.load("amortised")
    t = model.trained_on
    assert t["amortised"] and t["z_range"] == [0.01, 0.3] and model.info["fresh"]
    assert model.npe.config.extra_globals == AMORTISED_NPE_GLOBALS
    rng = np.random.default_rng(12)
    cfg = SimulatorConfig(setup="cylinder", z=0.25)
    test = simulate_selected(300, FlatLogMassPrior(), at_depth(cfg, 10.0), rng)[0]
    draws = model.sample(test, 400, rng)  # z from the set's attrs
    eps = np.median(draws, axis=1) - test.log_m
    assert np.std(eps) < 0.36 and abs(np.mean(eps)) < 0.06
    lo, hi = np.percentile(draws, [16, 84], axis=1)
    assert 0.58 <= np.mean((test.log_m >= lo) & (test.log_m <= hi)) <= 0.78
    # the default model at z = 0.117 offers it when the redshift is far
    path, _, _ = rich_cluster
    default = CylinderModel.load()
    far = mismatch_warnings(_observe(path, default), {**default.trained_on, "z": 0.25})
    assert "--model amortised" in far[0]


def test_shipped_default_is_accurate_and_calibrated(default_model):
    """On 300 fresh HMF-distributed cylinder clusters (seed 11, not the training seed).

    Bounds: sigma_eps < 0.25 dex (the full cylinder run measured 0.19 for this model family,
    M-sigma 0.28); central 68 % intervals contain the truth in 0.58-0.78 of clusters (the
    flat-prior posterior on an HMF population is slightly miscalibrated by design; +-3
    binomial sigma is 0.08).
    """
    rng = np.random.default_rng(11)
    test = simulate_selected(300, HaloMassFunctionSampler(14.0, 15.3),
                             SimulatorConfig(setup="cylinder"), rng)[0]
    draws = default_model.sample(test, 400, rng)
    eps = np.median(draws, axis=1) - test.log_m
    assert np.std(eps) < 0.25
    lo, hi = np.percentile(draws, [16, 84], axis=1)
    inside = np.mean((test.log_m >= lo) & (test.log_m <= hi))
    assert 0.58 <= inside <= 0.78


def test_infer_cluster_recovers_mass(default_model, rich_cluster):
    path, log_m, n_gal = rich_cluster
    obs = _observe(path, default_model)
    assert obs.n_gal == n_gal
    post = infer_cluster(obs, default_model, n_draws=2000, seed=0)
    p = post.summary["log10_M200c_hinv_Msun"]
    assert p["p2.5"] < p["p16"] < p["median"] < p["p84"] < p["p97.5"]
    assert p["p2.5"] < log_m < p["p97.5"]
    assert post.draws.shape == (2000,) and post.p_member.shape == (n_gal,)
    assert post.warnings == []
    again = infer_cluster(obs, default_model, n_draws=2000, seed=0)
    np.testing.assert_array_equal(post.draws, again.draws)  # seeded
    hmf = infer_cluster(obs, default_model, n_draws=2000, seed=0, prior="hmf")
    # the HMF falls steeply: the HMF-prior posterior sits lower
    assert hmf.summary["log10_M200c_hinv_Msun"]["median"] < p["median"]


def test_cli_end_to_end(tmp_path, rich_cluster, capsys):
    import xarray as xr

    path, log_m, n_gal = rich_cluster
    out = tmp_path / "out"
    code = cli(["infer", "--table", str(path), "--ra", str(CENTER[0]), "--dec", str(CENTER[1]),
                "--z", str(CENTER[2]), "--out", str(out), "--draws", "1000"])
    assert code == 0
    text = capsys.readouterr().out
    assert "log10(M200c / h^-1 Msun)" in text and "x 10^14 h^-1 Msun" in text
    assert f"{n_gal} in the cylinder" in text
    s = json.loads((out / "summary.json").read_text())
    assert s["n_galaxies_in_cylinder"] == n_gal
    assert 0 < s["n_members_classifier"] <= n_gal
    assert s["M200c_1e14_hinv_Msun"]["median"] == pytest.approx(
        10 ** (s["log10_M200c_hinv_Msun"]["median"] - 14))
    tree = xr.open_datatree(out / "posterior.nc", engine="h5netcdf")
    assert tree["posterior"]["log10_M200c"].shape == (1, 1000)
    assert tree["observed_data"]["p_member"].shape == (n_gal,)
    gal = np.loadtxt(out / "galaxies.csv", delimiter=",", skiprows=1)
    assert gal.shape == (n_gal, 8)
    assert (out / "cluster.png").stat().st_size > 10_000


def test_cli_refuses_what_it_cannot_do(tmp_path, capsys):
    few = tmp_path / "few.csv"
    from pyro_clusters.cosmology import projected_to_sky

    write_redshift_table(few, *projected_to_sky(np.linspace(0.1, 1.0, 5), np.zeros(5),
                                                np.linspace(-500, 500, 5), *CENTER))
    args = ["--ra", str(CENTER[0]), "--dec", str(CENTER[1]), "--z", str(CENTER[2]),
            "--out", str(tmp_path / "o")]
    assert cli(["infer", "--table", str(few)] + args) == 2
    assert "only 5 galaxies" in capsys.readouterr().err
    assert cli(["infer", "--table", str(tmp_path / "missing.csv")] + args) == 2
    assert "no table" in capsys.readouterr().err
    assert cli(["infer", "--table", str(few), "--model", str(tmp_path)] + args) == 2
    assert "no model bundle" in capsys.readouterr().err
    assert cli(["infer", "--table", str(few), "--subsample", "many"] + args) == 2
    assert not (tmp_path / "o").exists()
    assert cli(["nonsense"]) == 2


def test_mismatch_warnings(default_model, rich_cluster, tmp_path):
    path, _, n_gal = rich_cluster
    obs = _observe(path, default_model)
    t = dict(default_model.trained_on)
    assert mismatch_warnings(obs, t) == []
    assert "training redshift" in mismatch_warnings(obs, {**t, "z": 0.023})[0]
    rich = {**t, "richness": {**t["richness"], "99": n_gal / 2}}
    assert "--subsample auto" in mismatch_warnings(obs, rich)[0]
    poor = {**t, "richness": {**t["richness"], "1": n_gal * 2}}
    assert "fewer than 99 %" in mismatch_warnings(obs, poor)[0]
    # a table cut at 0.8 h^-1 Mpc does not cover the aperture
    table = read_redshift_table(path)
    obs_all = observe_field(table, *CENTER, 1.6, 2200.0)
    inner = np.hypot(obs_all.clusters.galaxies["x_proj"], obs_all.clusters.galaxies["y_proj"])
    keep = inner < 0.8
    cut = tmp_path / "cut.csv"
    write_redshift_table(cut, obs_all.ra[keep], obs_all.dec[keep], obs_all.cz[keep])
    w = mismatch_warnings(_observe(cut, default_model), t)
    assert any("reaches only" in m for m in w)
    # a member list: only |v| < 1000 km/s
    members = np.abs(obs_all.clusters.galaxies["v_los"]) < 1000
    ml = tmp_path / "members.csv"
    write_redshift_table(ml, obs_all.ra[members], obs_all.dec[members], obs_all.cz[members])
    assert any("pre-selected member list" in m
               for m in mismatch_warnings(_observe(ml, default_model), t))


def test_subsampling(default_model, rich_cluster):
    path, _, n_gal = rich_cluster
    obs = _observe(path, default_model)
    sets, rows = subsample_sets(obs.clusters, 30, 5, np.random.default_rng(0))
    assert len(sets) == 5 and list(sets.n_gal) == [30] * 5
    for k in range(5):
        assert len(set(rows[k])) == 30
        np.testing.assert_array_equal(sets.galaxies_of(k)["v_los"],
                                      obs.clusters.galaxies["v_los"][rows[k]])
    post = infer_cluster(obs, default_model, n_draws=1000, subsample=40, n_subsamples=10)
    assert post.settings["subsample"] == 40 and post.draws.size == 1000
    full = infer_cluster(obs, default_model, n_draws=1000)
    # fewer galaxies per posterior: wider
    assert post.summary["log10_M200c_hinv_Msun"]["std"] > full.summary[
        "log10_M200c_hinv_Msun"]["std"]
    auto = infer_cluster(obs, default_model, n_draws=200, subsample="auto")
    assert auto.settings["subsample"] is None and "no subsampling" in auto.settings["notes"][0]
    with pytest.raises(ObservationError, match="--subsample must be"):
        infer_cluster(obs, default_model, subsample=n_gal + 1)


def test_train_bundle_save_load_round_trip(tmp_path):
    model = train_bundle(SimulatorConfig(setup="cylinder"), "tiny", seed=0, progress=False,
                         command="test")
    assert set(model.trained_on["richness"]) == {"1", "5", "50", "95", "99"}
    assert model.info["test_metrics"]["n_test"] == 100
    model.save(tmp_path / "bundle")
    loaded = CylinderModel.load(tmp_path / "bundle")
    rng = np.random.default_rng(5)
    test = simulate_selected(5, FlatLogMassPrior(), SimulatorConfig(setup="cylinder"), rng)[0]
    a = model.sample(test, 50, np.random.default_rng(1))
    b = loaded.sample(test, 50, np.random.default_rng(1))
    np.testing.assert_allclose(a, b, atol=1e-6)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "precious.txt").write_text("x")
    with pytest.raises(FileExistsError):
        model.save(tmp_path / "other")
    assert (tmp_path / "other" / "precious.txt").exists()
    with pytest.raises(ValueError, match="cylinder setup"):
        train_bundle(SimulatorConfig(setup="idealized"), "tiny")


def test_train_cli_rejects_bad_options(tmp_path, capsys):
    assert cli(["train", "--out", str(tmp_path / "b"), "--aperture", "-1"]) == 2
    assert "aperture" in capsys.readouterr().err


@pytest.fixture(scope="module")
def wide_cluster(tmp_path_factory):
    """A log M ~ 14.8 mock from a cylinder wider than the model's (2.0 h^-1 Mpc, 3000 km/s),
    so that a displaced redshift brings galaxies in as well as out; (path, log_m)."""
    import dataclasses

    cfg = SimulatorConfig(setup="cylinder")
    cfg = cfg.replace(observation=dataclasses.replace(cfg.observation, aperture=2.0,
                                                      v_cut=3000.0))
    cs = simulate_selected(1, FlatLogMassPrior(14.75, 14.85), cfg, np.random.default_rng(5))[0]
    path = tmp_path_factory.mktemp("wide") / "cluster.csv"
    write_redshift_table(path, *cluster_to_table(cs, 0, *CENTER))
    return path, float(cs.log_m[0])


def test_redshift_offset_is_warned_and_refined(default_model, wide_cluster, tmp_path, capsys):
    """A redshift 500 km/s off: the posterior lower and a warning; refining finds the same
    redshift from either start and puts the posterior back where it was."""
    from pyro_clusters.cosmology import C_KMS

    path, _ = wide_cluster
    table = read_redshift_table(path)
    ra, dec, z = CENTER
    z_off = z + (1 + z) * 500.0 / C_KMS
    a = refine_redshift(table, ra, dec, z, default_model)
    b = refine_redshift(table, ra, dec, z_off, default_model)
    assert a.converged and b.converged and b.iterations > a.iterations
    assert abs(C_KMS * (a.z - b.z) / (1 + z)) < 10.0  # one fixed point
    assert b.shift_kms == pytest.approx(-500.0, abs=3 * b.error_kms)
    assert abs(a.shift_kms) < 3 * a.error_kms

    def cut(zc):
        return observe_field(table, ra, dec, zc, 1.6, 2200.0)

    right = infer_cluster(cut(z), default_model, 2000, seed=0, refined=a)
    off = infer_cluster(cut(z_off), default_model, 2000, seed=0, refined=b)
    assert not any("centred at" in w for w in right.warnings)
    assert any("centred at" in w and "--refine-z" in w for w in off.warnings)
    assert off.settings["redshift_check"]["shift_kms"] == b.shift_kms
    # the one-step estimate sees the offset too, but only part of it
    v1, err1 = member_velocity_offset(default_model.annotate(cut(z_off).clusters))
    assert -500.0 < v1[0] < -100.0 and 0 < err1[0] < 150.0
    med = [p.summary["log10_M200c_hinv_Msun"]["median"] for p in (right, off)]
    assert med[1] < med[0] - 0.05  # an off-centre velocity distribution lowers the mass
    fixed = infer_cluster(cut(b.z), default_model, 2000, seed=0, refined=b)
    assert abs(fixed.summary["log10_M200c_hinv_Msun"]["median"] - med[0]) < 0.05
    assert "--refine-z" in fixed.settings["notes"][0] and not fixed.warnings
    assert fixed.settings["refined_redshift"]["z"] == b.z

    out = tmp_path / "refined"
    assert cli(["infer", "--table", str(path), "--ra", str(ra), "--dec", str(dec), "--z",
                str(z_off), "--refine-z", "--out", str(out), "--draws", "500"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["settings"]["refined_redshift"]["z"] == pytest.approx(b.z, abs=1e-6)
    assert s["center"]["z"] == pytest.approx(b.z, abs=1e-6)
    assert "--refine-z" in capsys.readouterr().out


@pytest.mark.parametrize("where", ["file", "under_file"])
def test_infer_checks_the_output_before_any_work(tmp_path, capsys, where):
    (tmp_path / "f").write_text("")
    out = tmp_path / "f" if where == "file" else tmp_path / "f" / "sub"
    table = tmp_path / "missing.csv"  # never read: the output is checked first
    assert cli(["infer", "--table", str(table), "--ra", "10", "--dec", "10", "--z", "0.1",
                "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "file" in err[0] and "missing.csv" not in err[0]


def test_infer_rejects_a_centre_off_the_sky_and_names_the_shipped_models(tmp_path, capsys):
    table = tmp_path / "missing.csv"
    assert cli(["infer", "--table", str(table), "--ra", "554.9", "--dec", "10", "--z", "0.1",
                "--out", str(tmp_path / "o")]) == 2
    assert "right ascension 554.9" in capsys.readouterr().err
    assert cli(["infer", "--table", str(table), "--ra", "10", "--dec", "10", "--z", "0.1",
                "--model", "amortized", "--out", str(tmp_path / "o")]) == 2
    assert "'default', 'amortised'" in capsys.readouterr().err


def test_a_field_in_radians_is_named_a_unit_error(default_model, tmp_path):
    """Table and centre both in radians: every galaxy within a few arcsec of the centre."""
    rng = np.random.default_rng(3)
    cs = simulate_selected(1, FlatLogMassPrior(14.7, 14.9), SimulatorConfig(setup="cylinder"),
                           rng)[0]
    ra, dec, cz = cluster_to_table(cs, 0, *CENTER)
    path = write_redshift_table(tmp_path / "rad.csv", np.deg2rad(ra), np.deg2rad(dec), cz)
    table = read_redshift_table(path)
    t = default_model.trained_on
    with pytest.raises(ObservationError, match="unit error"):
        observe_field(table, np.deg2rad(CENTER[0]), np.deg2rad(CENTER[1]), CENTER[2],
                      t["aperture"], t["v_cut"])
    assert observe_field(read_redshift_table(write_redshift_table(
        tmp_path / "deg.csv", ra, dec, cz)), *CENTER, t["aperture"], t["v_cut"]).n_gal > 10


def test_infer_names_the_model_it_used(tmp_path, capsys):
    rng = np.random.default_rng(4)
    cs = simulate_selected(1, FlatLogMassPrior(14.7, 14.9), SimulatorConfig(setup="cylinder"),
                           rng)[0]
    path = write_redshift_table(tmp_path / "t.csv", *cluster_to_table(cs, 0, *CENTER))
    assert cli(["infer", "--table", str(path), "--ra", str(CENTER[0]), "--dec",
                str(CENTER[1]), "--z", str(CENTER[2]), "--draws", "200",
                "--out", str(tmp_path / "o")]) == 0
    assert "  model: default (trained at z = 0.117" in capsys.readouterr().out
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["model"]["name"] == "default"
