r"""Simulate a dataset of observed clusters to HDF5 (``python -m pyro_clusters simulate``).

The n clusters are made in fixed batches; batch i uses the i-th child of
``SeedSequence(seed)`` and yields exactly its share of selected clusters, so the same seed gives
a bit-identical file for any number of workers. Batches are streamed into a temporary file that
is renamed at the end (:class:`~pyro_clusters.data.hdf5.DatasetWriter`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from pyro_clusters.data.clusters import ClusterSet
from pyro_clusters.data.hdf5 import DatasetWriter, check_writable
from pyro_clusters.simulator.config import SimulatorConfig
from pyro_clusters.simulator.core import simulate_selected

__all__ = ["simulate_to_file"]


def _batch(size: int, seed: np.random.SeedSequence, sampler, config: SimulatorConfig
           ) -> tuple[ClusterSet, int]:
    return simulate_selected(size, sampler, config, np.random.default_rng(seed))


def simulate_to_file(
    path: str | Path,
    n: int,
    config: SimulatorConfig,
    sampler,
    seed: int,
    workers: int = 1,
    batch_size: int = 1000,
    progress: bool = True,
) -> Path:
    """Simulate ``n`` selected clusters and stream them to an HDF5 dataset.

    Args:
        path: output file (written atomically).
        n: number of clusters (after the N_min selection).
        config: simulator configuration.
        sampler: theta distribution (:mod:`pyro_clusters.simulator.priors`).
        seed: master seed.
        workers: processes (joblib); the output does not depend on it.
        batch_size: clusters per batch (part of the seed layout: the file depends on it).
        progress: show a progress bar.

    Returns:
        The path written.
    """
    if n <= 0:
        raise ValueError(f"--n must be positive, got {n}")
    if workers < 1 or batch_size < 1:
        raise ValueError("workers and batch_size must be >= 1")
    path = check_writable(path)
    sizes = [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])
    seeds = np.random.SeedSequence(seed).spawn(len(sizes))
    metadata = {
        "config": config.to_dict(),
        "setup": config.setup,
        "seed": seed,
        "batch_size": batch_size,
        "prior": {"name": sampler.name, **{k: v for k, v in dataclasses.asdict(sampler).items()}},
        "units": {"log_m": "log10(M200c / h^-1 Msun)", "x_proj": "h^-1 Mpc (physical)",
                  "y_proj": "h^-1 Mpc (physical)", "v_los": "km/s"},
    }
    jobs = (delayed(_batch)(s, q, sampler, config) for s, q in zip(sizes, seeds, strict=True))
    n_simulated = 0
    with DatasetWriter(path, metadata) as writer, tqdm(
        total=n, unit="cluster", desc=f"{config.setup}/{sampler.name}", disable=not progress
    ) as bar:
        results = Parallel(n_jobs=workers, return_as="generator")(jobs)
        for chunk, tried in results:
            writer.append(chunk)
            n_simulated += tried
            bar.update(len(chunk))
        writer.set_attrs(n_simulated=n_simulated)
    return path
