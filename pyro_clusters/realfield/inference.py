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
:class:`~pyro_clusters.estimators.prior.PriorReweighted` (sampling-importance-resampling with
weight prior / flat), which also rejects the draws the flow puts outside the prior's range
("leakage", reported in the summary).

Mismatch with the training set is reported, not hidden (:func:`mismatch_warnings`): redshift
far from the training redshift, richness outside the training range, a table that does not
cover the aperture or the velocity window, a posterior pressed against the edge of the training
prior, and the classifier's members centred away from the given redshift
(:func:`member_velocity_offset`). Subsampling draws K random subsets of N galaxies and mixes their
posteriors in equal parts (for fields richer than any training cluster, e.g. a deeper survey).

The cluster redshift is taken as given, while the mocks' velocities are relative to the halo's
own: on mock clusters of 10^15 h^-1 Msun at z = 0.023 seen to 10^8 h^-1 Msun, a cluster
velocity off by 300 km/s (about the difference between heliocentric and CMB-frame redshifts in
some directions) lowers the posterior median by 0.10 dex, 400 km/s by 0.15 dex, while centres off
by 0.1-0.2 h^-1 Mpc on the sky move it by < 0.03 dex
(:func:`pyro_clusters.diagnostics.robustness.centre_shift`). :func:`refine_redshift` moves the
redshift to the members' mean velocity before inference (``--refine-z``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pyro_clusters import defaults
from pyro_clusters.cosmology import C_KMS, get_cosmology
from pyro_clusters.data.clusters import ClusterSet
from pyro_clusters.realfield.table import (
    FieldObservation,
    ObservationError,
    RedshiftTable,
    observe_field,
)

__all__ = ["ClusterPosterior", "RefinedRedshift", "infer_cluster", "member_velocity_offset",
           "mismatch_warnings", "msigma_estimates", "refine_redshift", "subsample_sets"]

#: |z - z_train| above max(DZ_ABS, DZ_REL * z_train) is reported as a redshift mismatch.
DZ_ABS, DZ_REL = 0.02, 0.2
#: percentiles reported, in per cent.
PERCENTILES = (2.5, 16.0, 50.0, 84.0, 97.5)
#: flow draws per returned draw (sampling-importance-resampling onto the prior).
OVERSAMPLE = 4
#: fraction of flow draws outside the prior range above which a warning is given.
LEAKAGE_WARN = 0.05
#: members' mean velocity [km/s] off the given redshift by more than this and by more than
#: VELOCITY_OFFSET_SIGMA standard errors is reported. Substructure and mergers move the
#: members' mean off the halo's velocity by up to ~300 km/s in the mocks (30 correctly
#: centred 10^15 h^-1 Msun clusters at z = 0.023 seen to 10^8: |shift| > 150 km/s in 6, > 300
#: in 1), so the threshold is 300 km/s: rare on a correct redshift, while a 300 km/s error
#: lowers the mass by ~0.1 dex.
VELOCITY_OFFSET_WARN, VELOCITY_OFFSET_SIGMA = 300.0, 3.0


def member_velocity_offset(annotated: ClusterSet) -> tuple[np.ndarray, np.ndarray]:
    """Membership-weighted mean line-of-sight velocity of each cylinder, and its error.

        v_c = sum_i p_i v_i / sum_i p_i,   s.e. = sqrt(sum_i p_i (v_i - v_c)^2 / sum_i p_i)
                                                  / sqrt(sum_i p_i)

    with p_i the classifier's ``p_member``. The classifier was trained on cylinders centred on
    the halo's velocity, so it favours galaxies near v = 0 and v_c underestimates a true
    offset (about 0.6 of it at 150-300 km/s); :func:`refine_redshift` iterates.

    Args:
        annotated: clusters whose galaxies carry ``p_member``.

    Returns:
        (v_c, s.e.) [km/s], each (n_clusters,); NaN for a cluster with sum p = 0.
    """
    p = np.asarray(annotated.galaxies["p_member"], np.float64)
    v = np.asarray(annotated.galaxies["v_los"], np.float64)
    idx, n = annotated.cluster_index(), len(annotated)
    w = np.bincount(idx, p, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(idx, p * v, minlength=n) / w
        var = np.bincount(idx, p * (v - mean[idx]) ** 2, minlength=n) / w
        return mean, np.sqrt(var / w)


def _offset_warning(offset: float, error: float, z: float) -> str | None:
    """The velocity-offset warning, if the members are off by > 300 km/s and > 3 s.e."""
    if not (abs(offset) > VELOCITY_OFFSET_WARN and abs(offset) > VELOCITY_OFFSET_SIGMA * error):
        return None
    return (f"the classifier's members are centred at v_los = {offset:+.0f} +- {error:.0f} "
            f"km/s, not at the given redshift {z:.5g}: a cluster redshift that far off (e.g. "
            "a CMB-frame redshift with heliocentric galaxy redshifts) biases the mass low "
            "(-0.1 dex for 300 km/s on mocks); check the redshift, or use --refine-z (a "
            "merging cluster's members can also be off its mean by this much)")


@dataclass(frozen=True)
class RefinedRedshift:
    """The cluster redshift moved to its members' mean velocity (:func:`refine_redshift`).

    Attributes:
        z: the refined cluster redshift.
        z_given: the redshift it started from.
        shift_kms: total velocity shift, c (z - z_given) / (1 + z_given) [km/s].
        error_kms: standard error of the members' mean velocity at the end [km/s].
        iterations: re-observations made.
        converged: the last step was below the tolerance.
    """

    z: float
    z_given: float
    shift_kms: float
    error_kms: float
    iterations: int
    converged: bool

    def to_dict(self) -> dict:
        """Plain JSON-able values."""
        return {"z": self.z, "z_given": self.z_given, "shift_kms": self.shift_kms,
                "error_kms": self.error_kms, "iterations": self.iterations,
                "converged": self.converged}


def refine_redshift(table: RedshiftTable, ra: float, dec: float, z: float, model,
                    max_iter: int = 20, tol_kms: float = 5.0) -> RefinedRedshift:
    """Move the cluster redshift to the classifier's members' mean velocity.

    Repeats: cut the cylinder about (ra, dec, z) with the model's aperture and window,
    annotate with the classifier, shift z by (1 + z) v_c / c (:func:`member_velocity_offset`)
    -- until |v_c| < ``tol_kms``. Each step recovers about 0.6 of the remaining offset, so a
    300 km/s error takes ~6 steps. On correctly centred mocks it moves the redshift by about
    the standard error of the members' mean (~30 km/s for 1,000 galaxies, ~80 for 200).

    Args:
        table: the galaxies.
        ra: cluster centre right ascension [deg].
        dec: cluster centre declination [deg].
        z: the given cluster redshift.
        model: a :class:`~pyro_clusters.realfield.bundle.CylinderModel`.
        max_iter: most re-observations.
        tol_kms: convergence tolerance on the step [km/s].

    Returns:
        :class:`RefinedRedshift`.

    Raises:
        ObservationError: the cylinder empties on the way (a redshift far off).
    """
    t = model.trained_on
    z_k, converged, k, error = float(z), False, 0, float("nan")
    for k in range(1, max_iter + 1):  # noqa: B007 -- k is reported
        obs = observe_field(table, ra, dec, z_k, t["aperture"], t["v_cut"])
        offset, err = member_velocity_offset(model.annotate(obs.clusters))
        step, error = float(offset[0]), float(err[0])
        if not np.isfinite(step):
            raise ObservationError("no classifier member in the cylinder: cannot refine the "
                                   "redshift")
        z_k += (1.0 + z_k) * step / C_KMS
        if abs(step) < tol_kms:
            converged = True
            break
    return RefinedRedshift(z_k, float(z), C_KMS * (z_k - z) / (1.0 + z), error, k, converged)


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


def mismatch_warnings(obs: FieldObservation, trained_on: dict, n_used: int | None = None
                      ) -> list[str]:
    """Ways the observation differs from what the model was trained on, each with a remedy.

    Args:
        obs: the observed cylinder.
        trained_on: the bundle's ``trained_on`` (z, aperture, v_cut, richness percentiles).
        n_used: galaxies per posterior after subsampling (default: all of the cylinder's).

    Returns:
        messages (empty if none applies).
    """
    out = []
    z, z_train = obs.center[2], trained_on["z"]
    retrain = ("--model amortised (the shipped model for z 0.01-0.3 and any survey depth), "
               f"or train one: python -m pyro_clusters train --z {z:.4g} --aperture "
               f"{trained_on['aperture']} --v-cut {trained_on['v_cut']:g} --out DIR (about 20 "
               "min on 2 CPU cores), then --model DIR")
    if "z_range" in trained_on:  # an amortised model: the redshift is one of its inputs
        lo, hi = trained_on["z_range"]
        if not lo <= z <= hi:
            out.append(f"redshift {z:.4g} is outside the model's training range "
                       f"[{lo:g}, {hi:g}]: the model extrapolates")
    elif abs(z - z_train) > max(DZ_ABS, DZ_REL * z_train):
        out.append(f"redshift {z:.4g} is far from the training redshift {z_train:.4g}: the "
                   "aperture in h^-1 Mpc covers a different part of the cluster's "
                   f"galaxy population than in training; use {retrain}")
    r = trained_on["richness"]
    lo, hi = float(r["1"]), float(r["99"])
    n = obs.n_gal if n_used is None else n_used
    if n > hi:
        out.append(f"{n} galaxies in the cylinder, more than 99 % of training clusters "
                   f"({hi:.0f}); a deeper survey than the mocks' galaxy selection? "
                   f"--subsample auto uses random subsets of {int(hi)} galaxies")
    elif n < lo:
        out.append(f"{n} galaxies in the cylinder, fewer than 99 % of training clusters "
                   f"({lo:.0f}): a shallow or incomplete survey; the posterior is wide and "
                   "the model has seen few such clusters")
    aperture, v_cut = trained_on["aperture"], trained_on["v_cut"]
    if obs.coverage_radius < 0.95 * aperture:
        out.append(f"the table reaches only {obs.coverage_radius:.2f} h^-1 Mpc from the centre "
                   f"(inside the velocity window) but the model's aperture is {aperture} h^-1 "
                   "Mpc: the outer cylinder is missing, so richness and interloper fraction "
                   f"differ from training; use a wider table or train with --aperture "
                   f"{obs.coverage_radius:.2f}")
    vmin, vmax = obs.velocity_span
    if obs.n_gal >= 30 and (vmin > -0.75 * v_cut or vmax < 0.75 * v_cut):
        out.append(f"inside the aperture the table spans only v_los = {vmin:.0f} .. {vmax:.0f} "
                   f"km/s of the model's +-{v_cut:g} km/s window: a pre-selected member list? "
                   "The model expects every galaxy in the window, interlopers included")
    return out


def _edge_warning(draws: np.ndarray, log_m_range: tuple[float, float]) -> str | None:
    lo, hi = log_m_range
    p_lo, p_hi = np.percentile(draws, [2.5, 97.5])
    if p_lo < lo + 0.05 or p_hi > hi - 0.05:
        side = "lower" if p_lo < lo + 0.05 else "upper"
        return (f"the posterior reaches the {side} edge of the training range "
                f"[{lo:.2f}, {hi:.2f}]; the mass may lie outside it and the posterior is "
                "truncated there")
    return None


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


def infer_cluster(obs: FieldObservation, model, n_draws: int = 4000, seed: int = 0,
                  prior: str = "flat", subsample: int | str | None = None,
                  n_subsamples: int = 20, refined: RefinedRedshift | None = None
                  ) -> ClusterPosterior:
    """Posterior of log10 M200c for an observed cylinder.

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
        refined: :func:`refine_redshift` of this cluster, if run: when ``obs`` was cut at
            its redshift, the refinement is recorded in the settings and notes; otherwise its
            shift is what the velocity-offset warning tests (without it, the one-step
            :func:`member_velocity_offset`, which underestimates an offset).

    Returns:
        :class:`ClusterPosterior`.

    Raises:
        ObservationError: fewer galaxies than the model's N_min, or a bad option.
    """
    from pyro_clusters.estimators.prior import PriorReweighted
    from pyro_clusters.simulator.priors import HaloMassFunctionSampler

    trained_on = model.trained_on
    n_min = int(trained_on.get("n_min", defaults.N_MIN))
    if obs.n_gal < n_min:
        raise ObservationError(
            f"only {obs.n_gal} galaxies in the cylinder (R <= {trained_on['aperture']} h^-1 "
            f"Mpc, |v_los| <= {trained_on['v_cut']:g} km/s); the model needs at least {n_min} "
            "(N_min of its training clusters)")
    if prior not in ("flat", "hmf"):
        raise ObservationError(f"prior must be 'flat' or 'hmf', got {prior!r}")
    if n_draws < 2 or n_subsamples < 1:
        raise ObservationError("need at least 2 draws and 1 subsample")
    rng = np.random.default_rng(seed)
    notes = []
    if refined is not None and abs(refined.z - obs.center[2]) < 1e-9:
        notes.append(f"--refine-z: redshift {refined.z_given:.5g} -> {refined.z:.5g} "
                     f"({refined.shift_kms:+.0f} km/s, members' mean known to "
                     f"+-{refined.error_kms:.0f} km/s; {refined.iterations} iterations"
                     + ("" if refined.converged else ", not converged") + ")")
    if subsample == "auto":
        cap = int(model.richness_range[1])
        subsample = cap if obs.n_gal > cap else None
        if subsample is None:
            notes.append(f"--subsample auto: {obs.n_gal} galaxies are within the training "
                         f"richness (99th percentile {cap}); no subsampling")
    elif subsample is not None:
        subsample = int(subsample)
        if not n_min <= subsample < obs.n_gal:
            raise ObservationError(f"--subsample must be in [{n_min}, {obs.n_gal}) for this "
                                   f"cylinder of {obs.n_gal} galaxies, got {subsample}")
    annotated = model.annotate(obs.clusters)
    p_member = annotated.galaxies["p_member"].astype(np.float64)
    lo, hi = trained_on.get("prior_range", trained_on["log_m_range"])
    if prior == "hmf":
        new_prior = HaloMassFunctionSampler(lo, hi, z=obs.center[2])
    else:  # the training prior: flat, zero outside its range
        def new_prior(x):
            return ((x >= lo) & (x <= hi)).astype(np.float64)
    if subsample is None:
        sets, k = annotated, 1
    else:
        sets, _ = subsample_sets(obs.clusters, subsample, n_subsamples, rng)
        sets, k = model.annotate(sets), n_subsamples
    per = -(-n_draws // k)
    try:
        res = PriorReweighted(model.npe, new_prior, oversample=OVERSAMPLE).sample_with_info(
            sets, per, rng)  # (k, per)
    except ValueError as err:
        raise ObservationError(
            f"the posterior lies entirely outside the model's prior range [{lo}, {hi}] in "
            f"log10 M ({err}): this cluster is outside what the model was trained on") from None
    leakage = res.info["zero_weight_fraction"]
    draws = rng.permutation(res.draws.ravel())[:n_draws]
    msig = msigma_estimates(model, annotated)[0]
    warn = mismatch_warnings(obs, trained_on, subsample)
    applied = refined is not None and abs(refined.z - obs.center[2]) < 1e-9
    if refined is not None and not applied:  # refined for the check only
        offset, offset_err = refined.shift_kms, refined.error_kms
    else:
        offset, offset_err = (float(x[0]) for x in member_velocity_offset(annotated))
    off_warn = None if applied else _offset_warning(offset, offset_err, obs.center[2])
    if off_warn:
        warn.append(off_warn)
    edge = _edge_warning(draws, (lo, hi))
    if edge:
        warn.append(edge)
    if leakage > LEAKAGE_WARN:
        warn.append(f"{100 * leakage:.0f} % of the flow's draws fell outside the prior range "
                    f"[{lo}, {hi}] and were rejected: the cluster is at the edge of, or "
                    "outside, what the model was trained on")
    settings = {"prior": prior, "subsample": subsample, "n_subsamples": n_subsamples
                if subsample else None, "seed": seed, "n_draws": int(draws.size),
                "leakage_fraction": leakage, "notes": notes,
                "member_velocity_offset_kms": [offset, offset_err],
                "refined_redshift": refined.to_dict() if applied else None,
                "redshift_check": refined.to_dict() if refined is not None and not applied
                else None}
    post = ClusterPosterior(obs, p_member, draws, msig, warn, settings)
    post.summary = _summary(post, model)
    return post


def _summary(post: ClusterPosterior, model) -> dict:
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
        "model": {"path": str(model.path) if model.path else None,
                  "trained_on": model.trained_on, "command": model.info.get("command"),
                  "test_metrics": model.info.get("test_metrics")},
    }
