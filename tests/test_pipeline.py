"""The training-and-evaluation layer: sizes in one table, the batch size honoured, the recipe."""

import numpy as np
import pytest

from pyro_clusters.pipeline import SIZES, RunSize, run_size, train_cylinder
from pyro_clusters.pipeline.sets import fresh_clusters
from pyro_clusters.simulator import FlatLogMassPrior, SimulatorConfig, simulate_selected


@pytest.fixture(scope="module")
def cylinder_sets():
    rng = np.random.default_rng(5)
    config = SimulatorConfig(setup="cylinder")
    return (simulate_selected(64, FlatLogMassPrior(), config, rng)[0],
            simulate_selected(24, FlatLogMassPrior(), config, rng)[0])


def _spy_batches(monkeypatch):
    """Record the clusters of every training batch that reaches a loss (and the optimiser)."""
    from pyro_clusters.estimators import neural

    seen: dict[str, list[int]] = {}
    real = neural.train_model

    def spy(model, loss_fn, epoch, val_batches, cfg, **kw):
        name = type(model).__name__
        sizes = seen.setdefault(name, [])

        def loss(m, b):
            if m.training:
                sizes.append(int(b.mask.shape[0]))
            return loss_fn(m, b)

        return real(model, loss, epoch, val_batches, cfg, **kw)

    monkeypatch.setattr(neural, "train_model", spy)
    return seen


@pytest.mark.parametrize("batch_size, expected", [(8, 8), (None, 32)])
def test_a_sizes_batch_size_reaches_the_optimiser(cylinder_sets, monkeypatch, batch_size,
                                                  expected):
    """Both networks of the cylinder recipe train in batches of the size's batch size (None:
    the set networks' own 32); 64 training clusters -> full batches of exactly that size."""
    seen = _spy_batches(monkeypatch)
    size = RunSize(64, 24, 0, max_epochs=1, patience=1, batch_size=batch_size)
    fit = train_cylinder(*cylinder_sets, size.train_config(progress=False), 0.117)
    assert len(seen) == 2  # the classifier's network and the NPE's
    for sizes in seen.values():
        assert max(sizes) == expected and sum(sizes) == 64
    assert fit.classifier.config.train.batch_size == expected
    assert fit.npe.config.train.batch_size == expected


def test_train_cylinder_annotates_every_set_and_fits_the_baseline_on_members(cylinder_sets):
    train, val = cylinder_sets
    fit = train_cylinder(train, val, RunSize(64, 24, 0, max_epochs=1, patience=1)
                         .train_config(progress=False), 0.117, others=(val.select([0, 1]),))
    assert len(fit.annotated) == 3 and all("p_member" in s.galaxies for s in fit.annotated)
    assert fit.msigma.config.galaxies == "p_member"
    assert fit.mass_cut["chosen"] == fit.msigma.config.mass_cut
    assert fit.npe.config.extra_features == ("p_member",)
    assert fit.npe.baseline.config.mass_cut == fit.msigma.config.mass_cut


def test_every_run_size_is_in_one_table_and_bad_names_raise():
    assert {"bundle", "idealized", "cylinder", "compare", "ablation", "amortised",
            "information_limit", "realism"} == set(SIZES)
    assert run_size("bundle", "gpu").batch_size == 64
    assert run_size("cylinder", "quick", max_seconds=5.0).max_seconds == 5.0
    with pytest.raises(ValueError, match="size must be one of"):
        run_size("bundle", "huge")
    with pytest.raises(ValueError, match="no run"):
        run_size("nope", "tiny")


def test_fresh_clusters_with_catalogue_data_raise_not_exit(tmp_path):
    with pytest.raises(ValueError, match="--fresh"):
        fresh_clusters(SimulatorConfig(), 10, data=tmp_path)
