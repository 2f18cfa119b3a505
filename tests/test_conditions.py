"""Training clusters over observing conditions, and networks given global inputs."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from pyro_clusters.estimators import registry
from pyro_clusters.estimators.msigma import MSigmaConfig
from pyro_clusters.estimators.npe_deepsets import NPEConfig
from pyro_clusters.features.galaxies import (
    background_density,
    global_columns,
    membership_counts,
)
from pyro_clusters.simulator import FlatLogMassPrior, SimulatorConfig, simulate_selected
from pyro_clusters.simulator.conditions import ObservingConditions, simulate_conditions
from pyro_clusters.simulator.depth import DEPTH_LIMITS
from pyro_clusters.training import TrainConfig


@pytest.fixture(scope="module")
def varied():
    rng = np.random.default_rng(0)
    base = SimulatorConfig(setup="cylinder")
    cond = ObservingConditions(chunk=16)
    return (simulate_conditions(800, FlatLogMassPrior(), base, cond, rng),
            simulate_conditions(200, FlatLogMassPrior(), base, cond, rng))


def test_conditions_are_drawn_recorded_and_seeded(varied):
    train, _ = varied
    z, depth = train.clusters["z"], train.clusters["log_mstar_min"]
    assert z.min() >= 0.01 and z.max() <= 0.3 and np.unique(z).size == 800 // 16
    assert depth.min() >= DEPTH_LIMITS[0] and depth.max() <= DEPTH_LIMITS[1]
    assert depth.min() < 8.0 and depth.max() > 10.5  # the margins beyond the validated range
    assert train.clusters["velocity_error_kms"].max() <= 100.0
    # deeper surveys: more galaxies at fixed mass, and a denser background
    resid = np.log(train.n_gal) - np.polyval(np.polyfit(train.log_m, np.log(train.n_gal), 1),
                                             train.log_m)
    assert np.corrcoef(depth, resid)[0, 1] < -0.6
    assert np.corrcoef(depth, background_density(train))[0, 1] < -0.5
    again = simulate_conditions(50, FlatLogMassPrior(), SimulatorConfig(setup="cylinder"),
                                ObservingConditions(chunk=16), np.random.default_rng(0))
    np.testing.assert_array_equal(again.galaxies["v_los"][:100], train.galaxies["v_los"][:100])
    # the same clusters from two processes
    parallel = simulate_conditions(50, FlatLogMassPrior(), SimulatorConfig(setup="cylinder"),
                                   ObservingConditions(chunk=16), np.random.default_rng(0),
                                   workers=2)
    for column in ("v_los", "x_proj", "member"):
        np.testing.assert_array_equal(parallel.galaxies[column], again.galaxies[column])
    np.testing.assert_array_equal(parallel.clusters["log_mstar_min"],
                                  again.clusters["log_mstar_min"])
    with pytest.raises(ValueError, match="z_range"):
        ObservingConditions(z_range=(0.0, 0.3))
    with pytest.raises(ValueError, match="log_mstar_range"):
        ObservingConditions(log_mstar_range=(7.0, 10.0))


def test_membership_counts_measure_depth(varied):
    """Sum p and sum (1 - p) over each cylinder; with the true membership as p the interloper
    count tracks the depth much more tightly than the background corner does."""
    train, _ = varied
    with pytest.raises(ValueError, match="p_member"):
        membership_counts(train)
    g = dict(train.galaxies)
    g["p_member"] = g["member"].astype(np.float32)
    cs = type(train)(train.clusters, g, train.offsets, train.attrs)
    log_mem, log_int = membership_counts(cs)
    idx = cs.cluster_index()
    np.testing.assert_allclose(10**log_mem - 0.5, np.bincount(idx, g["member"]), atol=1e-9)
    np.testing.assert_allclose(10**log_mem + 10**log_int - 1.0, cs.n_gal, rtol=1e-12)
    depth, z = cs.clusters["log_mstar_min"], cs.clusters["z"]
    # at fixed redshift dependence removed: residual correlation with the depth
    for x, bound in ((log_int, -0.8), (background_density(cs), -0.4)):
        resid = x - np.polyval(np.polyfit(z, x, 2), z)
        assert np.corrcoef(depth, resid)[0, 1] < bound
    got = global_columns(cs, ("log_n_members", "log_n_interlopers"))
    np.testing.assert_array_equal(got["log_n_interlopers"], log_int)


def test_low_redshift_cylinders_exist():
    """At z = 0.01 the environment in front of the cluster would reach the observer; it is
    cut there instead of failing."""
    cs = simulate_selected(100, FlatLogMassPrior(), SimulatorConfig(setup="cylinder", z=0.01),
                           np.random.default_rng(1))[0]
    assert len(cs) == 100 and np.abs(cs.galaxies["v_los"]).max() <= 2200.0


def test_networks_take_global_inputs(varied, tmp_path):
    train, val = varied
    cls = registry.get("npe_deepsets")
    cfg = cls.configure(TrainConfig(max_epochs=1, patience=1, progress=False),
                        MSigmaConfig(z=0.117))
    cfg = dataclasses.replace(cfg, extra_globals=("z", "log_background", "log_n_gal"))
    npe = registry.build("npe_deepsets", cfg).fit(train, val)
    assert npe.features.global_ == ["ellipticity", "z", "log_background", "log_n_gal"]
    npe.save(tmp_path / "npe")
    back = registry.load(tmp_path / "npe")
    a = npe.sample(val.select(np.arange(4)), 50, np.random.default_rng(2))
    b = back.sample(val.select(np.arange(4)), 50, np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="neither a cluster column"):
        global_columns(val, ("depth_typed_by_user",))
    # a set at one redshift without a z column: the attrs' z for every cluster
    one_z = simulate_selected(5, FlatLogMassPrior(), SimulatorConfig(setup="cylinder", z=0.2),
                              np.random.default_rng(3))[0]
    assert "z" not in one_z.clusters
    np.testing.assert_array_equal(global_columns(one_z, ("z",))["z"], np.full(5, 0.2))
    with pytest.raises(ValueError, match="neither a cluster column"):
        global_columns(one_z, ("setup",))  # a string attribute is no input


@pytest.mark.integration
def test_amortised_bundle_trains_on_fresh_clusters(tmp_path):
    from pyro_clusters.pipeline import train_bundle
    from pyro_clusters.realfield.bundle import CylinderModel

    model = train_bundle(SimulatorConfig(setup="cylinder"), "tiny", seed=2, progress=False,
                         conditions=ObservingConditions(chunk=100), fresh=True)
    assert model.info["fresh"] and model.trained_on["amortised"]
    assert model.npe.result.epochs == 2 and model.classifier.result.epochs == 2
    # the histogram encoder where the depth varies and is measured; count-blind Deep Sets else
    assert (model.npe.config.encoder, model.npe.config.hidden) == ("histogram", 128)
    assert NPEConfig().encoder == "deepsets"
    model.save(tmp_path / "m")
    assert CylinderModel.load(tmp_path / "m").trained_on["z_range"] == [0.01, 0.3]
    # a bundle's classifier reused: only the M-sigma baseline and the NPE are trained
    again = train_bundle(SimulatorConfig(setup="cylinder"), "tiny", seed=2, progress=False,
                         conditions=ObservingConditions(chunk=100), fresh=True,
                         classifier=model.classifier)
    assert again.classifier is model.classifier and again.info["classifier"] == "given"
    assert model.info["classifier"] == "trained"
    # same clusters, same classifier, same seed: the same NPE
    for (k, a), (_, b) in zip(model.npe.model.state_dict().items(),
                              again.npe.model.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, msg=k)
    # a loaded classifier saved again keeps the record of its training
    loaded = CylinderModel.load(tmp_path / "m")
    loaded.save(tmp_path / "m2")
    record = [json.loads((tmp_path / d / "classifier" / "model.json").read_text())["training"]
              for d in ("m", "m2")]
    assert record[0] is not None and record[0] == record[1]
    with pytest.raises(ValueError, match="global inputs"):
        train_bundle(SimulatorConfig(setup="cylinder"), "tiny", progress=False,
                     classifier=model.classifier)
    with pytest.raises(ValueError, match="from the simulator"):
        train_bundle(SimulatorConfig(setup="cylinder"), "tiny", progress=False,
                     data=tmp_path, fresh=True)
