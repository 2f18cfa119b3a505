r"""Simulate a dataset of observed clusters to HDF5.

Usage::

    python -m pyro_clusters.simulate --setup {idealized,cylinder} --prior {flat,hmf} \\
        --n N --seed S --out FILE [--workers W] [--batch-size B] [--log-m-min LO] [--log-m-max HI]

The n clusters are made in fixed batches; batch i uses the i-th child of
``SeedSequence(seed)`` and yields exactly its share of selected clusters, so the same seed gives
a bit-identical file for any number of workers. Batches are streamed into a temporary file that
is renamed at the end (:class:`~pyro_clusters.data.hdf5.DatasetWriter`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from pyro_clusters.data.clusters import ClusterSet
from pyro_clusters.data.hdf5 import DatasetWriter, check_writable
from pyro_clusters.simulator.config import SimulatorConfig
from pyro_clusters.simulator.core import simulate_selected
from pyro_clusters.simulator.priors import make_sampler

__all__ = ["main", "simulate_to_file"]


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


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(prog="python -m pyro_clusters.simulate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--setup", choices=["idealized", "cylinder"], required=True)
    p.add_argument("--prior", choices=["flat", "hmf"], default="flat",
                   help="flat in log M (training) or the halo mass function (test sets)")
    p.add_argument("--n", type=int, required=True, help="number of clusters (after N_min)")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", type=Path, required=True, help="output HDF5 file")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--log-m-min", type=float, default=None,
                   help="lower log10(M200c / h^-1 Msun) (flat: 13.5, hmf: 14.0)")
    p.add_argument("--log-m-max", type=float, default=None,
                   help="upper log10(M200c / h^-1 Msun) (flat: 15.5, hmf: 15.3)")
    p.add_argument("--z", type=float, default=0.117, help="cluster redshift")
    p.add_argument("--aperture", type=float, default=1.6, help="R_ap [h^-1 Mpc]")
    p.add_argument("--v-cut", type=float, default=2200.0, help="v_cut [km/s]")
    p.add_argument("--n-min", type=int, default=10, help="minimum galaxies per cluster")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        base = SimulatorConfig()
        config = SimulatorConfig(
            setup=args.setup, z=args.z,
            observation=dataclasses.replace(base.observation, aperture=args.aperture,
                                            v_cut=args.v_cut, n_min=args.n_min),
        )
        sampler = make_sampler(args.prior, args.log_m_min, args.log_m_max, z=args.z)
        path = simulate_to_file(args.out, args.n, config, sampler, args.seed, args.workers,
                                args.batch_size, progress=not args.no_progress)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.n} clusters to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
