"""Mocks from an N-body catalogue: halo + galaxy tables (HDF5) -> idealized and cylinder datasets.

- :mod:`~pyro_clusters.catalog.schema`: the input schema, reader (with column renaming) and
  validation;
- :mod:`~pyro_clusters.catalog.sightlines`: axis views, Fibonacci up-sampling, the flat training
  mass function, the train / val / test split by halo id (Ho et al. 2019 section 2.3);
- :mod:`~pyro_clusters.catalog.mocks`: minimum-image displacements, a periodic KD-tree, the
  simulator's observation code, streaming to the package's dataset format;
  ``python -m pyro_clusters catalog --catalog FILE --setup {idealized,cylinder} --out DIR``;
- :mod:`~pyro_clusters.catalog.synthetic`: a box catalogue made by our simulator, for tests and
  as the example (``python -m pyro_clusters.catalog.synthetic``).
"""

from pyro_clusters.catalog.schema import (
    GALAXY_SCHEMA,
    HALO_SCHEMA,
    Catalog,
    CatalogError,
    read_catalog,
    write_catalog,
)

__all__ = ["GALAXY_SCHEMA", "HALO_SCHEMA", "Catalog", "CatalogError", "read_catalog",
           "write_catalog"]
