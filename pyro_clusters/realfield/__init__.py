"""Real redshift surveys -> posterior masses: the path of ``python -m pyro_clusters infer``.

- :mod:`~pyro_clusters.realfield.table` -- reading a redshift table, the cylinder around a
  cluster centre (the mocks' observation model), and mock clusters written as tables;
- :mod:`~pyro_clusters.realfield.bundle` -- the trained classifier + NPE bundle (the shipped
  models, loading and saving; training is :func:`pyro_clusters.pipeline.train_bundle`);
- :mod:`~pyro_clusters.realfield.redshift` -- the cluster redshift checked against, or moved
  to, its members' mean velocity;
- :mod:`~pyro_clusters.realfield.inference` -- the posterior of any number of observed
  cylinders (one cluster is a batch of one);
- :mod:`~pyro_clusters.realfield.mismatch` -- the warnings every posterior carries;
- :mod:`~pyro_clusters.realfield.survey` -- many clusters of one survey in one call;
- :mod:`~pyro_clusters.realfield.outputs` -- summary, files and figure.
"""

from pyro_clusters.realfield.bundle import SHIPPED, CylinderModel, shipped_model_path
from pyro_clusters.realfield.inference import ClusterPosterior, infer_cluster, infer_cylinders
from pyro_clusters.realfield.mismatch import cluster_warnings, mismatch_warnings
from pyro_clusters.realfield.redshift import RefinedRedshift, refine_redshift, refine_redshifts
from pyro_clusters.realfield.survey import Centres, SurveyResult, infer_survey, read_centres
from pyro_clusters.realfield.table import (
    FieldObservation,
    ObservationError,
    RedshiftTable,
    observe_field,
    read_redshift_table,
)

__all__ = ["SHIPPED", "Centres", "ClusterPosterior", "CylinderModel", "FieldObservation",
           "ObservationError", "RedshiftTable", "RefinedRedshift", "SurveyResult",
           "cluster_warnings", "infer_cluster", "infer_cylinders", "infer_survey",
           "mismatch_warnings", "observe_field", "read_centres", "read_redshift_table",
           "refine_redshift", "refine_redshifts", "shipped_model_path"]
