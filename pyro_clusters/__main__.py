"""``pyro-clusters COMMAND ...`` (also ``python -m pyro_clusters COMMAND ...``).

The commands are in :mod:`pyro_clusters.cli`.
"""

from __future__ import annotations

import importlib
import sys

from pyro_clusters import __version__
from pyro_clusters.cli import COMMANDS, PROGRAM


def usage() -> str:
    """The top-level help text."""
    text = f"usage: {PROGRAM} {{{','.join(COMMANDS)}}} [options]   ({PROGRAM} --version)\n\n"
    text += "\n".join(f"  {k:<10}{v[1]}" for k, v in COMMANDS.items())
    text += (f"\n\n`{PROGRAM} COMMAND --help` for the options of each; "
             "`python -m pyro_clusters COMMAND` is the same.")
    return text


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a sub-command; returns its exit code (130 after Ctrl-C, in one line)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "--version":
        print(f"{PROGRAM} {__version__}")
        return 0
    if argv and argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if not argv or argv[0] not in COMMANDS:
        print((f"unknown command {argv[0]!r}\n" if argv else "") + usage(), file=sys.stderr)
        return 2
    try:
        return importlib.import_module(COMMANDS[argv[0]][0]).main(argv[1:])
    except KeyboardInterrupt:
        # every command writes its files atomically (a temporary name, renamed when complete)
        print(f"{PROGRAM} {argv[0]}: interrupted; no partial output was left", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
