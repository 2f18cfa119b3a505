"""Padded batches of ragged clusters for set networks.

A batch of clusters is padded to its largest set with a boolean mask of the real galaxies;
batches are grouped by set size to limit padding (about 1.7x faster per epoch than random
batches, measured in docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pyro_clusters.data.clusters import ragged_to_padded

__all__ = ["PaddedBatch", "make_batches", "pad_features"]


@dataclass
class PaddedBatch:
    """A batch of clusters padded to its largest set.

    Attributes:
        x: (B, N, F) float32 galaxy features, zeros at padding.
        mask: (B, N) bool, True for real galaxies.
        g: (B, G) float32 global features.
        index: (B,) positions of these clusters in the source set.
    """

    x: np.ndarray
    mask: np.ndarray
    g: np.ndarray
    index: np.ndarray


def pad_features(gal: np.ndarray, glob: np.ndarray, offsets: np.ndarray, index: np.ndarray
                 ) -> PaddedBatch:
    """Pad the galaxy features of clusters ``index`` (rows ``offsets[i]:offsets[i+1]``)."""
    x, mask = ragged_to_padded(gal, offsets, index)
    return PaddedBatch(x, mask, glob[index], index)


def make_batches(n_gal: np.ndarray, batch_size: int, rng: np.random.Generator | None = None,
                 by_size: bool = True, max_padded: int | None = None) -> list[np.ndarray]:
    """Split cluster indices into batches, grouped by set size to limit padding.

    Grouping by size is ~1.7x faster per epoch than random batches. With an
    ``rng`` the order within equal sizes and the order of batches are shuffled (training);
    without, batches are deterministic (evaluation).

    Args:
        n_gal: galaxies per cluster, (n,).
        batch_size: clusters per batch (at most).
        rng: generator for shuffling, or None.
        by_size: group by size (else random or sequential batches).
        max_padded: also close a batch (size-grouped only) before its clusters x its largest
            set would exceed this many padded galaxies, so that a few rich clusters do not
            pad a whole batch to their size; every batch holds at least one cluster.

    Returns:
        list of index arrays.
    """
    n = n_gal.size
    if by_size:
        tie = rng.random(n) if rng is not None else np.arange(n)
        order = np.lexsort((tie, n_gal))
    else:
        order = rng.permutation(n) if rng is not None else np.arange(n)
    if max_padded is not None and by_size:
        batches, start = [], 0
        sizes = np.asarray(n_gal)[order]
        while start < n:
            # sorted ascending, so the last cluster of a batch is its largest
            head = np.maximum(sizes[start:start + batch_size], 1)
            fits = np.arange(1, head.size + 1) * head <= max_padded
            k = head.size if fits.all() else max(1, int(np.argmin(fits)))
            batches.append(order[start:start + k])
            start += k
    else:
        batches = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches
