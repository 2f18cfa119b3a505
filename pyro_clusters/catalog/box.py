r"""The periodic box of a catalogue and the settings of its mock observations.

:class:`CatalogBox` holds a catalogue's halos and galaxies in a periodic KD-tree
(:class:`scipy.spatial.cKDTree` with ``boxsize``) and finds each halo's candidate galaxies: one
ball of radius sqrt(R_ap'^2 + l_max^2), l_max the comoving depth at which the Hubble flow alone
exceeds v_cut plus the largest peculiar-velocity difference in the catalogue, so the ball
provably holds every galaxy any of the halo's cylinders can select. :class:`CatalogMockConfig`
is the recipe's settings (Ho et al. 2019, arXiv:1902.05950, sections 2.2-2.4; Wang, Thiele &
Ho 2026 section 4.1). :mod:`~pyro_clusters.catalog.mocks` observes the boxes' sightlines and
writes the datasets.
"""

from __future__ import annotations

import dataclasses
import threading
import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from pyro_clusters.catalog.schema import Catalog, CatalogError
from pyro_clusters.cosmology import C_KMS, colossus_cosmology, distance_table, los_velocity, r200c
from pyro_clusters.simulator.config import ObservationConfig, SimulatorConfig

__all__ = ["FLAT_DENSITY", "STELLAR_MASS_MIN", "CatalogBox", "CatalogMockConfig", "min_image"]

#: galaxy selection of Ho et al. 2019 (arXiv:1902.05950): M* >= this [h^-1 Msun].
STELLAR_MASS_MIN = 10**9.5
#: views per volume and dex of the flat training mass function [h^3 Mpc^-3 dex^-1] (ibid.).
FLAT_DENSITY = 10**-5.2


@dataclass(frozen=True)
class CatalogMockConfig:
    """How a catalogue becomes datasets.

    Attributes:
        setup: ``"idealized"`` (true members at any radius) or ``"cylinder"`` (every galaxy in
            the cylinder, interlopers included).
        log_m_min: cluster candidates, log10(M200c / h^-1 Msun) >= this; 13.5 (Ho et al. 2019).
        stellar_mass_min: galaxies, M* >= this [h^-1 Msun]; 10^9.5 (Ho et al. 2019).
        observation: aperture, v_cut, N_min, errors (the simulator's observation settings).
        fractions: shares of halos in train, val, test (split by halo id).
        density: flat training mass function, views per volume per dex
            [h^3 Mpc^-3 dex^-1]; 10^-5.2 (Ho et al. 2019 section 2.3). Val and test_flat use the
            same density times their share of the halos.
        bin_width: mass bins of the flat mass function [dex].
        max_views: cap on views of one halo (up-sampling of the rarest halos).
        test_range: log-mass range of the natural test set (None: all candidates); Ho et al. 2019
            uses 14-15.
        chunk_halos: halos per unit of work (bounds memory).
        seed: seed of the split, the view sampling and the observation noise.
        redshift: redshift at which the clusters are observed (None: the snapshot's). A z = 0
            snapshot needs one: its clusters would sit at the observer, with the galaxies in
            front of them at negative distances. The box is then treated as at this redshift
            (comoving coordinates and peculiar velocities as given; the change of H(z) and of
            the comoving-to-physical factor between the two redshifts is neglected: under 5 %
            below z = 0.1).
    """

    setup: Literal["idealized", "cylinder"] = "cylinder"
    log_m_min: float = 13.5
    stellar_mass_min: float = STELLAR_MASS_MIN
    observation: ObservationConfig = field(default_factory=ObservationConfig)
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    density: float = FLAT_DENSITY
    bin_width: float = 0.1
    max_views: int = 64
    test_range: tuple[float, float] | None = None
    chunk_halos: int = 256
    seed: int = 0
    redshift: float | None = None

    def __post_init__(self) -> None:
        if self.setup not in ("idealized", "cylinder"):
            raise ValueError(f"setup must be 'idealized' or 'cylinder', got {self.setup!r}")
        if self.density <= 0 or self.bin_width <= 0 or self.max_views < 3:
            raise ValueError("density and bin_width must be > 0 and max_views >= 3")
        if self.chunk_halos < 1:
            raise ValueError("chunk_halos must be >= 1")
        if self.redshift is not None and not 0.0 < self.redshift < 3.0:
            raise ValueError(f"the observation redshift must be in (0, 3), got {self.redshift}")

    def to_dict(self) -> dict:
        """The configuration as plain JSON-able values."""
        return dataclasses.asdict(self)


class CatalogBox:
    """A catalogue ready for observation: selected galaxies, membership index, periodic tree.

    Args:
        catalog: the validated catalogue.
        config: mock configuration (galaxy selection, setup, observation).
    """

    def __init__(self, catalog: Catalog, config: CatalogMockConfig):
        self.config = config
        self.box = catalog.box_size
        self.snapshot_z = catalog.redshift
        self.z = catalog.redshift if config.redshift is None else config.redshift
        if self.z <= 0.0:
            raise CatalogError(
                f"the snapshot {catalog.source or ''} is at z = {catalog.redshift:g}: its clusters "
                "would sit at the observer, with the galaxies in front of them at negative "
                "distances. Observe it at a redshift: --redshift Z (e.g. 0.05; Ho et al. 2019 "
                "observe MDPL2 at 0.117)")
        self.cosmology = dict(catalog.cosmology)
        self.source = catalog.source
        self.table = distance_table(params=tuple(sorted(self.cosmology.items())))
        self.sim = SimulatorConfig(setup=config.setup, z=self.z, observation=config.observation)
        h = catalog.halos
        self.halo_id = h["id"].astype(np.int64)
        self.log_m = np.log10(h["m200c"])
        self.halo_pos = catalog.halo_positions()
        self.halo_vel = catalog.halo_velocities()
        cosmo = colossus_cosmology(self.cosmology)
        # R200c [physical h^-1 Mpc]: the catalogue's, or from M200c in its cosmology
        self.r200c = (h["r200c"] / (1.0 + self.z) if "r200c" in h
                      else r200c(h["m200c"], self.z, cosmo))
        # H(z) [km/s per physical h^-1 Mpc] and the line-of-sight Hubble flow v_H(l) on a
        # fine grid of physical offsets l (Ho et al. 2019 eqs. 17-22), tabulated once
        self._hubble = 100.0 * float(cosmo.Ez(self.z))
        self._ell = np.linspace(0.0, 3000.0, 30001)
        self._v_h = los_velocity(self.z, self._ell, np.zeros_like(self._ell), 0.0,
                                 table=self.table)
        g = catalog.galaxies
        keep = g["stellar_mass"] >= config.stellar_mass_min
        self.pos = catalog.galaxy_positions()[keep]
        self.vel = catalog.galaxy_velocities()[keep]
        self.host = g["host_id"][keep].astype(np.int64)
        self.central = g["central"][keep].astype(bool)
        # membership index: galaxies sorted by host id
        self._by_host = np.argsort(self.host, kind="stable")
        self._host_sorted = self.host[self._by_host]
        lo, hi = self._member_range(self.halo_id)
        self.richness_3d = hi - lo
        self._trees: dict = {}
        self._lock = threading.Lock()  # trees are built lazily, once, under worker threads
        speed = np.linalg.norm(self.vel, axis=1)
        self._v_fast = float(np.percentile(speed, 99.9)) if speed.size else 0.0
        self.fast = np.flatnonzero(speed > self._v_fast)
        self._halo_speed = np.linalg.norm(self.halo_vel, axis=1)
        # Hubble flow per physical h^-1 Mpc of line-of-sight offset [km/s per h^-1 Mpc]
        self._h_eff = config.observation.v_cut / self._hubble_depth(config.observation.v_cut)
        reach = self._query_radius(self._halo_speed.max(initial=0.0))
        if self.table.distance(self.z) <= reach:
            z_min = float(self.table.redshift(1.1 * reach))
            raise CatalogError(
                f"at z = {self.z:g} a cylinder reaches {reach:.1f} h^-1 Mpc in front of its "
                f"cluster, beyond the observer (at {self.table.distance(self.z):.1f} h^-1 Mpc): "
                f"observe the box at z >= {z_min:.3f} (--redshift)")
        if config.setup == "cylinder" and reach > self.box / 2:
            warnings.warn(
                f"a cylinder seen off the box axes may reach {reach:.1f} h^-1 Mpc (comoving) "
                f"from its centre, more than half the box ({self.box / 2:g}); each galaxy is "
                "seen once, at its nearest periodic image", stacklevel=2)

    def _member_range(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (np.searchsorted(self._host_sorted, ids, "left"),
                np.searchsorted(self._host_sorted, ids, "right"))

    def _hubble_depth(self, dv: float) -> float:
        """Physical line-of-sight offset [h^-1 Mpc] whose Hubble flow is ``dv`` [km/s].

        Ho et al. 2019, eqs. 17-22, monotonic in the offset; read off the grid tabulated once.
        """
        return float(np.interp(min(dv, 0.5 * C_KMS), self._v_h, self._ell))

    def _query_radius(self, v_halo: float) -> float:
        """Comoving radius of a real-space ball holding all a cylinder can select (off-axis views).

        |v_los| <= v_cut needs the Hubble flow across the offset to be cancelled by peculiar
        velocities, at most |v_gal| + |v_halo| (+ 6 sigma of the velocity error) apart, so the
        offset is at most the depth whose Hubble flow is v_cut plus that (2 % margin for the
        relativistic terms, < 1 % of it). The ball uses |v_gal| <= the 99.9th
        percentile; the faster galaxies (``self.fast``) are added to every off-axis query.

        Args:
            v_halo: speed of the halo [km/s].
        """
        obs = self.config.observation
        dv = self._v_fast + v_halo + 6.0 * obs.velocity_error_kms
        return float(np.hypot(obs.aperture, 1.02 * self._hubble_depth(obs.v_cut + dv))
                     * (1.0 + self.z))

    def _redshift_space(self, axis: int):
        """Periodic KD-tree of the galaxies in redshift space along a box axis, stretched.

        Along the axis a galaxy sits at s = x + v (1 + z) / H(z) (comoving; v the peculiar
        velocity in km/s, H in km/s per physical h^-1 Mpc): |v_los| <= v_cut means
        |s_gal - s_halo| <= l_cut up to relativistic terms (at z = 0.117 at most 13 km/s,
        0.6 % of v_cut, for peculiar velocities up to 4000 km/s; margin 3 % + 6 sigma of the
        velocity error). Dividing s by k = l_cut / R_ap' turns the cylinder
        (R_ap', l_cut) into one of radius and half-length R_ap', inside a ball of radius
        sqrt(2) R_ap' (the tree's periodic box is (L, L, L / k)).

        Returns:
            (tree, f, k, radius): the tree, the velocity-to-offset factor f = (1 + z) / H
            [comoving h^-1 Mpc per km/s], the stretch k, the query radius.
        """
        with self._lock:
            if axis not in self._trees:
                self._trees[axis] = self._build_redshift_space(axis)
        return self._trees[axis]

    def _build_redshift_space(self, axis: int):
        from scipy.spatial import cKDTree

        obs = self.config.observation
        a = 1.0 + self.z
        f = a / self._hubble
        l_cut = 1.03 * self._hubble_depth(obs.v_cut + 6.0 * obs.velocity_error_kms) * a
        r_ap = obs.aperture * a
        k = max(l_cut / r_ap, 1.0)
        perp = [i for i in range(3) if i != axis]
        s = np.mod(self.pos[:, axis] + f * self.vel[:, axis], self.box)
        pts = np.column_stack([self.pos[:, perp[0]], self.pos[:, perp[1]], s / k])
        pts[:, 2] = np.minimum(pts[:, 2], np.nextafter(self.box / k, 0))
        tree = cKDTree(pts, boxsize=[self.box, self.box, self.box / k])
        return tree, f, k, float(np.hypot(r_ap, l_cut / k))

    def _real_space(self):
        from scipy.spatial import cKDTree

        with self._lock:
            if "real" not in self._trees:
                self._trees["real"] = cKDTree(self.pos, boxsize=self.box)
        return self._trees["real"]

    def members(self, row: int) -> np.ndarray:
        """Indices of the selected galaxies bound to halo ``row`` (host id = its id)."""
        lo, hi = self._member_range(self.halo_id[row : row + 1])
        return self._by_host[lo[0] : hi[0]]

    def candidates(self, row: int, direction: np.ndarray) -> np.ndarray:
        """Galaxy indices that the view of halo ``row`` along ``direction`` may select.

        Idealized: the halo's members. Cylinder: a superset of the cylinder's galaxies, from
        the redshift-space tree of a box axis, or for other directions the real-space ball of
        :meth:`_query_radius` plus the fastest galaxies; the observation code makes the exact
        cut.
        """
        if self.config.setup == "idealized":
            return self.members(row)
        axis = np.flatnonzero(np.abs(direction) == 1.0)
        if axis.size == 1:
            a = int(axis[0])
            tree, f, k, radius = self._redshift_space(a)
            perp = [i for i in range(3) if i != a]
            c = self.halo_pos[row]
            s = np.mod(c[a] + f * self.halo_vel[row, a], self.box) / k
            centre = np.array([c[perp[0]], c[perp[1]], min(s, np.nextafter(self.box / k, 0))])
            found = tree.query_ball_point(centre, radius)
        else:
            found = self._real_space().query_ball_point(
                self.halo_pos[row], self._query_radius(self._halo_speed[row]))
            cand = np.union1d(np.asarray(found, dtype=np.int64), self.fast)
            # the fast galaxies come from anywhere in the box: keep those whose line-of-sight
            # offset their own velocity can bring inside v_cut (linear Hubble law, 5 % margin
            # for the < 1 % relativistic terms)
            obs = self.config.observation
            ell = min_image(self.pos[cand] - self.halo_pos[row], self.box) @ direction
            dv = np.abs((self.vel[cand] - self.halo_vel[row]) @ direction)
            reach = 1.05 * (obs.v_cut + dv + 6.0 * obs.velocity_error_kms) / self._h_eff
            return cand[np.abs(ell) / (1.0 + self.z) <= reach]
        return np.sort(np.asarray(found, dtype=np.int64))


def min_image(d: np.ndarray, box: float) -> np.ndarray:
    """Minimum-image displacement, each component in [-box/2, box/2].

    Wang, Thiele & Ho 2026, section 4.1.
    """
    return d - box * np.round(d / box)
