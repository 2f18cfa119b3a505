"""The package's commands, ``pyro-clusters COMMAND`` (or ``python -m pyro_clusters COMMAND``).

Thin layers that parse, call one library function and print:

infer     posterior mass of an observed cluster from a redshift table
train     train the classifier + NPE bundle that ``infer`` uses
simulate  a dataset of simulated clusters (HDF5)
report    diagnostics of saved posterior samples
catalog   train/val/test sets from an N-body catalogue

Every command's parser comes from :func:`command_parser`: the program name as installed, a
``--version`` option, the module docstring as the description with its reStructuredText markup
removed, and each option's default appended to its help.
"""

from __future__ import annotations

import argparse
import re

from pyro_clusters import __version__

#: command -> (module with ``build_parser()`` and ``main(argv)``, one-line description)
COMMANDS = {name: (f"pyro_clusters.cli.{name}", what) for name, what in (
    ("infer", "posterior mass of an observed cluster"),
    ("train", "train a classifier + NPE bundle for `infer`"),
    ("simulate", "a dataset of simulated clusters (HDF5)"),
    ("report", "diagnostics of saved posterior samples"),
    ("catalog", "train/val/test sets from an N-body catalogue"))}

#: the installed console script
PROGRAM = "pyro-clusters"

__all__ = ["COMMANDS", "PROGRAM", "HelpFormatter", "command_parser", "plain_text"]

_ROLE = re.compile(r":(?:mod|class|func|meth|attr|data|obj):`~?([^`]+)`")


def plain_text(doc: str) -> str:
    """A docstring as a terminal shows it: Sphinx roles and ````literal```` quotes removed.

    ``:func:`pyro_clusters.x.f``` becomes ``pyro_clusters.x.f``; ``::`` ending a line (a literal
    block) becomes ``:``; doubled backslashes of raw docstrings become single ones.
    """
    text = _ROLE.sub(r"\1", doc)
    text = text.replace("``", "").replace("\\\\", "\\")
    return re.sub(r"::$", ":", text, flags=re.MULTILINE)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks and appends ``(default: X)`` to each option's help.

    Nothing is appended where the help already names its default, for flags, or where the
    default is None (the help says what happens then).
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (action.default in (None, False, argparse.SUPPRESS) or "default" in text
                or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)"


def command_parser(name: str, doc: str) -> argparse.ArgumentParser:
    """The parser of command ``name``: ``pyro-clusters NAME``, ``--version``, ``doc`` as text."""
    p = argparse.ArgumentParser(prog=f"{PROGRAM} {name}", description=plain_text(doc),
                                formatter_class=HelpFormatter)
    p.add_argument("--version", action="version", version=f"{PROGRAM} {__version__}")
    return p
