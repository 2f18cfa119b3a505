"""The train / val / test / test_flat split of a dataset directory.

Every experiment's ``--data DIR`` and ``python -m pyro_clusters train --data DIR`` read their
clusters here: four HDF5 files in the format of :mod:`pyro_clusters.data.hdf5` (flat, flat,
natural mass function, flat), made from an N-body catalogue by ``python -m pyro_clusters
catalog`` or by anything else that writes the same files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pyro_clusters.data.clusters import ClusterSet
from pyro_clusters.data.hdf5 import read_dataset

__all__ = ["SPLITS", "read_datasets"]

#: the split names, in the order they are made.
SPLITS = ("train", "val", "test", "test_flat")


def read_datasets(data: str | Path, setup: str, rng: np.random.Generator | None = None,
                  caps: dict[str, int] | None = None, splits: tuple[str, ...] = SPLITS
                  ) -> dict[str, ClusterSet]:
    """Read the sets of a dataset directory, checking they were made for ``setup``.

    Args:
        data: a directory with ``train.h5``, ``val.h5``, ``test.h5`` and ``test_flat.h5``
            (as :func:`pyro_clusters.catalog.mocks.build_datasets` writes), or one holding
            ``idealized/`` and ``cylinder/`` such directories.
        setup: ``"idealized"`` or ``"cylinder"``; every file must have been made for it.
        rng: draws the random subsets when ``caps`` limits a set.
        caps: at most this many clusters per split name (random subset, order kept).
        splits: which of ``train``, ``val``, ``test``, ``test_flat`` to read.

    Returns:
        {split: ClusterSet} for each of ``splits``.

    Raises:
        FileNotFoundError: a split file is missing; ValueError: a file is of another setup.
    """
    data = Path(data)
    folder = data / setup if (data / setup / "train.h5").exists() else data
    out = {}
    for name in splits:
        path = folder / f"{name}.h5"
        if not path.exists():
            raise FileNotFoundError(f"--data {data}: {path} is missing (make the sets with "
                                    "python -m pyro_clusters catalog --out DIR)")
        cs, _ = read_dataset(path)
        if cs.attrs.get("setup") != setup:
            raise ValueError(f"--data {data}: {path} holds the {cs.attrs.get('setup')!r} setup, "
                             f"this run needs {setup!r}")
        cap = (caps or {}).get(name)
        if cap is not None and len(cs) > cap:
            rng = rng if rng is not None else np.random.default_rng(0)
            cs = cs.select(np.sort(rng.choice(len(cs), cap, replace=False)))
        out[name] = cs
    return out
