"""Frozen, validated configuration of the cluster simulator.

Every physical component has its own dataclass; each default names the paper it comes from.
Units: masses log10(h^-1 Msun), lengths physical h^-1 Mpc (or in units of R200c where the name
says so), velocities km/s.

References used below:
    [DK19]  Diemer & Joyce 2019, ApJ 871, 168 (concentration-mass, colossus ``diemer19``).
    [JS02]  Jing & Suto 2002, ApJ 574, 538 (triaxial halo shapes).
    [KE05]  Kasun & Evrard 2005, ApJ 629, 781 (velocity ellipsoid aligned with the shape).
    [ML05]  Mamon & Lokas 2005, MNRAS 363, 705; [MBB13] Mamon, Biviano & Boue 2013, MNRAS 429,
            3079 (anisotropy profile beta(r) = beta_inf r / (r + r_a), r_a ~ r_s).
    [Z07]   Zheng et al. 2007, ApJ 667, 760 (central + Poisson satellite occupation).
    [DK14]  Diemer & Kravtsov 2014, ApJ 789, 1 (steepening beyond ~R200c; splashback).
    [T08]   Tinker et al. 2008, ApJ 688, 709 (halo mass function); [T10] Tinker et al. 2010,
            ApJ 724, 878 (halo bias).
    [C99]   Croft, Dalton & Efstathiou 1999, MNRAS 305, 547 (mean infall velocity profile).
    [H19]   Ho et al. 2019, ApJ 887, 25, arXiv:1902.05950 (z = 0.117, cylinder R_ap = 1.6 h^-1 Mpc,
            v_cut = 2200 km/s, N_min = 10, M* > 10^9.5 h^-1 Msun galaxies).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Literal

from pyro_clusters import defaults

__all__ = [
    "EnvironmentConfig",
    "HaloConfig",
    "ObservationConfig",
    "OccupationConfig",
    "SimulatorConfig",
    "SUPPORTED_LOG_MASS_RANGE",
]

#: log10(M200c / h^-1 Msun) range over which the simulator's tables and relations are built.
SUPPORTED_LOG_MASS_RANGE = (13.0, 16.0)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True)
class HaloConfig:
    """The main halo: concentration, shape, anisotropy, membership extent, substructure.

    Attributes:
        concentration_model: colossus c-M model for c200c [DK19].
        concentration_scatter_dex: log-normal scatter of c at fixed mass; 0.16 dex [DK19].
        tracer_concentration_ratio: c_galaxies / c_dark-matter of the satellite number-density
            profile (satellites are less concentrated than dark matter; ~0.6, Budzynski et al.
            2012, MNRAS 423, 104).
        truncation_radius_r200: u_t of the soft fall-off of bound satellites,
            nu(r) = nu_NFW(r) / (1 + (r / (u_t R200c))^4), placing the edge between R200c and the
            splashback radius (~1.3-2 R200c, [DK14]).
        max_radius_r200: satellites are bound out to at most this many R200c.
        triaxial: draw a triaxial shape and a random orientation [JS02]; else spherical.
        velocity_shape_exponent: eta in sigma_i ∝ a_i^eta for the velocity ellipsoid aligned with
            the shape axes a_i (volume-normalised); [KE05] find the velocity ellipsoid rounder
            than the mass, eta ~ 0.5.
        anisotropic: use beta(r) = beta_inf r / (r + r_s) [ML05, MBB13]; else isotropic.
        beta_inf_range: uniform range of beta_inf drawn per cluster ([MBB13]: 0-0.6).
        substructure_fraction: fraction of clusters with an infalling group of satellites.
        substructure_member_fraction: range of the share of satellites that belong to the group.
        merger_fraction: fraction of clusters with a merging secondary halo.
        merger_mass_ratio_range: range of M_secondary / M_main for mergers.
        satellite_velocity_bias: b_v = sigma_satellites / sigma_Jeans(dark matter). Galaxies
            painted on DM-only subhalos (as UniverseMachine on MDPL2/Uchuu) are hotter than the
            dark matter, b_v ~ 1.1 (Munari et al. 2013, MNRAS 430, 2638; Lau, Nagai & Kravtsov
            2010, ApJ 708, 1419); 1 switches it off.
        bulk_velocity_dispersion_kms: 1-D dispersion of the cluster's own peculiar velocity.
    """

    concentration_model: str = "diemer19"
    concentration_scatter_dex: float = 0.16
    tracer_concentration_ratio: float = 0.6
    truncation_radius_r200: float = 1.5
    max_radius_r200: float = 3.0
    triaxial: bool = True
    velocity_shape_exponent: float = 0.5
    anisotropic: bool = True
    beta_inf_range: tuple[float, float] = (0.0, 0.6)
    substructure_fraction: float = 0.3
    substructure_member_fraction: tuple[float, float] = (0.05, 0.2)
    merger_fraction: float = 0.1
    merger_mass_ratio_range: tuple[float, float] = (0.1, 0.5)
    satellite_velocity_bias: float = 1.1
    bulk_velocity_dispersion_kms: float = 300.0

    def __post_init__(self) -> None:
        _check(self.concentration_scatter_dex >= 0, "concentration_scatter_dex must be >= 0")
        _check(self.tracer_concentration_ratio > 0, "tracer_concentration_ratio must be > 0")
        _check(self.truncation_radius_r200 > 0, "truncation_radius_r200 must be > 0")
        _check(self.max_radius_r200 > 0, "max_radius_r200 must be > 0")
        _check(0 <= self.beta_inf_range[0] <= self.beta_inf_range[1] < 1, "0 <= beta_inf < 1")
        _check(0 <= self.substructure_fraction <= 1, "substructure_fraction must be in [0, 1]")
        lo, hi = self.substructure_member_fraction
        _check(0 < lo <= hi < 1, "substructure_member_fraction must be in (0, 1)")
        _check(0 <= self.merger_fraction <= 1, "merger_fraction must be in [0, 1]")
        lo, hi = self.merger_mass_ratio_range
        _check(0 < lo <= hi <= 1, "merger_mass_ratio_range must be in (0, 1]")
        _check(self.velocity_shape_exponent >= 0, "velocity_shape_exponent must be >= 0")
        _check(self.bulk_velocity_dispersion_kms >= 0, "bulk_velocity_dispersion_kms >= 0")
        _check(self.satellite_velocity_bias > 0, "satellite_velocity_bias must be > 0")


@dataclass(frozen=True)
class OccupationConfig:
    """Galaxies per halo: a central plus Poisson satellites [Z07], with log-normal scatter.

    <N_cen>(M) = 0.5 [1 + erf((log M - log M_min) / sigma_logM)],
    <N_sat>(M) = <N_cen> ((M - M_0) / M_1)^alpha, times a per-halo log-normal factor.
    Defaults describe galaxies above M* ~ 10^9.5 h^-1 Msun [H19]; log M_1 is set so that the
    median member count at log M = 14.2 is ~40 (the band 30-50 of the design card).

    Attributes:
        log_m_min: log10 M_min [h^-1 Msun].
        sigma_log_m: width of the central occupation step.
        log_m0: log10 M_0 [h^-1 Msun], satellite cut-off mass.
        log_m1: log10 M_1 [h^-1 Msun], mass with one satellite.
        alpha: satellite power-law slope.
        richness_scatter_ln: intrinsic scatter of ln N_sat at fixed mass (simulations: 0.15-0.25).
        log_mstar_min: the galaxy selection these parameters describe, log10(M* / h^-1 Msun)
            (survey depth; :func:`pyro_clusters.simulator.depth.at_depth` moves the others
            with it).
    """

    log_m_min: float = 11.35
    sigma_log_m: float = 0.25
    log_m0: float = 11.2
    log_m1: float = 12.55
    alpha: float = 1.0
    richness_scatter_ln: float = 0.2
    log_mstar_min: float = 9.5

    def __post_init__(self) -> None:
        _check(self.sigma_log_m > 0, "sigma_log_m must be > 0")
        _check(self.alpha > 0, "alpha must be > 0")
        _check(self.richness_scatter_ln >= 0, "richness_scatter_ln must be >= 0")
        _check(self.log_m1 > self.log_m0, "log_m1 must exceed log_m0")


@dataclass(frozen=True)
class EnvironmentConfig:
    """Everything around the cluster that the cylinder can catch (cylinder setup only).

    Attributes:
        neighbours: neighbour halos from the halo mass function [T08], clustered around the
            cluster with linear bias [T10] (1 + b_c b_n xi_lin(r)), with halo exclusion
            (no neighbour centre within R200c_cluster + R200c_neighbour).
        neighbour_log_m_range: log10 mass range of neighbour halos [h^-1 Msun]; the lower end lies
            below the central-occupation step so that small halos' centrals are included.
        field_density: number density of isolated field galaxies not in any modelled halo
            [comoving h^3 Mpc^-3].
        infall: mean radial infall towards the cluster, v = -(1/3) f H r delta / (1+delta)^(1/4)
            [C99], with delta the mean overdensity inside r (NFW + linear 2-halo term).
        pairwise_dispersion_kms: 1-D random velocity of neighbour halos and field galaxies
            about the mean infall.
        margin_radius: extra projected radius beyond R_ap where neighbours are generated
            (their satellites can reach into the aperture) [h^-1 Mpc].
        margin_velocity_kms: extra velocity depth beyond v_cut where the environment is
            generated, to cover infall and dispersion [km/s].
    """

    neighbours: bool = True
    neighbour_log_m_range: tuple[float, float] = (10.8, 15.5)
    field_density: float = 0.003
    infall: bool = True
    pairwise_dispersion_kms: float = 300.0
    margin_radius: float = 1.0
    margin_velocity_kms: float = 2500.0

    def __post_init__(self) -> None:
        lo, hi = self.neighbour_log_m_range
        _check(9.0 <= lo < hi <= 16.0, "neighbour_log_m_range must lie in [9, 16] and be ordered")
        _check(self.field_density >= 0, "field_density must be >= 0")
        _check(self.pairwise_dispersion_kms >= 0, "pairwise_dispersion_kms must be >= 0")
        _check(self.margin_radius >= 0, "margin_radius must be >= 0")
        _check(self.margin_velocity_kms >= 0, "margin_velocity_kms must be >= 0")


@dataclass(frozen=True)
class ObservationConfig:
    """Projection and selection.

    Attributes:
        aperture: R_ap, projected radius of the cylinder [physical h^-1 Mpc]; 1.6 [H19].
        v_cut: half-length of the cylinder in v_los [km/s]; 2200 [H19].
        n_min: clusters with fewer galaxies are discarded; 10 [H19].
        hubble_flow: compose v_los relativistically with the Hubble flow [H19 appendix].
        velocity_error_kms: Gaussian redshift error per galaxy [km/s]; 0 switches it off.
        incompleteness: probability that an observable galaxy is missed; 0 switches it off.
        fiber_collision_arcsec: fibre-collision scale of a fibre-fed survey [arcsec]: of two
            galaxies closer than this on the sky one may get no redshift (55 for SDSS,
            Strauss et al. 2002, AJ 124, 1810); 0 switches it off. Dense cores lose most.
        fiber_collision_loss: probability that a target left without a fibre loses its
            redshift (the SDSS tiling resolves collisions only where plates overlap, about a
            third of the area: 0.7, Blanton et al. 2003, AJ 125, 2276).
    """

    aperture: float = defaults.APERTURE
    v_cut: float = defaults.V_CUT
    n_min: int = defaults.N_MIN
    hubble_flow: bool = True
    velocity_error_kms: float = 0.0
    incompleteness: float = 0.0
    fiber_collision_arcsec: float = 0.0
    fiber_collision_loss: float = 0.7

    def __post_init__(self) -> None:
        _check(self.aperture > 0, f"aperture must be > 0 h^-1 Mpc, got {self.aperture}")
        _check(self.v_cut > 0, f"v_cut must be > 0 km/s, got {self.v_cut}")
        _check(self.n_min >= 2, f"n_min must be >= 2 (a dispersion needs two), got {self.n_min}")
        _check(self.velocity_error_kms >= 0, "velocity_error_kms must be >= 0")
        _check(0 <= self.incompleteness < 1, "incompleteness must be in [0, 1)")
        _check(self.fiber_collision_arcsec >= 0, "fiber_collision_arcsec must be >= 0")
        _check(0 <= self.fiber_collision_loss <= 1, "fiber_collision_loss must be in [0, 1]")


@dataclass(frozen=True)
class SimulatorConfig:
    """The whole simulator.

    Attributes:
        setup: ``"idealized"`` (true members only, no aperture) or ``"cylinder"`` (every galaxy
            in the cylinder R_proj <= R_ap, |v_los| <= v_cut, interlopers included) [H19, 002].
        z: cluster redshift; 0.117 [H19].
        halo, occupation, environment, observation: the components.
    """

    setup: Literal["idealized", "cylinder"] = "cylinder"
    z: float = defaults.Z
    halo: HaloConfig = field(default_factory=HaloConfig)
    occupation: OccupationConfig = field(default_factory=OccupationConfig)
    environment: EnvironmentConfig = field(default_factory=EnvironmentConfig)
    observation: ObservationConfig = field(default_factory=ObservationConfig)

    def __post_init__(self) -> None:
        _check(self.setup in ("idealized", "cylinder"), f"unknown setup {self.setup!r}")
        _check(0 <= self.z <= 2.0, f"z must be in [0, 2], got {self.z}")

    @classmethod
    def spherical(cls, **changes) -> SimulatorConfig:
        """The spherical, equilibrium configuration whose likelihood is tractable.

        Idealized setup (true members only); no triaxiality, substructure or mergers; the NFW
        tracer (truncated as in :class:`HaloConfig`), the anisotropy family and the satellite
        velocity bias are kept. Its galaxies are independent draws from the phase-space
        density of :mod:`pyro_clusters.simulator.likelihood`, which makes exact posteriors
        possible (the ``jeans_exact`` estimator). ``changes`` replace top-level fields.
        """
        halo = HaloConfig(triaxial=False, substructure_fraction=0.0, merger_fraction=0.0)
        return dataclasses.replace(cls(setup="idealized", halo=halo), **changes)

    @property
    def is_spherical(self) -> bool:
        """Whether this is a configuration :meth:`spherical` describes.

        Any redshift, occupation, tracer profile, anisotropy range and velocity errors.
        """
        h = self.halo
        return (self.setup == "idealized" and not h.triaxial and h.substructure_fraction == 0
                and h.merger_fraction == 0 and self.observation.incompleteness == 0)

    def replace(self, **changes) -> SimulatorConfig:
        """Return a copy with top-level fields replaced (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain-dict form (JSON-serialisable)."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """JSON form, stored with every dataset."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> SimulatorConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``TypeError``."""
        data = dict(data)

        def tuples(d: dict) -> dict:
            return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}

        return cls(
            setup=data.pop("setup", "cylinder"),
            z=data.pop("z", defaults.Z),
            halo=HaloConfig(**tuples(data.pop("halo", {}))),
            occupation=OccupationConfig(**tuples(data.pop("occupation", {}))),
            environment=EnvironmentConfig(**tuples(data.pop("environment", {}))),
            observation=ObservationConfig(**tuples(data.pop("observation", {}))),
            **data,
        )

    @classmethod
    def from_json(cls, text: str) -> SimulatorConfig:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))
