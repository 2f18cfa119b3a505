"""Simulator speed and memory.

Measures (1) clusters per second of one process for each setup (selected clusters, tables
already built, median of repeats) and (2) wall time and peak resident memory of the whole
process tree while streaming a dataset to HDF5 with ``simulate_to_file``.

    python benchmarks/bench_simulator.py [--n-stream 100000] [--workers 2] [--out DIR]

Targets: >= 1,000 cylinder clusters/s; 100,000 clusters in < 3 minutes; peak RSS
< 1 GB. Figures are recorded in docs/benchmarks.md with the command that produced them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from pyro_clusters.simulator import FlatLogMassPrior, SimulatorConfig, simulate_selected
from pyro_clusters.simulator.files import simulate_to_file


def _rss_tree_mb(root: int) -> float:
    """Resident memory of ``root`` and all its descendants [MB], from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ppid, pages = int(fields[1]), int(fields[21])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = pages
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakMemory:
    """Poll the process tree's RSS in a thread; ``peak_mb`` after the ``with`` block."""

    def __init__(self, interval: float = 0.1):
        self.interval, self.peak_mb = interval, 0.0
        self._stop = threading.Event()

    def _run(self):
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, _rss_tree_mb(os.getpid()))
            time.sleep(self.interval)

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, _rss_tree_mb(os.getpid()))


def throughput(setup: str, n: int, repeats: int, seed: int) -> dict:
    config = SimulatorConfig(setup=setup)
    rng = np.random.default_rng(seed)
    simulate_selected(100, FlatLogMassPrior(), config, rng)  # build cached tables
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        cs, tried = simulate_selected(n, FlatLogMassPrior(), config, rng)
        rates.append(n / (time.perf_counter() - t0))
    return {"setup": setup, "clusters": n, "repeats": repeats,
            "clusters_per_second_median": float(np.median(rates)),
            "clusters_per_second_all": [round(r, 1) for r in rates],
            "mean_galaxies_per_cluster": float(cs.n_gal.mean())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-rate", type=int, default=5000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--n-stream", type=int, default=100_000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--setup", default="cylinder")
    p.add_argument("--out", type=Path, default=None, help="write results JSON here")
    args = p.parse_args()

    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "platform": platform.platform()}}
    results["throughput"] = [throughput(s, args.n_rate, args.repeats, 1)
                             for s in ("idealized", "cylinder")]
    for r in results["throughput"]:
        print(f"{r['setup']:10s} {r['clusters_per_second_median']:8.0f} clusters/s "
              f"(one process; {r['mean_galaxies_per_cluster']:.0f} galaxies/cluster)")

    with tempfile.TemporaryDirectory(dir=".") as tmp:
        path = Path(tmp) / "stream.h5"
        with PeakMemory() as mem:
            t0 = time.perf_counter()
            simulate_to_file(path, args.n_stream, SimulatorConfig(setup=args.setup),
                             FlatLogMassPrior(), seed=0, workers=args.workers, progress=False)
            wall = time.perf_counter() - t0
        size_mb = path.stat().st_size / 2**20
    results["stream"] = {"setup": args.setup, "clusters": args.n_stream,
                         "workers": args.workers, "wall_seconds": wall,
                         "clusters_per_second": args.n_stream / wall,
                         "peak_rss_tree_mb": mem.peak_mb, "file_mb": size_mb}
    print(f"stream {args.n_stream} {args.setup} clusters, {args.workers} workers: {wall:.1f} s "
          f"({args.n_stream / wall:.0f}/s), peak RSS {mem.peak_mb:.0f} MB, file {size_mb:.0f} MB")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench_simulator.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
