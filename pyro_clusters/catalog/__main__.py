"""``python -m pyro_clusters.catalog``: see :mod:`pyro_clusters.catalog.mocks`."""

import sys

from pyro_clusters.catalog.mocks import main

sys.exit(main())
