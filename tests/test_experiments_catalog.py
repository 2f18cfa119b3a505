"""Every experiment runs end to end on catalogue mocks (``--data DIR``) at a tiny size."""

import json

import numpy as np
import pytest

from pyro_clusters.catalog.mocks import CatalogMockConfig, build_datasets
from pyro_clusters.catalog.schema import write_catalog
from pyro_clusters.catalog.synthetic import synthetic_catalog

pytestmark = pytest.mark.filterwarnings("ignore:a cylinder seen off the box axes")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """DIR/idealized and DIR/cylinder from one synthetic box, as a user would make them."""
    root = tmp_path_factory.mktemp("catalogue")
    path = write_catalog(root / "box.h5", synthetic_catalog(150.0, seed=11))
    for setup in ("idealized", "cylinder"):
        build_datasets(path, root / setup, CatalogMockConfig(setup=setup, density=1.5e-4,
                                                             seed=2), progress=False)
    return root


def _n_clusters(path):
    from pyro_clusters.data import ClusterDataset

    return len(ClusterDataset(path))


def test_idealized_on_catalogue(data, tmp_path):
    from experiments import idealized

    assert idealized.main(["--size", "tiny", "--out", str(tmp_path), "--seed", "1",
                           "--no-progress", "--data", str(data)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["n_train"] == min(300, _n_clusters(data / "idealized" / "train.h5"))
    assert metrics["n_test"] == min(200, _n_clusters(data / "idealized" / "test.h5"))
    assert np.isfinite(metrics["npe_deepsets"]["scatter_dex"])


@pytest.mark.integration
def test_cylinder_and_compare_on_catalogue(data, tmp_path):
    from experiments import compare, cylinder

    assert cylinder.main(["--size", "tiny", "--out", str(tmp_path / "cyl"), "--seed", "1",
                          "--no-progress", "--workers", "1", "--data", str(data)]) == 0
    metrics = json.loads((tmp_path / "cyl" / "metrics.json").read_text())
    assert metrics["interlopers"]["deepsets_classifier"]["auc_roc"] > 0.5
    assert compare.main(["--size", "tiny", "--out", str(tmp_path / "cmp"), "--seed", "1",
                         "--no-progress", "--setup", "cylinder", "--data", str(data),
                         "--estimators", "msigma,npe_deepsets,cnn_kde_slice"]) == 0
    metrics = json.loads((tmp_path / "cmp" / "metrics.json").read_text())
    assert metrics["n_calibration"] > 0 and "cnn_kde_slice" in metrics


def test_realism_report_on_catalogue(data, tmp_path):
    from experiments import realism

    assert realism.main(["--size", "tiny", "--out", str(tmp_path), "--data", str(data)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["data"] == str(data) and "clusters_per_second_cylinder" not in metrics
    assert 0.2 < metrics["msigma_pure_slope"] < 0.5  # the simulator's halo physics
    assert "Catalogue mocks" in (tmp_path / "report.md").read_text()


@pytest.mark.integration
def test_information_limit_on_catalogue(data, tmp_path):
    from experiments import information_limit

    assert information_limit.main(["--size", "tiny", "--out", str(tmp_path), "--seed", "3",
                                   "--no-progress", "--jobs", "1", "--data", str(data)]) == 0
    mis = json.loads((tmp_path / "metrics.json").read_text())["misspecified"]
    assert mis["data"] == str(data) and mis["n_clusters"] == 2
    assert "substructure" not in mis["by_subset"]  # no simulator truth in a catalogue


def test_wrong_setup_is_refused(data, tmp_path):
    from pyro_clusters.pipeline.sets import load_sets

    with pytest.raises(ValueError, match="holds the 'idealized' setup"):
        load_sets(data / "idealized", "cylinder", np.random.default_rng(0))
    with pytest.raises(FileNotFoundError, match="train.h5 is missing"):
        load_sets(tmp_path, "cylinder", np.random.default_rng(0))


def test_train_a_real_field_model_on_catalogue(data, tmp_path, capsys):
    """``python -m pyro_clusters train --data DIR``: the shipped-model recipe on N-body mocks."""
    from pyro_clusters.__main__ import main as cli
    from pyro_clusters.realfield.bundle import CylinderModel

    out = tmp_path / "bundle"
    assert cli(["train", "--data", str(data), "--size", "tiny", "--out", str(out),
                "--no-progress", "--z", "0.3"]) == 0  # --z is overridden by the data's
    assert "wrote" in capsys.readouterr().out
    model = CylinderModel.load(out)
    assert model.info["data"] == str(data)
    assert model.info["simulator"]["z"] == pytest.approx(0.117)
    assert model.info["n_train"] == min(300, _n_clusters(data / "cylinder" / "train.h5"))
    assert cli(["train", "--data", str(data / "idealized"), "--size", "tiny",
                "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    assert "holds the 'idealized' setup" in capsys.readouterr().err
