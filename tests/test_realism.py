"""The simulator reproduces the published numbers of N-body mocks (bands of DESIGN.md).

Sets of 6,000 flat + 3,000 HMF clusters per setup (session fixture, seed 12345). Statistical
errors at this size: slope +-0.004, sigma_15 +-1 %, scatter +-0.002 dex, richness median +-1,
interloper fraction +-0.01, scatter ratio +-0.05 -- all well inside the bands' margins.
"""

import numpy as np
import pytest

from pyro_clusters.diagnostics.realism import REALISM_BANDS, in_band, realism_metrics


@pytest.fixture(scope="module")
def metrics(mock_sets):
    return realism_metrics(mock_sets)[0]


@pytest.mark.parametrize("name", list(REALISM_BANDS))
def test_metric_in_published_band(metrics, name):
    value = metrics[name]
    assert in_band(name, value), f"{name} = {value:.4g} outside {REALISM_BANDS[name]}"


def test_interloper_fraction_falls_with_mass(metrics):
    f = np.array([b["fraction"] for b in metrics["interloper_fraction_by_mass"]])
    assert np.all(np.diff(f) < 0.02)  # monotone within noise
    assert f[0] - f[-1] > 0.3


def test_contamination_inflates_msigma_scatter(metrics):
    assert metrics["msigma_contaminated_mass_scatter_dex"] > metrics["msigma_pure_mass_scatter_dex"]
