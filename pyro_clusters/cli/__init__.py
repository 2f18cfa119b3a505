"""The package's commands, ``python -m pyro_clusters COMMAND``.

Thin layers that parse, call one library function and print:

infer     posterior mass of an observed cluster from a redshift table
train     train the classifier + NPE bundle that ``infer`` uses
simulate  a dataset of simulated clusters (HDF5)
report    diagnostics of saved posterior samples
catalog   train/val/test sets from an N-body catalogue
"""

#: command -> (module with ``main(argv)``, one-line description)
COMMANDS = {name: (f"pyro_clusters.cli.{name}", what) for name, what in (
    ("infer", "posterior mass of an observed cluster"),
    ("train", "train a classifier + NPE bundle for `infer`"),
    ("simulate", "a dataset of simulated clusters (HDF5)"),
    ("report", "diagnostics of saved posterior samples"),
    ("catalog", "train/val/test sets from an N-body catalogue"))}

__all__ = ["COMMANDS"]
