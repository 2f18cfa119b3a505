"""sbi's NPE with our set embedding (sbi_npe), npe_deepsets as an sbi density estimator, and
the set-size bug of sbi's PermutationInvariantEmbedding."""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from pyro_clusters.estimators.sbi_npe import (
    SbiNPE,
    SbiNPEConfig,
    clusters_to_x,
    npe_deepsets_builder,
)
from pyro_clusters.features import galaxy_features, set_features
from pyro_clusters.nets.set_embedding import DeepSetsEmbedding
from pyro_clusters.simulator import FlatLogMassPrior


@pytest.fixture(scope="module")
def sets(simulated):
    return simulated("idealized", (600, 150, 80), seed=31)


def test_torch_features_equal_numpy_features(sets):
    test = sets[2]
    gal, mask, glob = set_features(clusters_to_x(test))
    ref_gal, ref_glob = galaxy_features(test)
    np.testing.assert_allclose(gal[mask].numpy(), ref_gal, atol=2e-5)
    np.testing.assert_allclose(glob.numpy(), ref_glob, atol=2e-6)
    assert (gal[~mask] == 0).all()


def test_embedding_ignores_padding_and_order(sets):
    test = sets[2].select(np.arange(6))
    x = clusters_to_x(test)
    emb = DeepSetsEmbedding(x)
    wider = torch.cat([x, torch.zeros(6, 50, 4)], dim=1)
    perm = x[:, torch.randperm(x.shape[1])]
    torch.testing.assert_close(emb(x), emb(wider), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(emb(x), emb(perm), atol=1e-5, rtol=1e-5)


def test_sbi_permutation_invariant_embedding_miscounts_multi_feature_sets():
    """sbi's PermutationInvariantEmbedding gets the set sizes wrong with > 1 feature.

    It counts NaNs as ``isnan(x).sum(1).reshape(-1)[:B]``: the (B, F) count matrix is read
    row-major, so cluster b gets the count of cluster b // F (shared/STACK.md). Sets of 2, 5
    and 6 elements with 3 features are fed to its final network as sizes 2, 2, 2. If this
    test fails after an sbi upgrade the bug may be fixed; then revisit
    pyro_clusters/nets/set_embedding.py's note.
    """
    from sbi.neural_nets.embedding_nets import PermutationInvariantEmbedding

    sizes, n_max, feats = [2, 5, 6], 8, 3
    x = torch.full((3, n_max, feats), float("nan"))
    for b, n in enumerate(sizes):
        x[b, :n] = torch.randn(n, feats)
    emb = PermutationInvariantEmbedding(nn.Identity(), feats, aggregation_fn="mean")
    seen = {}
    emb.fc_subnet.register_forward_hook(lambda m, inp, out: seen.update(x=inp[0]))
    emb(x)
    counts = seen["x"][:, -1].tolist()
    assert counts != sizes
    assert counts == [2, 2, 2]


def test_sbi_npe_fit_sample_save_load(sets, tmp_path):
    train, val, test = sets
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sbi's "not converged" after 3 epochs
        est = SbiNPE(SbiNPEConfig(max_epochs=3, n_max=128)).fit(train, val)
    assert est.n_max == 128 and est.summary["epochs"] >= 1
    a = est.sample(test, 100, np.random.default_rng(2))
    assert a.shape == (len(test), 100)
    assert (a >= 13.5).all() and (a <= 15.5).all()  # DirectPosterior rejects outside the prior
    np.testing.assert_array_equal(a, est.sample(test, 100, np.random.default_rng(2)))
    est.save(tmp_path / "sbi")
    again = SbiNPE.load(tmp_path / "sbi")
    np.testing.assert_allclose(again.sample(test, 100, np.random.default_rng(2)), a, atol=1e-5)


def test_npe_deepsets_as_sbi_density_estimator(sets):
    """sbi trains our model through NPE(density_estimator=builder) and samples/evaluates it."""
    from sbi.inference import NPE

    train, _, test = sets
    x = clusters_to_x(train, 256, np.random.default_rng(0))
    theta = torch.from_numpy(train.log_m.astype(np.float32))[:, None]
    torch.manual_seed(0)
    inference = NPE(prior=FlatLogMassPrior().to_sbi(),
                    density_estimator=npe_deepsets_builder(z=0.117, mass_cut=13.5),
                    show_progress_bars=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator = inference.append_simulations(theta, x).train(max_num_epochs=8)
        posterior = inference.build_posterior(estimator)
        xt = clusters_to_x(test, 256, np.random.default_rng(0))
        draws = posterior.sample_batched((200,), x=xt, show_progress_bars=False)
    assert draws.shape == (200, len(test), 1)
    med = draws[..., 0].median(0).values.numpy()
    # the M-sigma residual parametrisation is informative from the start
    assert np.std(med - test.log_m) < 0.3
    grid = torch.linspace(13.5, 15.5, 801)[:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lp = posterior.log_prob(grid, x=xt[:1])
    mass = torch.trapezoid(lp.exp(), grid[:, 0]).item()
    assert 0.9 < mass < 1.1  # a normalised density over the prior range (leakage aside)
