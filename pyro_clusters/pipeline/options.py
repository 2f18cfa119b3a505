"""The command-line options every experiment shares (``python -m experiments.NAME``).

An experiment is a thin script: ``main(argv)`` parses these options (and its own), calls the
library (:mod:`pyro_clusters.pipeline`, :mod:`pyro_clusters.diagnostics`) and writes its
outputs. :func:`size_name` turns ``--quick`` / ``--size`` into a size of
:data:`~pyro_clusters.pipeline.sizes.SIZES`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["experiment_parser", "parse_experiment_args", "size_name"]


def experiment_parser(prog: str, doc: str, sizes: dict, default_out: str,
                      fresh: bool = False, max_epochs: bool = False) -> argparse.ArgumentParser:
    """Parser with the options every experiment takes (callers add their own).

    --quick, --size (one of ``sizes``), --out (default ``default_out``), --seed, --device,
    --no-progress, --max-seconds (an explicit wall-clock budget, never a default), --data
    (datasets made from an N-body catalogue, :func:`load_sets`); with ``fresh``, --fresh
    (train the networks on new clusters every epoch, :func:`fresh_clusters`); with
    ``max_epochs``, --max-epochs (an epoch limit instead of the run size's).
    """
    p = argparse.ArgumentParser(prog=prog, description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small run (a few minutes)")
    p.add_argument("--size", choices=sorted(sizes), default=None,
                   help="explicit size (overrides --quick); 'tiny' is for the test suite")
    p.add_argument("--out", type=Path, default=Path(default_out))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--max-seconds", type=float, default=None, metavar="S",
                   help="wall-clock budget of each network's training [s]; training stops "
                        "after the epoch that passes it (default: none, so that a seed "
                        "reproduces a run: runs stop by epochs and patience)")
    p.add_argument("--data", type=Path, default=None,
                   help="read train/val/test sets from this directory (python -m "
                        "pyro_clusters catalog --out DIR) instead of simulating; capped at "
                        "the run size")
    if fresh:
        p.add_argument("--fresh", action="store_true",
                       help="train the networks on as many newly simulated clusters every "
                            "epoch as the training set holds (their constants are still "
                            "fitted on the training set; reproducible by --seed)")
    if max_epochs:
        p.add_argument("--max-epochs", type=int, default=None,
                       help="epoch limit instead of the size's (recorded in metrics.json)")
    return p


def size_name(args: argparse.Namespace) -> str:
    """The run size the options ask for: ``--size``, else ``quick`` or ``full``."""
    return args.size or ("quick" if args.quick else "full")


def parse_experiment_args(p: argparse.ArgumentParser, argv: list[str] | None
                          ) -> argparse.Namespace:
    """Parse, and refuse the combinations no run can do before any work (exit 2, one line).

    ``--fresh`` simulates new training clusters every epoch, so it cannot train on catalogue
    sets (``--data``).
    """
    args = p.parse_args(argv)
    if getattr(args, "fresh", False) and args.data is not None:
        p.error("--fresh simulates new training clusters every epoch; it cannot be combined "
                "with --data")
    return args
