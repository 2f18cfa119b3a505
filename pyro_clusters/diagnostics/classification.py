"""Membership-classification metrics and ROC / precision-recall curves.

The metrics of Wang, Thiele & Ho 2026, Table 1.

For galaxies with true membership t and predicted membership s:
    accuracy      (TP + TN) / all
    precision     TP / (TP + FP)            (purity of the selected members)
    recall        TP / (TP + FN)            (completeness)
    contamination FP / (TP + FP) = 1 - precision   (interlopers among the selected)
    F1            2 precision recall / (precision + recall)
Undefined ratios (nothing selected, no true member) are NaN. In Wang, Thiele & Ho 2026 Table 1
the caustic columns satisfy contamination = 1 - precision; the ML columns list 0.371 next to a
precision of 0.729, which we read as a typo (their F1 0.797 agrees with precision 0.729 and
recall 0.862).
"""

from __future__ import annotations

import numpy as np

__all__ = ["classification_by_mass", "classification_metrics", "roc_pr_curves"]


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b > 0 else float("nan")


def classification_metrics(true: np.ndarray, pred: np.ndarray) -> dict:
    """Accuracy, precision, recall, contamination and F1 of boolean membership calls.

    Args:
        true: (n,) true membership.
        pred: (n,) predicted membership.

    Returns:
        dict of the five metrics plus ``n_galaxies``, ``n_members``, ``n_selected``.
    """
    t, p = np.asarray(true, dtype=bool), np.asarray(pred, dtype=bool)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"true and pred must be 1-D of the same length, got {t.shape}, {p.shape}")
    tp = float(np.sum(t & p))
    fp = float(np.sum(~t & p))
    fn = float(np.sum(t & ~p))
    tn = float(np.sum(~t & ~p))
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return {
        "accuracy": _ratio(tp + tn, t.size),
        "precision": precision,
        "recall": recall,
        "contamination": _ratio(fp, tp + fp),
        "f1": _ratio(2 * precision * recall, precision + recall)
        if np.isfinite(precision) and np.isfinite(recall) else float("nan"),
        "n_galaxies": int(t.size), "n_members": int(tp + fn), "n_selected": int(tp + fp),
    }


def classification_by_mass(true: np.ndarray, pred: np.ndarray, log_m: np.ndarray,
                           edges: np.ndarray) -> list[dict]:
    """:func:`classification_metrics` per bin of the host cluster's true log10 M.

    Args:
        true: (n_galaxies,) true membership.
        pred: (n_galaxies,) predicted membership.
        log_m: (n_galaxies,) true log10 M of each galaxy's cluster.
        edges: bin edges.

    Returns:
        list of {lo, hi, ...metrics} for the bins that hold galaxies.
    """
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (log_m >= lo) & (log_m < hi)
        if m.any():
            out.append({"lo": float(lo), "hi": float(hi),
                        **classification_metrics(true[m], pred[m])})
    return out


def roc_pr_curves(true: np.ndarray, score: np.ndarray) -> dict:
    """ROC and precision-recall curves of a membership score, by a sort (no loop).

    Args:
        true: (n,) true membership.
        score: (n,) score, larger = more likely a member (e.g. probability).

    Returns:
        dict with ``thresholds`` (descending distinct scores), ``tpr``, ``fpr``, ``precision``,
        ``recall`` (= tpr) at each threshold (galaxies with score >= threshold selected),
        ``auc_roc`` (trapezoidal) and ``average_precision`` (sum of precision x recall step).
    """
    t = np.asarray(true, dtype=bool)
    s = np.asarray(score, dtype=np.float64)
    if t.shape != s.shape or t.ndim != 1 or t.size == 0:
        raise ValueError("true and score must be non-empty 1-D arrays of the same length")
    if t.all() or not t.any():
        raise ValueError("ROC needs both members and interlopers")
    order = np.argsort(-s, kind="stable")
    s_sorted, t_sorted = s[order], t[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), s.size - 1]  # end of each distinct score
    tp = np.cumsum(t_sorted)[last].astype(float)
    fp = (last + 1) - tp
    tpr, fpr = tp / t.sum(), fp / (~t).sum()
    precision = tp / (tp + fp)
    roc_x, roc_y = np.r_[0.0, fpr], np.r_[0.0, tpr]
    return {
        "thresholds": s_sorted[last], "tpr": tpr, "fpr": fpr, "precision": precision,
        "recall": tpr, "auc_roc": float(np.trapezoid(roc_y, roc_x)),
        "average_precision": float(np.sum(np.diff(np.r_[0.0, tpr]) * precision)),
    }
