"""``python -m pyro_clusters COMMAND ...``: the package's commands (:mod:`pyro_clusters.cli`)."""

from __future__ import annotations

import importlib
import sys

from pyro_clusters.cli import COMMANDS


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a sub-command; returns its exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        usage = "usage: python -m pyro_clusters {" + ",".join(COMMANDS) + "} [options]\n\n"
        usage += "\n".join(f"  {k:<10}{v[1]}" for k, v in COMMANDS.items())
        usage += "\n\n`python -m pyro_clusters COMMAND --help` for the options of each."
        bad = bool(argv) and argv[0] not in ("-h", "--help")
        print((f"unknown command {argv[0]!r}\n" if bad else "") + usage,
              file=sys.stderr if bad or not argv else sys.stdout)
        return 2 if bad or not argv else 0
    return importlib.import_module(COMMANDS[argv[0]][0]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
