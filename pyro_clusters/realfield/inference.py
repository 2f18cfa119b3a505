r"""The posterior mass of an observed cluster (the logic of ``python -m pyro_clusters infer``).

The cylinder of a redshift table (:func:`pyro_clusters.realfield.table.observe_field`, the
model's own aperture and velocity window) goes through a model bundle
(:class:`~pyro_clusters.realfield.bundle.CylinderModel`): the classifier gives each galaxy a
membership probability, the NPE posterior draws of log10(M200c / h^-1 Msun). Kodi Ramanah et
al. 2020 (arXiv:2003.05951) section 6 and Ho et al. 2022 (arXiv:2206.14834) apply the same kind
of model to Coma and other nearby clusters.

Prior: ``flat`` (default) is the training prior, uniform in log M over the training range, so
the posterior is proportional to the likelihood there; ``hmf`` re-weights it to the halo mass
function at the cluster's redshift over the same range, the calibrated posterior for a cluster
drawn at random from the Universe. Either way the flow's draws go through
:class:`~pyro_clusters.estimators.reweighted.PriorReweighted` (sampling-importance-resampling with
weight prior / flat), which also rejects the draws the flow puts outside the prior's range
("leakage", reported in the summary).

One path for one cluster or many: :func:`infer_cylinders` takes any number of observed
cylinders (a survey's, :mod:`~pyro_clusters.realfield.survey`) and gives each its posterior in
one classifier pass and one NPE call per prior; :func:`infer_cluster` is a batch of one (plus
subsampling), so a cluster gets the same posterior, warnings and leakage whichever way it is
asked. Mismatch with the training set is reported, not hidden
(:func:`~pyro_clusters.realfield.mismatch.cluster_warnings`). Subsampling draws K random
subsets of N galaxies and mixes their posteriors in equal parts (for fields richer than any
training cluster, e.g. a deeper survey).

The cluster redshift is taken as given, while the mocks' velocities are relative to the halo's
own: on mock clusters of 10^15 h^-1 Msun at z = 0.023 seen to 10^8 h^-1 Msun, a cluster
velocity off by 300 km/s (about the difference between heliocentric and CMB-frame redshifts in
some directions) lowers the posterior median by 0.10 dex, 400 km/s by 0.15 dex, while centres off
by 0.1-0.2 h^-1 Mpc on the sky move it by < 0.03 dex
(:func:`pyro_clusters.diagnostics.robustness.centre_shift`).
:func:`~pyro_clusters.realfield.redshift.refine_redshift` moves the redshift to the members'
mean velocity before inference (``--refine-z``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pyro_clusters import defaults
from pyro_clusters.cosmology import get_cosmology
from pyro_clusters.data.clusters import ClusterSet
from pyro_clusters.realfield.mismatch import cluster_warnings, prior_range
from pyro_clusters.realfield.redshift import RefinedRedshift, member_velocity_offset
from pyro_clusters.realfield.table import FieldObservation, ObservationError

__all__ = ["HMF_Z_STEP", "OVERSAMPLE", "PERCENTILES", "PRIORS", "ClusterPosterior",
           "infer_cluster", "infer_cylinders", "msigma_estimates", "posterior_summary",
           "subsample_sets"]

#: percentiles reported, in per cent.
PERCENTILES = (2.5, 16.0, 50.0, 84.0, 97.5)
#: flow draws per returned draw (sampling-importance-resampling onto the prior).
OVERSAMPLE = 4
#: the priors a posterior can be asked under
PRIORS = ("flat", "hmf")
#: the ``hmf`` prior is the mass function at the cluster redshift rounded to this step (one
#: prior per step for a whole survey; the mass function changes by < 1 % across one step).
HMF_Z_STEP = 0.005


@dataclass
class ClusterPosterior:
    """Result of :func:`infer_cluster`.

    Attributes:
        observation: the cylinder as the model saw it.
        p_member: classifier membership probability of each galaxy in the cylinder, (n_gal,).
        draws: posterior draws of log10(M200c / h^-1 Msun), (n_draws,).
        msigma: the M-sigma baseline on the same galaxies: ``sigma_v`` [km/s] of classifier
            members, ``log_m`` point estimate, ``scatter_dex``.
        warnings: mismatch messages (empty when the observation is like the training data).
        settings: prior, subsampling, seed, draws.
        summary: percentiles and everything ``summary.json`` holds.
    """

    observation: FieldObservation
    p_member: np.ndarray
    draws: np.ndarray
    msigma: dict
    warnings: list[str]
    settings: dict
    summary: dict = field(default_factory=dict)


def subsample_sets(clusters: ClusterSet, n: int, k: int, rng: np.random.Generator
                   ) -> tuple[ClusterSet, np.ndarray]:
    """K random subsets of n galaxies of a one-cluster set, as a K-cluster set.

    Returns:
        (the set, galaxy rows of the original cluster in each subset, (k, n)).
    """
    total = int(clusters.n_gal[0])
    if not 2 <= n < total:
        raise ValueError(f"subsample size must be in [2, {total}), got {n}")
    rows = np.stack([np.sort(rng.choice(total, n, replace=False)) for _ in range(k)])
    galaxies = {c: v[rows.ravel()] for c, v in clusters.galaxies.items()}
    columns = {c: np.repeat(v[:1], k) for c, v in clusters.clusters.items() if c != "n_gal"}
    return ClusterSet({"n_gal": np.full(k, n), **columns}, galaxies, np.arange(k + 1) * n,
                      dict(clusters.attrs)), rows


def _percentiles(draws: np.ndarray) -> dict[str, float]:
    q = np.percentile(draws, PERCENTILES)
    out = {f"p{p:g}": float(v) for p, v in zip(PERCENTILES, q, strict=True)}
    out.update(median=out.pop("p50"), mean=float(draws.mean()), std=float(draws.std()))
    return out


def msigma_estimates(model, annotated: ClusterSet) -> list[dict]:
    """The M-sigma baseline on classifier members of every cluster of an annotated set.

    Args:
        model: a :class:`~pyro_clusters.realfield.bundle.CylinderModel`.
        annotated: clusters whose galaxies carry ``p_member``.

    Returns:
        per cluster: ``sigma_v_kms`` of the members (p above the classifier's threshold;
        NaN with fewer than two), ``n_members``, ``log_m`` (the baseline's point estimate),
        ``scatter_dex`` (its scatter).
    """
    from pyro_clusters.features.dispersion import velocity_dispersion

    members = annotated.galaxies["p_member"] > model.classifier.config.threshold
    sigma_v = velocity_dispersion(annotated, members)
    n_members = np.bincount(annotated.cluster_index(), members, minlength=len(annotated))
    log_m = model.msigma.predict(annotated)
    scatter = float(model.msigma.scatter_dex)
    return [{"sigma_v_kms": float(s), "n_members": int(k), "log_m": float(m),
             "scatter_dex": scatter} for s, k, m in zip(sigma_v, n_members, log_m, strict=True)]


def _check_options(prior: str, n_draws: int) -> None:
    if prior not in PRIORS:
        raise ObservationError(f"prior must be 'flat' or 'hmf', got {prior!r}")
    if n_draws < 2:
        raise ObservationError("need at least 2 draws")


def _n_min(trained_on: dict) -> int:
    return int(trained_on.get("n_min", defaults.N_MIN))


def sample_posteriors(annotated: ClusterSet, z: np.ndarray, model, n_draws: int, prior: str,
                      rng: np.random.Generator
                      ) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """The NPE's draws under the chosen prior for every cluster of an annotated set.

    The flow's draws go through :class:`~pyro_clusters.estimators.reweighted.PriorReweighted`
    (weight prior / flat; ``hmf``: the mass function at each cluster's z on the
    :data:`HMF_Z_STEP` grid, one call per grid step), which also rejects the draws outside the
    prior's range (leakage, per cluster). A group with a cluster whose posterior lies entirely
    outside the range is redone one cluster at a time.

    Args:
        annotated: the clusters, galaxies with ``p_member``.
        z: each cluster's redshift, (n_clusters,).
        model: a :class:`~pyro_clusters.realfield.bundle.CylinderModel`.
        n_draws: draws per cluster.
        prior: ``flat`` or ``hmf``.
        rng: the draws' generator.

    Returns:
        (draws (n_clusters, n_draws) of log10(M200c / h^-1 Msun), NaN for a failed cluster;
        leakage per cluster; {index: reason} of the clusters with no posterior).
    """
    from pyro_clusters.estimators.reweighted import PriorReweighted
    from pyro_clusters.simulator.priors import HaloMassFunctionSampler

    lo, hi = prior_range(model.trained_on)
    keys = np.round(np.asarray(z) / HMF_Z_STEP) if prior == "hmf" else np.zeros(len(annotated))
    draws = np.full((len(annotated), n_draws), np.nan)
    leakage = np.zeros(len(annotated))
    failed: dict[int, str] = {}
    for key in np.unique(keys):
        group = np.flatnonzero(keys == key)
        if prior == "hmf":
            new_prior = HaloMassFunctionSampler(lo, hi, z=max(key * HMF_Z_STEP, 1e-3))
        else:  # the training prior: flat, zero outside its range
            def new_prior(x):
                return ((x >= lo) & (x <= hi)).astype(np.float64)
        est = PriorReweighted(model.npe, new_prior, oversample=OVERSAMPLE)
        try:  # the whole group at once
            res = est.sample_with_info(annotated.select(group), n_draws, rng)
        except ValueError as err:
            if len(group) == 1:
                failed[int(group[0])] = _outside(lo, hi, err)
                continue
        else:
            draws[group] = res.draws
            leakage[group] = res.info["zero_weight_fraction_per_cluster"]
            continue
        for g in group:  # a cluster of the group lies outside the prior: one at a time
            try:
                res = est.sample_with_info(annotated.select([g]), n_draws, rng)
            except ValueError as err:
                failed[int(g)] = _outside(lo, hi, err)
                continue
            draws[g] = res.draws[0]
            leakage[g] = res.info["zero_weight_fraction_per_cluster"][0]
    return draws, leakage, failed


def _outside(lo: float, hi: float, err: Exception) -> str:
    return (f"the posterior lies entirely outside the model's prior range [{lo}, {hi}] in "
            f"log10 M ({err}): this cluster is outside what the model was trained on")


def _annotate(observations: list[FieldObservation], model) -> tuple:
    """One classifier pass over the cylinders: the annotated set, M-sigma, members' velocity."""
    annotated = model.annotate(ClusterSet.concatenate([o.clusters for o in observations]))
    return (annotated, msigma_estimates(model, annotated), *member_velocity_offset(annotated))


def _settings(prior: str, seed, n_draws: int, leakage: float, offset: tuple[float, float],
              ref: RefinedRedshift | None, applied: bool) -> dict:
    notes = [] if not applied else [
        f"--refine-z: redshift {ref.z_given:.5g} -> {ref.z:.5g} ({ref.shift_kms:+.0f} "
        f"km/s, members' mean known to +-{ref.error_kms:.0f} km/s; {ref.iterations} "
        "iterations" + ("" if ref.converged else ", not converged") + ")"]
    return {"prior": prior, "subsample": None, "n_subsamples": None,
            "seed": None if isinstance(seed, np.random.Generator) else seed,
            "n_draws": n_draws, "leakage_fraction": leakage, "notes": notes,
            "member_velocity_offset_kms": list(offset),
            "refined_redshift": ref.to_dict() if applied else None,
            "redshift_check": ref.to_dict() if ref is not None and not applied else None}


def _offset(obs: FieldObservation, ref: RefinedRedshift | None, one_step: tuple[float, float]
            ) -> tuple[bool, tuple[float, float]]:
    """(redshift moved to the members?, the members' offset [km/s] and its error)."""
    applied = ref is not None and abs(ref.z - obs.center[2]) < 1e-9
    if ref is not None and not applied:  # refined for the check only
        return applied, (ref.shift_kms, ref.error_kms)
    return applied, (float(one_step[0]), float(one_step[1]))


def infer_cylinders(observations: list[FieldObservation], model, n_draws: int = 4000,
                    seed: int | np.random.Generator = 0, prior: str = "flat",
                    refined: list[RefinedRedshift | None] | None = None
                    ) -> list[ClusterPosterior | ObservationError]:
    """Posteriors of log10 M200c for many observed cylinders at once (module docstring).

    One classifier pass annotates every cylinder, one NPE call per prior
    (:func:`sample_posteriors`) gives the draws; each cluster then gets its M-sigma
    estimate, its warnings (:func:`~pyro_clusters.realfield.mismatch.cluster_warnings`, its
    own leakage) and its summary.

    Args:
        observations: the cylinders (:func:`~pyro_clusters.realfield.table.observe_field`
            with the model's aperture and v_cut), one per cluster.
        model: a :class:`~pyro_clusters.realfield.bundle.CylinderModel`.
        n_draws: posterior draws per cluster.
        seed: seed (or generator) of the flow's draws, one stream for the whole call.
        prior: ``flat`` (training prior) or ``hmf`` (halo mass function at each cluster's z).
        refined: per cylinder, its :func:`~pyro_clusters.realfield.redshift.refine_redshifts`
            result or None. A cylinder cut at its refined redshift records the refinement in
            its settings and notes; otherwise the refinement's shift is what the
            velocity-offset warning tests (without one, the one-step
            :func:`~pyro_clusters.realfield.redshift.member_velocity_offset`, which
            underestimates an offset).

    Returns:
        per cylinder, its :class:`ClusterPosterior`, or the :class:`ObservationError` saying
        why it has none (fewer galaxies than N_min, a posterior outside the prior range).

    Raises:
        ObservationError: a bad option (prior, draws).
    """
    _check_options(prior, n_draws)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    refined = list(refined) if refined is not None else [None] * len(observations)
    if len(refined) != len(observations):
        raise ValueError(f"{len(refined)} refinements for {len(observations)} cylinders")
    t = model.trained_on
    n_min = _n_min(t)
    out: list[ClusterPosterior | ObservationError | None] = [None] * len(observations)
    ok = []
    for i, obs in enumerate(observations):
        if obs.n_gal < n_min:
            out[i] = ObservationError(
                f"only {obs.n_gal} galaxies in the cylinder (R <= {t['aperture']} h^-1 Mpc, "
                f"|v_los| <= {t['v_cut']:g} km/s); the model needs at least {n_min} (N_min of "
                "its training clusters)")
        else:
            ok.append(i)
    if not ok:
        return out
    annotated, msig, offsets, offset_errors = _annotate([observations[i] for i in ok], model)
    draws, leakage, failed = sample_posteriors(
        annotated, np.array([observations[i].center[2] for i in ok]), model, n_draws, prior,
        rng)
    p_all = annotated.galaxies["p_member"].astype(np.float64)
    for k, i in enumerate(ok):
        obs, ref = observations[i], refined[i]
        if k in failed:
            out[i] = ObservationError(failed[k])
            continue
        applied, offset = _offset(obs, ref, (offsets[k], offset_errors[k]))
        settings = _settings(prior, seed, n_draws, float(leakage[k]), offset, ref, applied)
        warn = cluster_warnings(obs, t, draws[k], float(leakage[k]),
                                None if applied else offset)
        post = ClusterPosterior(obs, p_all[annotated.offsets[k]:annotated.offsets[k + 1]],
                                draws[k], msig[k], warn, settings)
        post.summary = posterior_summary(post, model)
        out[i] = post
    return out


def infer_cluster(obs: FieldObservation, model, n_draws: int = 4000, seed: int = 0,
                  prior: str = "flat", subsample: int | str | None = None,
                  n_subsamples: int = 20, refined: RefinedRedshift | None = None
                  ) -> ClusterPosterior:
    """Posterior of log10 M200c for one observed cylinder.

    Without subsampling this is :func:`infer_cylinders` of one cylinder. With it, K random
    subsets of N galaxies each get the flow's posterior (:func:`sample_posteriors`) and their
    draws are mixed in equal parts; the warnings are those of N galaxies.

    Args:
        obs: the cylinder (:func:`pyro_clusters.realfield.table.observe_field` with the
            model's aperture and v_cut).
        model: a :class:`~pyro_clusters.realfield.bundle.CylinderModel`.
        n_draws: posterior draws.
        seed: seed of the flow's draws and of subsampling.
        prior: ``flat`` (training prior) or ``hmf`` (halo mass function at the cluster's z).
        subsample: galaxies per random subset, ``"auto"`` (the 99th percentile of the training
            richness, if the cylinder has more), or None (all galaxies).
        n_subsamples: subsets whose posteriors are mixed in equal parts.
        refined: :func:`~pyro_clusters.realfield.redshift.refine_redshift` of this cluster,
            if run (:func:`infer_cylinders`).

    Returns:
        :class:`ClusterPosterior`.

    Raises:
        ObservationError: fewer galaxies than the model's N_min, a posterior outside the
            prior range, or a bad option.
    """
    _check_options(prior, n_draws)
    if n_subsamples < 1:
        raise ObservationError("need at least 2 draws and 1 subsample")
    trained_on = model.trained_on
    n_min = _n_min(trained_on)
    notes = []
    if subsample == "auto":
        cap = int(model.richness_range[1])
        subsample = cap if obs.n_gal > cap else None
        if subsample is None:
            notes.append(f"--subsample auto: {obs.n_gal} galaxies are within the training "
                         f"richness (99th percentile {cap}); no subsampling")
    elif subsample is not None:
        subsample = int(subsample)
        if obs.n_gal >= n_min and not n_min <= subsample < obs.n_gal:
            raise ObservationError(f"--subsample must be in [{n_min}, {obs.n_gal}) for this "
                                   f"cylinder of {obs.n_gal} galaxies, got {subsample}")
    rng = np.random.default_rng(seed)
    post = infer_cylinders([obs], model, n_draws, rng, prior, [refined])[0] \
        if subsample is None else _subsampled(obs, model, n_draws, rng, prior, subsample,
                                              n_subsamples, refined)
    if isinstance(post, ObservationError):
        raise post
    post.settings["seed"] = seed  # the summary holds this settings dict, not a copy
    post.settings["notes"] = notes + post.settings["notes"]
    return post


def _subsampled(obs, model, n_draws, rng, prior, subsample, n_subsamples, refined):
    """:func:`infer_cluster` with K random subsets of ``subsample`` galaxies, mixed."""
    if obs.n_gal < _n_min(model.trained_on):  # the same message as infer_cylinders'
        return infer_cylinders([obs], model, 2, rng, prior)[0]
    annotated, msig, offsets, offset_errors = _annotate([obs], model)
    sets, _ = subsample_sets(obs.clusters, subsample, n_subsamples, rng)
    sets = model.annotate(sets)
    per = -(-n_draws // n_subsamples)
    res, leakage, failed = sample_posteriors(sets, np.full(n_subsamples, obs.center[2]), model,
                                             per, prior, rng)
    if failed:
        return ObservationError(next(iter(failed.values())))
    draws = rng.permutation(res.ravel())[:n_draws]
    applied, offset = _offset(obs, refined, (offsets[0], offset_errors[0]))
    settings = {**_settings(prior, None, int(draws.size), float(leakage.mean()), offset, refined,
                            applied), "subsample": subsample, "n_subsamples": n_subsamples}
    warn = cluster_warnings(obs, model.trained_on, draws, float(leakage.mean()),
                            None if applied else offset, subsample)
    post = ClusterPosterior(obs, annotated.galaxies["p_member"].astype(np.float64), draws,
                            msig[0], warn, settings)
    post.summary = posterior_summary(post, model)
    return post


def posterior_summary(post: ClusterPosterior, model) -> dict:
    """What ``summary.json`` holds: centre, percentiles, counts, M-sigma, warnings, model."""
    h = float(get_cosmology().h)
    obs = post.observation
    pct = _percentiles(post.draws)
    m14 = {k: 10.0 ** (v - 14.0) for k, v in pct.items() if k not in ("mean", "std")}
    return {
        "center": {"ra_deg": obs.center[0], "dec_deg": obs.center[1], "z": obs.center[2]},
        "log10_M200c_hinv_Msun": pct,
        "M200c_1e14_hinv_Msun": m14,
        "M200c_1e14_Msun": {k: v / h for k, v in m14.items()},
        "h": h,
        "n_table_rows": obs.n_rows,
        "n_rows_dropped_missing": obs.n_dropped,
        "n_rows_dropped_negative_z": obs.n_negative,
        "n_table_galaxies": obs.n_table,
        "n_galaxies_in_cylinder": obs.n_gal,
        "n_members_classifier": int((post.p_member > model.classifier.config.threshold).sum()),
        "sum_p_member": float(post.p_member.sum()),
        "msigma": post.msigma,
        "warnings": post.warnings,
        "settings": post.settings,
        "coverage_radius_hinv_Mpc": obs.coverage_radius,
        "velocity_span_kms": list(obs.velocity_span),
        "model": {"name": model.name, "path": str(model.path) if model.path else None,
                  "trained_on": model.trained_on, "command": model.info.get("command"),
                  "test_metrics": model.info.get("test_metrics")},
    }
