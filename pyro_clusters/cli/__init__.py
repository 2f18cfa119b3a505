"""The package's commands, ``python -m pyro_clusters COMMAND``: thin layers that parse, call one
library function and print.

infer     posterior mass of an observed cluster from a redshift table
train     train the classifier + NPE bundle that ``infer`` uses
simulate  a dataset of simulated clusters (HDF5)
report    diagnostics of saved posterior samples
catalog   train/val/test sets from an N-body catalogue
"""

COMMANDS = {
    "infer": ("pyro_clusters.cli.infer", "posterior mass of an observed cluster"),
    "train": ("pyro_clusters.cli.train", "train a classifier + NPE bundle for `infer`"),
    "simulate": ("pyro_clusters.cli.simulate", "a dataset of simulated clusters (HDF5)"),
    "report": ("pyro_clusters.cli.report", "diagnostics of saved posterior samples"),
    "catalog": ("pyro_clusters.cli.catalog", "train/val/test sets from an N-body catalogue"),
}

__all__ = ["COMMANDS"]
