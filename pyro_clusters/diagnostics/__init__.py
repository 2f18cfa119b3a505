"""Posterior diagnostics, independent of any estimator.

Input: posterior samples (n_clusters, n_draws) of log10 M, the truths, optional metadata.
Kernels on arrays (:mod:`.coverage`, :mod:`.metrics`), robustness of an estimator
(:mod:`.robustness`), figures (:mod:`.plots`) and the report writer (:mod:`.report`);
:mod:`.posterior` holds the container and the file format.
"""

from pyro_clusters.diagnostics.classification import (
    classification_by_mass,
    classification_metrics,
    roc_pr_curves,
)
from pyro_clusters.diagnostics.comparison import compare_posteriors, per_cluster_comparison
from pyro_clusters.diagnostics.coverage import (
    CoverageResult,
    TarpResult,
    calibrated_max_dev,
    hdi_intervals,
    hpd_coverage,
    hpd_credibility,
    tarp_coverage,
)
from pyro_clusters.diagnostics.metrics import (
    RichnessSplit,
    by_mass_bin,
    residual_metrics,
    richness_split,
)
from pyro_clusters.diagnostics.posterior import (
    PosteriorSamples,
    load_posterior,
    save_posterior,
    validate_samples,
)
from pyro_clusters.diagnostics.report import Evaluation, evaluate, write_report
from pyro_clusters.diagnostics.robustness import (
    DriftResult,
    centre_shift,
    recentre,
    subsample,
    subsampling_drift,
    velocity_error_shift,
)

__all__ = [
    "CoverageResult",
    "DriftResult",
    "Evaluation",
    "PosteriorSamples",
    "RichnessSplit",
    "TarpResult",
    "by_mass_bin",
    "calibrated_max_dev",
    "centre_shift",
    "classification_by_mass",
    "classification_metrics",
    "compare_posteriors",
    "evaluate",
    "hdi_intervals",
    "hpd_coverage",
    "hpd_credibility",
    "load_posterior",
    "per_cluster_comparison",
    "recentre",
    "residual_metrics",
    "richness_split",
    "roc_pr_curves",
    "save_posterior",
    "subsample",
    "subsampling_drift",
    "tarp_coverage",
    "validate_samples",
    "velocity_error_shift",
    "write_report",
]
