r"""Lines of sight through catalogue halos: axis views, Fibonacci up-sampling, flat mass function.

Ho et al. 2019, section 2.3: every cluster is seen along the three box axes; the training set gets a
flat mass function at a chosen number density of cluster views per volume per dex
(10^-5.2 h^3 Mpc^-3 dex^-1 in the paper) by dropping axis views where halos are abundant and
adding views where they are scarce, the extra directions "distributed with roughly even spacing
on the unit sphere, according to a Fibonacci lattice (González 2010)". The test set keeps the
natural mass function with the three axis views only. Halos are split into train / val / test
by halo id, so that no cluster appears in two sets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["AXES", "Sightlines", "fibonacci_directions", "flat_sightlines", "natural_sightlines",
           "random_rotation", "sky_basis", "split_halos"]

#: The three box axes as lines of sight, (3, 3).
AXES = np.eye(3)
_GOLDEN = (1.0 + 5.0**0.5) / 2.0


def fibonacci_directions(n: int) -> np.ndarray:
    """The n-point spherical Fibonacci lattice: nearly evenly spaced unit vectors (González 2010).

    Point i has cos(theta) = 1 - (2 i + 1) / n and azimuth 2 pi i / phi (phi the golden ratio).

    Returns:
        Unit vectors, (n, 3).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    i = np.arange(n)
    cos_t = 1.0 - (2.0 * i + 1.0) / n
    sin_t = np.sqrt(1.0 - cos_t**2)
    phi = 2.0 * np.pi * i / _GOLDEN
    return np.column_stack([sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t])


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random rotation matrix (QR of a Gaussian matrix, sign-fixed), (3, 3)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def sky_basis(direction: np.ndarray) -> np.ndarray:
    """Orthonormal observer frame of a line of sight, rows (x_hat, y_hat, z_hat), (3, 3).

    z_hat is the line of sight (away from the observer); x_hat is the component of the box
    axis least aligned with it orthogonal to z_hat (Ho et al. 2019 eqs. 15-16 leave the azimuth
    free; the cylinder cut does not depend on it). For the box axes this is a cyclic
    permutation: along z, (x_proj, y_proj) = (x, y).
    """
    z = np.asarray(direction, dtype=float)
    z = z / np.linalg.norm(z)
    ref = np.eye(3)[(int(np.argmax(np.abs(z))) + 1) % 3]
    x = ref - (ref @ z) * z
    x /= np.linalg.norm(x)
    return np.vstack([x, np.cross(z, x), z])


@dataclass
class Sightlines:
    """Which halo is seen along which direction.

    Attributes:
        halo: row of the halo in the catalogue's halo table, (m,); sorted.
        direction: unit line-of-sight vectors, (m, 3).
        view: index of the view within its halo (0-2 the box axes, 3+ Fibonacci), (m,).
    """

    halo: np.ndarray
    direction: np.ndarray
    view: np.ndarray

    def __len__(self) -> int:
        return self.halo.size

    def __post_init__(self) -> None:
        order = np.lexsort((self.view, self.halo))
        self.halo, self.direction, self.view = (self.halo[order], self.direction[order],
                                                self.view[order])


def split_halos(ids: np.ndarray, fractions: tuple[float, float, float], seed: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split halos into train / val / test by id: a seeded permutation of the sorted ids.

    Args:
        ids: halo ids, (n,), unique.
        fractions: train, val, test shares (summing to 1).
        seed: the permutation's seed.

    Returns:
        Three boolean masks over ``ids``, disjoint and covering every halo.
    """
    f = np.asarray(fractions, dtype=float)
    if f.shape != (3,) or np.any(f < 0) or not np.isclose(f.sum(), 1.0):
        raise ValueError(f"fractions must be three shares summing to 1, got {fractions}")
    order = np.argsort(ids, kind="stable")
    perm = order[np.random.default_rng(seed).permutation(ids.size)]
    cut = np.round(np.cumsum(f)[:2] * ids.size).astype(int)
    masks = [np.zeros(ids.size, bool) for _ in range(3)]
    for m, part in zip(masks, np.split(perm, cut), strict=True):
        m[part] = True
    return masks[0], masks[1], masks[2]


def natural_sightlines(rows: np.ndarray) -> Sightlines:
    """The three box-axis views of every halo in ``rows`` (the test set: natural HMF)."""
    rows = np.asarray(rows, dtype=np.int64)
    return Sightlines(np.repeat(rows, 3), np.tile(AXES, (rows.size, 1)),
                      np.tile(np.arange(3), rows.size))


def flat_sightlines(rows: np.ndarray, log_m: np.ndarray, volume: float, density: float,
                    rng: np.random.Generator, bin_width: float = 0.1,
                    max_views: int = 64) -> tuple[Sightlines, dict]:
    """Views with a flat mass function: ``density`` views per unit volume per dex.

    In each ``bin_width`` bin of log M the target number of views is T = density * volume *
    bin_width. Where the bin's halos give 3 N >= T axis views, T of them are drawn without
    replacement (down-sampling); otherwise every halo keeps its axis views and the T - 3 N
    extra views are shared out as evenly as possible, each halo's k extras being a k-point
    Fibonacci lattice turned by a random rotation (up-sampling), at most ``max_views`` per
    halo (Ho et al. 2019 section 2.3).

    Args:
        rows: halo-table rows of the halos to use, (n,).
        log_m: their log10(M200c / h^-1 Msun), (n,).
        volume: the volume they come from [h^-3 Mpc^3].
        density: views per volume per dex [h^3 Mpc^-3 dex^-1].
        rng: random generator.
        bin_width: mass bin [dex].
        max_views: cap on views per halo (where it binds the bin stays below the target).

    Returns:
        The sightlines and a summary: per bin ``lo``, ``n_halos``, ``target``, ``views``.
    """
    rows, log_m = np.asarray(rows, dtype=np.int64), np.asarray(log_m, dtype=float)
    if density <= 0 or volume <= 0:
        raise ValueError("density and volume must be positive")
    target = density * volume * bin_width
    if rows.size == 0:
        return Sightlines(rows, np.zeros((0, 3)), rows.copy()), {"bins": []}
    lo = np.floor(log_m.min() / bin_width) * bin_width
    idx = np.floor((log_m - lo) / bin_width + 1e-9).astype(int)
    halo, direction, view, bins = [], [], [], []
    for b in np.unique(idx):
        members = np.flatnonzero(idx == b)
        n, before = members.size, sum(len(h) for h in halo)
        t = int(np.floor(target + rng.random()))  # unbiased rounding of a fractional target
        if 3 * n >= t:
            pick = rng.choice(3 * n, size=t, replace=False)
            halo.append(rows[members[pick // 3]])
            direction.append(AXES[pick % 3])
            view.append(pick % 3)
        else:
            extra = np.full(n, (t - 3 * n) // n)
            extra[rng.choice(n, size=(t - 3 * n) % n, replace=False)] += 1
            extra = np.minimum(extra, max_views - 3)
            for m, k in zip(members, extra, strict=True):
                dirs = AXES if k == 0 else np.vstack(
                    [AXES, fibonacci_directions(k) @ random_rotation(rng).T])
                halo.append(np.full(len(dirs), rows[m]))
                direction.append(dirs)
                view.append(np.arange(len(dirs)))
        bins.append({"lo": float(lo + b * bin_width), "n_halos": int(n), "target": float(target),
                     "views": int(sum(len(h) for h in halo) - before)})
    return Sightlines(np.concatenate(halo), np.concatenate(direction),
                      np.concatenate(view)), {"bins": bins}
