"""Features, the Deep Sets encoder, the training loop and the Deep Sets NPE."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from pyro_clusters.data.clusters import ClusterSet
from pyro_clusters.estimators import NPEConfig, NPEDeepSets, PriorReweighted, resample_weighted
from pyro_clusters.features import FeatureSpec, ellipse_fit, galaxy_features, make_batches
from pyro_clusters.nets import DeepSetsEncoder
from pyro_clusters.nets.histogram import HistogramSetEncoder, SoftHistogram
from pyro_clusters.training import TrainConfig, train_model


def ellipse_cluster(angle_deg=30.0, ratio=0.5, n=4000, seed=0):
    rng = np.random.default_rng(seed)
    a = np.deg2rad(angle_deg)
    u = rng.standard_normal((n, 2)) * np.array([1.0, ratio])
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    xy = u @ rot.T
    gal = {"x_proj": xy[:, 0].astype(np.float32), "y_proj": xy[:, 1].astype(np.float32),
           "v_los": rng.normal(0, 500, n).astype(np.float32)}
    return ClusterSet({"log_m": np.array([14.5])}, gal, np.array([0, n]))


def test_ellipse_fit_recovers_angle_and_axis_ratio():
    angle, ell = ellipse_fit(ellipse_cluster(30.0, 0.5))
    assert np.rad2deg(angle[0]) == pytest.approx(30.0, abs=2.0)
    assert ell[0] == pytest.approx(0.5, abs=0.03)


def test_folded_angle_and_feature_layout():
    cs = ellipse_cluster(-60.0, 0.6, n=500)
    gal, glob = galaxy_features(cs)
    assert gal.shape == (500, 3) and glob.shape == (1, 1)
    assert gal[:, 2].min() >= 0 and gal[:, 2].max() <= 1  # psi / (pi/2)
    # galaxies along the major axis have psi ~ 0, along the minor axis ~ 1
    a = np.deg2rad(-60.0)
    along = ClusterSet(cs.clusters, {"x_proj": np.float32([np.cos(a), 2 * np.cos(a)] + list(
        cs.galaxies["x_proj"])), "y_proj": np.float32([np.sin(a), 2 * np.sin(a)] + list(
        cs.galaxies["y_proj"])), "v_los": np.zeros(502, np.float32)}, np.array([0, 502]))
    assert galaxy_features(along)[0][:2, 2] == pytest.approx([0, 0], abs=0.05)
    spec = FeatureSpec.fit(cs)
    with pytest.raises(ValueError, match="feature layout"):
        spec.transform(cs, extra={"p_member": np.ones(500)})


def test_batches_group_by_size_and_cover_every_cluster():
    n_gal = np.random.default_rng(0).integers(10, 500, 1000)
    batches = make_batches(n_gal, 64, np.random.default_rng(1))
    assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(1000))
    spread = np.mean([np.ptp(n_gal[b]) for b in batches])
    assert spread < 0.1 * np.ptp(n_gal)


def test_evaluation_batches_respect_a_padded_galaxy_budget():
    """A heavy tail of rich clusters must not pad a 512-cluster batch to its largest set."""
    n_gal = np.concatenate([np.full(990, 50), np.full(10, 4000)])
    plain = make_batches(n_gal, 512)
    assert max(len(b) * n_gal[b].max() for b in plain) == 488 * 4000
    budget = make_batches(n_gal, 512, max_padded=2**15)
    assert np.array_equal(np.concatenate(budget), np.concatenate(plain))  # same order
    assert all(len(b) * n_gal[b].max() <= 2**15 for b in budget if len(b) > 1)
    assert max(len(b) for b in budget) == 512  # the small clusters still fill whole batches
    assert [len(b) for b in make_batches(np.array([5, 70000]), 8, max_padded=100)] == [1, 1]


@pytest.fixture(scope="module", params=["deepsets", "units", "histogram", "histogram_units"])
def encoder(request):
    """Every set encoder keeps the Deep Set's promises (permutation, padding, richness)."""
    torch.manual_seed(0)
    units = request.param.endswith("units")
    if request.param.startswith("histogram"):
        return HistogramSetEncoder(3, 1, hidden=16, context=8, blocks=2, bins=8, channels=4,
                                   units=units).eval()
    return DeepSetsEncoder(3, 1, hidden=16, context=8, blocks=3, units=units).eval()


def test_deepsets_permutation_invariance(encoder):
    x, g = torch.randn(2, 30, 3), torch.randn(2, 1)
    mask = torch.ones(2, 30, dtype=torch.bool)
    perm = torch.randperm(30)
    c1, h1 = encoder(x, mask, g)
    c2, h2 = encoder(x[:, perm], mask, g)
    torch.testing.assert_close(c1, c2, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h1[:, perm], h2, rtol=1e-5, atol=1e-6)


def test_deepsets_padding_changes_nothing(encoder):
    x, g = torch.randn(1, 20, 3), torch.randn(1, 1)
    c1, _ = encoder(x, torch.ones(1, 20, dtype=torch.bool), g)
    padded = torch.cat([x, 1e3 * torch.randn(1, 50, 3)], dim=1)  # garbage in the padding
    mask = torch.cat([torch.ones(1, 20), torch.zeros(1, 50)], dim=1).bool()
    c2, h2 = encoder(padded, mask, g)
    torch.testing.assert_close(c1, c2, rtol=1e-5, atol=1e-6)
    assert torch.all(h2[0, 20:] == 0)
    # mean pooling: duplicating every galaxy (richness x2) leaves the context unchanged
    c3, _ = encoder(torch.cat([x, x], 1), torch.ones(1, 40, dtype=torch.bool), g)
    torch.testing.assert_close(c1, c3, rtol=1e-5, atol=1e-6)


def test_deepsets_gradients_reach_every_parameter(encoder):
    torch.manual_seed(1)
    enc = type(encoder)(3, 1, hidden=8, context=4, blocks=2, units=encoder.deepsets.units
                        if isinstance(encoder, HistogramSetEncoder) else encoder.units)
    c, h = enc(torch.randn(3, 10, 3), torch.ones(3, 10, dtype=torch.bool), torch.randn(3, 1))
    (c.sum() + h.sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())


def test_deepsets_context_term_computed_once_per_cluster_equals_the_concatenation():
    """The first layer of each block adds the context per cluster, not per galaxy."""
    torch.manual_seed(3)
    enc = DeepSetsEncoder(3, 2, hidden=16, context=8, blocks=2).eval()
    x, g = torch.randn(4, 25, 3), torch.randn(4, 2)
    mask = torch.rand(4, 25) < 0.8
    m = mask.unsqueeze(-1).float()
    c, h = enc.c0(g), x * m
    for phi, rho in zip(enc.phi, enc.rho, strict=True):  # the textbook form, concatenated
        h = phi(torch.cat([h, c.unsqueeze(1).expand(-1, h.shape[1], -1)], -1)) * m
        c = rho(torch.cat([h.sum(1) / m.sum(1).clamp_min(1.0), c], -1))
    c_fast, h_fast = enc(x, mask, g)
    torch.testing.assert_close(c_fast, c, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h_fast, h, rtol=1e-5, atol=1e-6)


def test_soft_histogram_is_a_normalised_density_of_the_galaxies():
    """With narrow kernels the soft histogram is the ordinary 2D histogram / (n dx dy)."""
    ranges = torch.tensor([[[0.0, 1.0], [0.0, 1.0]]])
    hist = SoftHistogram(bins=11, channels=1, ranges=ranges)
    with torch.no_grad():
        hist.log_width.fill_(np.log(1e-3))
    pts = torch.tensor([[0.1, 0.2], [0.1, 0.2], [0.5, 0.9], [0.8, 0.0]])[None, None]
    img = hist(pts, torch.ones(1, 4, dtype=torch.bool))[0, 0]
    # each galaxy contributes 1/n at its grid node (kernel peak 1/(2 pi w^2) on the node)
    peak = 1 / (2 * np.pi * 1e-6)
    expect = torch.zeros(11, 11)
    expect[1, 2], expect[5, 9], expect[8, 0] = 2 / 4, 1 / 4, 1 / 4
    torch.testing.assert_close(img / peak, expect, atol=1e-3, rtol=1e-3)


def test_soft_histogram_is_the_kernel_sum_of_its_formula_with_its_gradients():
    """H[j, k] = (1/n) sum_i N(r_i; a_j, w_r) N(v_i; b_k, w_v) over real galaxies, grads too."""
    torch.manual_seed(0)
    hist = SoftHistogram(bins=9, channels=2).double()
    with torch.no_grad():
        hist.log_width.copy_(torch.log(torch.tensor([[0.4, 0.9], [1.3, 0.6]])))
    coords = torch.randn(3, 2, 7, 2, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [1] + [0] * 6], dtype=torch.bool)
    img = hist(coords, mask)

    w = torch.exp(hist.log_width)  # the textbook form, galaxy by galaxy
    ref = []
    for b in range(3):
        x = coords[b][:, mask[b]]  # (C, n, 2)
        gauss = [torch.exp(-0.5 * ((x[..., a, None] - hist.grid[:, None, a]) / w[:, None, a, None])
                           ** 2) / (w[:, None, a, None] * np.sqrt(2 * np.pi)) for a in (0, 1)]
        ref.append(torch.einsum("cnj,cnk->cjk", *gauss) / x.shape[1])
    ref = torch.stack(ref)
    torch.testing.assert_close(img, ref)
    weights = torch.randn_like(img)
    got = torch.autograd.grad((img * weights).sum(), [coords, hist.log_width])
    want = torch.autograd.grad((ref * weights).sum(), [coords, hist.log_width])
    for g, r in zip(got, want, strict=True):
        torch.testing.assert_close(g, r)


@pytest.fixture(scope="module")
def small_sets(simulated):
    # a narrow mass range and small sets keep the test fast
    return simulated("idealized", (300, 80, 40), seed=3, mass_range=(14.0, 15.0))


def tiny_config(**train):
    t = dict(batch_size=32, max_epochs=2, patience=2, progress=False, seed=1) | train
    return NPEConfig(hidden=16, context=8, blocks=2, flow_hidden=(16,), histogram_bins=8,
                     train=TrainConfig(**t))


@pytest.fixture(scope="module")
def fitted(small_sets):
    train, val, _ = small_sets
    return NPEDeepSets(tiny_config()).fit(train, val)


def test_npe_samples_and_log_prob_agree(fitted, small_sets):
    test = small_sets[2]
    draws = fitted.sample(test, 2000, np.random.default_rng(0))
    assert draws.shape == (len(test), 2000) and np.isfinite(draws).all()
    grid = np.linspace(12.0, 17.0, 2001)
    dens = np.exp(fitted.log_prob(test, grid))
    norm = np.trapezoid(dens, grid, axis=1)
    np.testing.assert_allclose(norm, 1.0, atol=2e-3)  # a density in log10 M
    mean_grid = np.trapezoid(dens * grid, grid, axis=1)
    np.testing.assert_allclose(draws.mean(axis=1), mean_grid, atol=0.02)


def test_npe_save_load_gives_the_same_seeded_samples(fitted, small_sets, tmp_path):
    test = small_sets[2]
    fitted.save(tmp_path / "m")
    again = NPEDeepSets.load(tmp_path / "m")
    np.testing.assert_array_equal(again.sample(test, 50, np.random.default_rng(9)),
                                  fitted.sample(test, 50, np.random.default_rng(9)))
    assert again.trained_on["setup"] == "idealized"


def test_npe_refuses_other_setup_and_buffers_follow_the_module(fitted, small_sets):
    test = small_sets[2]
    other = ClusterSet(test.clusters, test.galaxies, test.offsets,
                       dict(test.attrs, setup="cylinder"))
    with pytest.raises(ValueError, match="idealized"):
        fitted.sample(other, 10, np.random.default_rng(0))
    names = {n for n, _ in fitted.model.named_buffers()}
    assert {"flow.base_loc", "flow.base_scale"} <= names  # .to(device) moves them (pyro issue 2761)


def test_training_is_deterministic_and_resume_continues_exactly(small_sets, tmp_path):
    train, val, _ = small_sets
    a = NPEDeepSets(tiny_config(max_epochs=3, patience=5)).fit(train, val)
    b = NPEDeepSets(tiny_config(max_epochs=2, patience=5)).fit(
        train, val, checkpoint=tmp_path / "ck.pt")
    b = NPEDeepSets(tiny_config(max_epochs=3, patience=5)).fit(
        train, val, checkpoint=tmp_path / "ck.pt", resume=True)
    assert b.result.epochs == 3
    for (k, va), (_, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items(),
                                strict=True):
        torch.testing.assert_close(va, vb, msg=k)


def test_non_finite_losses_stop_training_with_a_clear_error():
    model = torch.nn.Linear(2, 1)

    def nan_loss(m, batch):
        return m(batch).sum() * float("nan")

    cfg = TrainConfig(max_epochs=3, progress=False, max_bad_steps=3)
    with pytest.raises(FloatingPointError, match="non-finite"):
        train_model(model, nan_loss, lambda rng: [torch.ones(4, 2)] * 5, [torch.ones(4, 2)], cfg)


def test_early_stopping_restores_the_best_weights():
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.constant_(model.weight, 0.0)
    vals = iter([3.0, 1.0, 2.0, 2.5, 2.7, 2.9])

    def loss(m, batch):
        if batch == "val":
            return torch.tensor(next(vals))
        return (m(torch.ones(1, 1)) - 5.0).pow(2).sum()

    res = train_model(model, loss, lambda rng: ["train"], ["val"],
                      TrainConfig(max_epochs=6, patience=3, progress=False, lr=0.1))
    assert res.best_epoch == 1 and res.stopped_early and res.epochs == 5


def test_validation_loss_is_the_mean_over_the_set_not_over_batches():
    # two validation batches: 1 cluster with loss 4, 3 clusters with loss 0 each
    losses = {"rich": torch.tensor(4.0), "poor": torch.tensor(0.0)}

    def loss(m, batch):
        if batch in losses:
            return losses[batch]
        return (m(torch.ones(1, 1)) - 5.0).pow(2).sum()

    cfg = TrainConfig(max_epochs=1, progress=False)
    res = train_model(torch.nn.Linear(1, 1), loss, lambda rng: ["train"], ["rich", "poor"],
                      cfg, val_weights=[1, 3])
    assert res.history[0]["val_loss"] == pytest.approx(1.0)  # (4 + 3 x 0) / 4
    res = train_model(torch.nn.Linear(1, 1), loss, lambda rng: ["train"], ["rich", "poor"],
                      cfg)
    assert res.history[0]["val_loss"] == pytest.approx(2.0)  # unweighted: batches equal


def test_estimator_validation_loss_weighs_budget_packed_batches_by_their_clusters(small_sets):
    train, val, _ = small_sets
    cfg = tiny_config(max_epochs=1)
    # a galaxy budget that splits the validation set into batches of unequal size
    cfg = replace(cfg, eval_max_galaxies=int(np.percentile(val.n_gal, 90)) * 4)
    est = NPEDeepSets(cfg).fit(train, val)
    batches = list(est._batches(val, est._inputs(val), est._targets(val),
                                cfg.eval_batch_size, None))
    sizes = [len(b.y) for b in batches]
    assert len(set(sizes)) > 1 and sum(sizes) == len(val)
    with torch.no_grad():  # the per-cluster loss, summed over every batch
        per_cluster = torch.cat([est._nll(est.model, b) for b in batches])
    assert per_cluster.shape == (len(val),)
    assert est.result.history[-1]["val_loss"] == pytest.approx(float(per_cluster.mean()),
                                                               rel=1e-5)


def test_cosine_schedule_anneals_to_min_lr_whatever_the_validation_loss():
    model = torch.nn.Linear(1, 1)

    def loss(m, batch):
        return (m(torch.ones(1, 1)) - 5.0).pow(2).sum()

    cfg = TrainConfig(max_epochs=5, patience=10, progress=False, lr=1e-2, min_lr=1e-4,
                      lr_schedule="cosine")
    res = train_model(model, loss, lambda rng: ["train"], ["val"], cfg)
    lrs = [h["lr"] for h in res.history]
    expected = [1e-4 + (1e-2 - 1e-4) * (1 + np.cos(np.pi * e / 5)) / 2 for e in range(5)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-9)
    plateau = train_model(torch.nn.Linear(1, 1), loss, lambda rng: ["train"], ["val"],
                          TrainConfig(max_epochs=5, patience=10, progress=False, lr=1e-2))
    assert plateau.history[-1]["lr"] == 1e-2  # still improving: the plateau rule keeps it
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="step")
    with pytest.raises(ValueError, match="min_lr"):
        TrainConfig(lr=1e-5, min_lr=1e-4, lr_schedule="cosine")


def test_bfloat16_training_runs_the_encoder_in_bfloat16_and_the_density_in_float32(small_sets):
    train, val, _ = small_sets
    cfg = tiny_config(max_epochs=1, precision="bfloat16")
    est = NPEDeepSets(cfg).fit(train, val)
    assert all(p.dtype == torch.float32 for p in est.model.parameters())
    assert np.isfinite(est.result.history[0]["train_loss"])
    batch = next(iter(est._batches(val, est._inputs(val), est._targets(val), 64, None)))
    with torch.no_grad():
        full = est._loss(est.model, batch)
        with cfg.train.autocast():
            assert est.model.embed(batch.x, batch.mask, batch.g).dtype == torch.bfloat16
            mixed = est._loss(est.model, batch)
    assert mixed.dtype == torch.float32
    # bfloat16 keeps 8 significant bits in the encoder's products: the loss moves, a little
    assert float(mixed) == pytest.approx(float(full), rel=0.05, abs=0.02)
    with torch.no_grad(), TrainConfig().autocast():  # the default: float32 throughout
        assert est.model.embed(batch.x, batch.mask, batch.g).dtype == torch.float32
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="float16")


def test_resample_weighted_matches_the_analytic_posterior():
    rng = np.random.default_rng(4)
    draws = rng.standard_normal((200, 4000))  # N(0, 1) "posterior"
    w = np.exp(draws - 0.5)  # times N(1, 1) / N(0, 1): the product is N(1, 1)
    out = resample_weighted(draws, w, 1000, rng)
    assert out.mean() == pytest.approx(1.0, abs=0.02) and out.std() == pytest.approx(1, abs=0.02)
    with pytest.raises(ValueError, match="zero weight"):
        resample_weighted(draws, np.zeros_like(w), 10, rng)


def test_prior_reweighting_moves_posteriors_towards_the_new_prior(fitted, small_sets):
    test = small_sets[2]
    low = PriorReweighted(fitted, lambda t: np.exp(-3.0 * (t - 14.0)))  # steeply falling
    base = fitted.sample(test, 500, np.random.default_rng(0)).mean(axis=1)
    moved = low.sample(test, 500, np.random.default_rng(0)).mean(axis=1)
    assert np.all(moved < base)
    ess = low.sample_with_info(test, 300, np.random.default_rng(9)).info["ess"]
    assert ess.min() > 100


def test_fresh_training_clusters_every_epoch_reproducible_by_seed(small_sets, monkeypatch):
    """Splits.fresh: new clusters each epoch from the epoch's generator; same seed, same model.

    The next epoch's set is made in a background thread; the weights must be bit-identical to
    making every set when it is needed (the made-ahead set is used only when its seed is the
    one the epoch draws), and the extra set made during the last epoch is the only cost."""
    from pyro_clusters.estimators import Splits, neural
    from pyro_clusters.simulator import FlatLogMassPrior, SimulatorConfig, simulate_selected

    train, val, test = small_sets
    seeds = []

    def fresh(rng):
        seeds.append(int(rng.bit_generator.seed_seq.entropy[0]))
        cfg = SimulatorConfig(setup="idealized")
        return simulate_selected(60, FlatLogMassPrior(14.0, 15.0), cfg, rng)[0]

    cfg = tiny_config(max_epochs=3, patience=5)
    a = NPEDeepSets(cfg).fit(Splits(train, val, fresh=fresh))
    assert a.result.epochs == 3 and len(seeds) == 4 and len(set(seeds)) == 4
    ahead_seeds, seeds[:] = list(seeds), []
    b = NPEDeepSets(cfg).fit(Splits(train, val, fresh=fresh))
    monkeypatch.setattr(neural._Ahead, "start", lambda self, rng: None)  # make each when needed
    b_now = NPEDeepSets(cfg).fit(Splits(train, val, fresh=fresh))
    assert seeds[:4] == ahead_seeds and seeds[4:] == ahead_seeds[:3]
    c = NPEDeepSets(cfg).fit(Splits(train, val))  # the fixed training set: another model
    draws = [m.sample(test, 50, np.random.default_rng(4)) for m in (a, b, b_now, c)]
    np.testing.assert_array_equal(draws[0], draws[1])
    np.testing.assert_array_equal(draws[0], draws[2])
    assert not np.array_equal(draws[0], draws[3])
    assert a.features == c.features  # standardisation still comes from ``train``
