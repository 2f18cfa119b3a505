r"""Ways an observed cylinder differs from the model's training clusters, each with a remedy.

Every posterior of a real cluster (:func:`~pyro_clusters.realfield.inference.infer_cylinders`,
one cluster or a survey) carries the warnings of :func:`cluster_warnings`: redshift far from the
training redshift (or outside an amortised model's range), richness outside the training range,
a table that does not cover the aperture or the velocity window, the classifier's members
centred away from the given redshift, a posterior pressed against the edge of the training
prior, and flow draws that fell outside the prior range ("leakage"). They are heuristics on
single numbers, not calibrated tests.
"""

from __future__ import annotations

import numpy as np

from pyro_clusters.realfield.table import FieldObservation

__all__ = ["DZ_ABS", "DZ_REL", "LEAKAGE_WARN", "VELOCITY_OFFSET_SIGMA", "VELOCITY_OFFSET_WARN",
           "cluster_warnings", "edge_warning", "leakage_warning", "mismatch_warnings",
           "prior_range", "velocity_offset_warning"]

#: |z - z_train| above max(DZ_ABS, DZ_REL * z_train) is reported as a redshift mismatch.
DZ_ABS, DZ_REL = 0.02, 0.2
#: fraction of flow draws outside the prior range above which a warning is given.
LEAKAGE_WARN = 0.05
#: members' mean velocity [km/s] off the given redshift by more than this and by more than
#: VELOCITY_OFFSET_SIGMA standard errors is reported. Substructure and mergers move the
#: members' mean off the halo's velocity by up to ~300 km/s in the mocks (30 correctly
#: centred 10^15 h^-1 Msun clusters at z = 0.023 seen to 10^8: |shift| > 150 km/s in 6, > 300
#: in 1), so the threshold is 300 km/s: rare on a correct redshift, while a 300 km/s error
#: lowers the mass by ~0.1 dex.
VELOCITY_OFFSET_WARN, VELOCITY_OFFSET_SIGMA = 300.0, 3.0


def prior_range(trained_on: dict) -> tuple[float, float]:
    """The training prior's range of a bundle's ``trained_on``, log10(M200c / h^-1 Msun).

    Bundles saved before the prior range was recorded give their clusters' mass range.
    """
    lo, hi = trained_on["prior_range"] if "prior_range" in trained_on \
        else trained_on["log_m_range"]
    return lo, hi


def velocity_offset_warning(offset: float, error: float, z: float) -> str | None:
    """The velocity-offset warning, if the members are off by > 300 km/s and > 3 s.e.

    Args:
        offset: the members' mean velocity relative to the given redshift [km/s].
        error: its standard error [km/s].
        z: the given cluster redshift.
    """
    if not (abs(offset) > VELOCITY_OFFSET_WARN and abs(offset) > VELOCITY_OFFSET_SIGMA * error):
        return None
    return (f"the classifier's members are centred at v_los = {offset:+.0f} +- {error:.0f} "
            f"km/s, not at the given redshift {z:.5g}: a cluster redshift that far off (e.g. "
            "a CMB-frame redshift with heliocentric galaxy redshifts) biases the mass low "
            "(-0.1 dex for 300 km/s on mocks); check the redshift, or use --refine-z (a "
            "merging cluster's members can also be off its mean by this much)")


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
        remedy = (f"use a wider table or train with --aperture {obs.coverage_radius:.2f}"
                  if obs.coverage_radius >= 0.5 * aperture else
                  "use a table that covers the aperture (a member list cut to a small radius? "
                  "coordinates in another unit than degrees?)")
        out.append(f"the table reaches only {obs.coverage_radius:.2f} h^-1 Mpc from the centre "
                   f"(inside the velocity window) but the model's aperture is {aperture} h^-1 "
                   "Mpc: the outer cylinder is missing, so richness and interloper fraction "
                   f"differ from training; {remedy}")
    vmin, vmax = obs.velocity_span
    if obs.n_gal >= 30 and (vmin > -0.75 * v_cut or vmax < 0.75 * v_cut):
        out.append(f"inside the aperture the table spans only v_los = {vmin:.0f} .. {vmax:.0f} "
                   f"km/s of the model's +-{v_cut:g} km/s window: a pre-selected member list? "
                   "The model expects every galaxy in the window, interlopers included")
    return out


def edge_warning(draws: np.ndarray, log_m_range: tuple[float, float]) -> str | None:
    """The warning for a 95 % interval within 0.05 dex of the prior range's edge.

    Args:
        draws: posterior draws of log10(M200c / h^-1 Msun).
        log_m_range: the training prior's range, log10(M200c / h^-1 Msun).
    """
    lo, hi = log_m_range
    p_lo, p_hi = np.percentile(draws, [2.5, 97.5])
    if p_lo < lo + 0.05 or p_hi > hi - 0.05:
        side = "lower" if p_lo < lo + 0.05 else "upper"
        return (f"the posterior reaches the {side} edge of the training range "
                f"[{lo:.2f}, {hi:.2f}]; the mass may lie outside it and the posterior is "
                "truncated there")
    return None


def leakage_warning(leakage: float, log_m_range: tuple[float, float]) -> str | None:
    """The warning for more than :data:`LEAKAGE_WARN` of the flow's draws outside the prior.

    Args:
        leakage: the cluster's share of flow draws outside the prior range.
        log_m_range: the prior range, log10(M200c / h^-1 Msun).
    """
    if not leakage > LEAKAGE_WARN:
        return None
    lo, hi = log_m_range
    return (f"{100 * leakage:.0f} % of the flow's draws fell outside the prior range "
            f"[{lo}, {hi}] and were rejected: the cluster is at the edge of, or outside, what "
            "the model was trained on")


def cluster_warnings(obs: FieldObservation, trained_on: dict, draws: np.ndarray,
                     leakage: float, offset: tuple[float, float] | None,
                     n_used: int | None = None) -> list[str]:
    """Every warning of one posterior, in the order the summary lists them.

    Args:
        obs: the observed cylinder.
        trained_on: the bundle's ``trained_on``.
        draws: the posterior draws, log10(M200c / h^-1 Msun).
        leakage: the share of the flow's draws outside the prior range.
        offset: the members' mean velocity and its error [km/s] to test against the given
            redshift; None when the redshift was moved to the members (``--refine-z``).
        n_used: galaxies per posterior after subsampling (default: all of the cylinder's).
    """
    lo_hi = prior_range(trained_on)
    out = mismatch_warnings(obs, trained_on, n_used)
    checks = [velocity_offset_warning(*offset, obs.center[2]) if offset is not None else None,
              edge_warning(draws, lo_hi), leakage_warning(leakage, lo_hi)]
    return out + [w for w in checks if w]
