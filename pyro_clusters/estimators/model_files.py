"""The model directory every neural estimator writes: ``model.json`` + ``weights.pt``.

``model.json`` holds ``format`` (``pyro_clusters.<kind>/<version>``), ``estimator`` and whatever
the estimator needs to rebuild itself (config, feature constants, provenance, training
history); ``weights.pt`` the torch ``state_dict``, read back with ``weights_only=True`` onto the
CPU (the estimator then moves the network to its device).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

__all__ = ["read_model", "write_model"]


def write_model(path: str | os.PathLike, meta: dict, state_dict: dict) -> Path:
    """Write ``path/model.json`` (``meta``) and ``path/weights.pt``; returns ``path``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.json").write_text(json.dumps(meta, indent=2))
    torch.save(state_dict, path / "weights.pt")
    return path


def read_model(path: str | os.PathLike, fmt: str, what: str,
               estimator: str | None = None) -> tuple[dict, dict]:
    """Read a model directory written by :func:`write_model`.

    Args:
        path: the directory.
        fmt: the ``format`` it must have.
        what: the kind of model, for error messages (e.g. "an npe_deepsets model").
        estimator: if given, the ``estimator`` name it must have.

    Returns:
        (meta, state_dict on the CPU).

    Raises:
        FileNotFoundError: no ``model.json``.
        ValueError: another format or estimator.
    """
    path = Path(path)
    if not (path / "model.json").is_file():
        raise FileNotFoundError(f"no model at {path} (model.json missing)")
    meta = json.loads((path / "model.json").read_text())
    if meta.get("format") != fmt or (estimator is not None
                                     and meta.get("estimator") != estimator):
        raise ValueError(f"{path} is not {what} (format {meta.get('format')!r}, estimator "
                         f"{meta.get('estimator')!r})")
    state = torch.load(path / "weights.pt", map_location="cpu", weights_only=True)
    return meta, state
