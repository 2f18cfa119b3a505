"""The estimator framework: one class + one register line is a new estimator everywhere."""

import json

import numpy as np
import pytest

from pyro_clusters.estimators import Estimator, Splits, registry
from pyro_clusters.estimators.base import config_from_dict
from pyro_clusters.estimators.msigma import MSigmaConfig, MSigmaEstimator
from pyro_clusters.estimators.reweighted import PriorReweighted
from pyro_clusters.simulator import HaloMassFunctionSampler


@registry.register
class ToyGaussian(Estimator):
    """N(mean, std) of the training masses for every cluster: knows nothing of the galaxies."""

    name = "toy_gaussian"

    def __init__(self, config=None):
        self.config = config
        self.mean = self.std = None

    def _fit(self, splits: Splits) -> None:
        self.mean = float(splits.train.log_m.mean())
        self.std = float(splits.train.log_m.std())

    def sample(self, clusters, n, rng):
        return self.mean + self.std * rng.standard_normal((len(clusters), n))

    def log_prob(self, clusters, grid):
        z = (np.asarray(grid)[None, :] - self.mean) / self.std
        return np.repeat(-0.5 * z * z - np.log(self.std * np.sqrt(2 * np.pi)), len(clusters), 0)

    def _state(self):
        return {"mean": self.mean, "std": self.std}

    def _restore(self, meta, path, device):
        self.mean, self.std = meta["mean"], meta["std"]


@pytest.fixture(scope="module")
def sets(simulated):
    return simulated("idealized", (400, 150, 60), seed=8)


def test_registry_builds_and_loads_by_name(sets, tmp_path):
    train, val, test = sets
    assert "toy_gaussian" in registry.names(Estimator)
    assert {"msigma", "npe_deepsets", "cnn_kde_slice", "mc_dropout", "nf_kde2d", "sbi_npe",
            "jeans_exact"} <= set(registry.names(Estimator))
    assert "deepsets_membership" in registry.names() and \
        "deepsets_membership" not in registry.names(Estimator)
    est = registry.build("toy_gaussian").fit(Splits(train, val))
    assert est.has_density and est.mean == pytest.approx(train.log_m.mean())
    est.save(tmp_path / "toy")
    assert json.loads((tmp_path / "toy" / "model.json").read_text())["estimator"] == \
        "toy_gaussian"
    back = registry.load(tmp_path / "toy")
    assert isinstance(back, ToyGaussian)
    np.testing.assert_array_equal(back.sample(test, 20, np.random.default_rng(1)),
                                  est.sample(test, 20, np.random.default_rng(1)))
    with pytest.raises(KeyError, match="no estimator named"):
        registry.build("nope")
    with pytest.raises(ValueError, match="registered already"):
        registry.register(type("Other", (ToyGaussian,), {"name": "toy_gaussian"}))
    with pytest.raises(ValueError, match="not a msigma model"):
        MSigmaEstimator.load(tmp_path / "toy")


def test_msigma_auto_cut_density_and_single_file_models_of_version_1(sets, tmp_path):
    train, val, test = sets
    auto = registry.build("msigma", MSigmaConfig(mass_cut="auto")).fit(train, val)
    assert auto.cut_scores["chosen"] in (13.5, 14.0, 14.5)
    with pytest.raises(ValueError, match="validation"):
        MSigmaEstimator(MSigmaConfig(mass_cut="auto")).fit(train)
    # the density is the one sample() draws from: normalised, same mean and width
    grid = np.linspace(8.0, 21.0, 26001)
    dens = np.exp(auto.log_prob(test, grid))
    assert np.trapezoid(dens, grid, axis=1) == pytest.approx(np.ones(len(test)), abs=1e-6)
    draws = auto.sample(test, 20000, np.random.default_rng(5))
    mean = np.trapezoid(dens * grid, grid, axis=1)
    np.testing.assert_allclose(mean, draws.mean(1), atol=0.01)
    sd = np.sqrt(np.trapezoid(dens * (grid - mean[:, None]) ** 2, grid, axis=1))
    np.testing.assert_allclose(sd, draws.std(1), rtol=0.03)
    # format 1 kept the M-sigma estimator in one JSON file without a format tag
    auto.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    legacy = {k: meta[k] for k in ("estimator", "config", "fit", "scatter_dex", "fallback")}
    (tmp_path / "msigma.json").write_text(json.dumps(legacy))
    old = registry.load(tmp_path / "msigma.json")
    np.testing.assert_array_equal(old.sample(test, 10, np.random.default_rng(2)),
                                  auto.sample(test, 10, np.random.default_rng(2)))


def test_prior_reweighted_saves_and_returns_its_ess(sets, tmp_path):
    train, val, test = sets
    base = registry.build("msigma").fit(train)
    hmf = PriorReweighted(base, HaloMassFunctionSampler(13.6, 15.4), name="msigma_hmf")
    res = hmf.sample_with_info(test, 200, np.random.default_rng(3))
    assert res.draws.shape == (len(test), 200) and res.info["ess"].shape == (len(test),)
    assert hmf.label == "msigma_hmf" and hmf.name == "prior_reweighted"
    hmf.save(tmp_path / "hmf")
    back = registry.load(tmp_path / "hmf")
    np.testing.assert_array_equal(back.sample(test, 50, np.random.default_rng(4)),
                                  hmf.sample(test, 50, np.random.default_rng(4)))
    with pytest.raises(ValueError, match="cannot be saved"):
        PriorReweighted(base, lambda t: np.ones_like(t)).save(tmp_path / "bad")


def test_config_from_dict_restores_tuples_and_nested_configs():
    from dataclasses import asdict

    from pyro_clusters.estimators.npe_deepsets import NPEConfig

    cfg = NPEConfig(flow_hidden=(8, 4), extra_features=("p_member",),
                    msigma=MSigmaConfig(mass_cut="auto"))
    assert config_from_dict(NPEConfig, json.loads(json.dumps(asdict(cfg)))) == cfg
    with pytest.raises(ValueError, match="no field"):
        config_from_dict(NPEConfig, {"widht": 3})


def test_a_new_estimator_runs_through_the_comparison(tmp_path):
    """One class + one register line: experiments.compare fits, samples, reports and reuses it."""
    from experiments import compare

    args = ["--size", "tiny", "--seed", "6", "--no-progress", "--estimators",
            "msigma,toy_gaussian"]
    assert compare.main(args + ["--out", str(tmp_path / "a")]) == 0
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["estimators"] == ["msigma", "toy_gaussian"]
    toy = metrics["toy_gaussian"]
    # it ignores the galaxies: one posterior, the flat training prior 13.5-15.5 (mean 14.5,
    # std 0.58), for a test set drawn from the steep halo mass function over 14.0-15.3
    assert toy["mean_posterior_std_dex"] == pytest.approx(0.58, abs=0.05)
    assert toy["bias_dex"] > 0.2 > abs(metrics["msigma"]["bias_dex"])
    assert (tmp_path / "a" / "models" / "toy_gaussian" / "model.json").is_file()
    assert compare.main(args + ["--out", str(tmp_path / "b"), "--reuse",
                                str(tmp_path / "a")]) == 0
    again = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert again["reused"] == ["msigma", "toy_gaussian"]
    assert again["toy_gaussian"]["scatter_dex"] == toy["scatter_dex"]
