"""Real redshift surveys -> posterior masses: the path of ``python -m pyro_clusters infer``.

- :mod:`~pyro_clusters.realfield.table` -- reading a redshift table, the cylinder around a
  cluster centre (the mocks' observation model), and mock clusters written as tables;
- :mod:`~pyro_clusters.realfield.bundle` -- the trained classifier + NPE bundle (the shipped
  default and ``train``);
- :mod:`~pyro_clusters.realfield.inference` -- the posterior of one cluster, with mismatch
  warnings;
- :mod:`~pyro_clusters.realfield.outputs` -- summary, files and figure.
"""
