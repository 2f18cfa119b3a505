"""The contract every posterior estimator of log10 M200c keeps (docs/architecture.md).

An estimator is fitted on training clusters and returns posterior draws of
theta = log10(M200c / h^-1 Msun) for any clusters::

    est = registry.build("npe_deepsets")
    est.fit(Splits(train, val))                  # or est.fit(train, val)
    draws = est.sample(clusters, 1000, rng)      # (n_clusters, 1000) log10 M
    est.save("models/npe")                       # a directory: model.json (+ weights.pt)
    same = registry.load("models/npe")           # or NPEDeepSets.load(path, device=None)

Saving is the same for every estimator: ``model.json`` holds ``format``, ``estimator`` (the
registry name), ``config`` (the dataclass that built it) and the fitted state; trained
networks add ``weights.pt``. A subclass supplies only what it keeps (:meth:`Model._state`,
:meth:`Model._restore`, :meth:`Model._write_files`).

What a call learns beyond the draws (sampler diagnostics, effective sample sizes) is
returned by :meth:`Estimator.sample_with_info`, never stashed on the estimator.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pyro_clusters.data.clusters import ClusterSet

__all__ = ["Estimator", "Model", "SampleResult", "Splits", "check_same_setup",
           "config_from_dict", "provenance", "read_model_json"]


@dataclass
class Splits:
    """The clusters an estimator is fitted on.

    Attributes:
        train: training clusters (flat prior in log10 M).
        val: validation clusters (early stopping, hyper-parameter choices); None if unused.
        calibration: clusters held out for a posterior calibration step (``cnn_kde_slice``'s
            KDE slice); None lets the estimator split ``val`` itself.
        fresh: ``fresh(rng) -> ClusterSet``, new training clusters like ``train`` for every
            epoch (e.g. the simulator on the training prior), drawn with a generator spawned
            from the training seed's, so that a seed still reproduces a run; the trained
            networks use it in place of ``train`` after fitting their constants on ``train``.
            None: ``train`` every epoch.
    """

    train: ClusterSet
    val: ClusterSet | None = None
    calibration: ClusterSet | None = None
    fresh: Callable[[np.random.Generator], ClusterSet] | None = None

    @classmethod
    def of(cls, data: Splits | ClusterSet, val: ClusterSet | None = None,
           calibration: ClusterSet | None = None) -> Splits:
        """``data`` as Splits; ``val``/``calibration`` fill in what it lacks."""
        if isinstance(data, Splits):
            return cls(data.train, data.val if val is None else val,
                       data.calibration if calibration is None else calibration, data.fresh)
        if not isinstance(data, ClusterSet):
            raise TypeError(f"fit takes Splits or a ClusterSet, got {type(data).__name__}")
        return cls(data, val, calibration)

    def require_val(self, who: str) -> ClusterSet:
        """The validation set, or a ``ValueError`` naming ``who`` needs it."""
        if self.val is None:
            raise ValueError(f"{who} needs a validation set (early stopping)")
        return self.val


@dataclass
class SampleResult:
    """Posterior draws and what the call learned besides.

    Attributes:
        draws: (n_clusters, n) log10(M200c / h^-1 Msun).
        info: estimator-specific results of the call, e.g. ``"nuts"`` diagnostics of
            ``jeans_exact`` or the importance-sampling ``"ess"`` of a reweighted prior.
    """

    draws: np.ndarray
    info: dict = field(default_factory=dict)


def provenance(train: ClusterSet) -> dict:
    """What a model was trained on: setup, redshift, aperture, v_cut, log-mass range."""
    out = {k: train.attrs[k] for k in ("setup", "z", "aperture", "v_cut") if k in train.attrs}
    out["log_m_range"] = [float(train.log_m.min()), float(train.log_m.max())]
    return out


def check_same_setup(trained_on: dict, clusters: ClusterSet, what: str = "model") -> None:
    """Raise ``ValueError`` when both sides know their setup and it differs."""
    mine, theirs = trained_on.get("setup"), clusters.attrs.get("setup")
    if mine and theirs and mine != theirs:
        raise ValueError(f"this {what} was trained on the {mine!r} setup; the clusters come "
                         f"from the {theirs!r} setup")


def _is_tuple_type(tp: Any) -> bool:
    if typing.get_origin(tp) is tuple:
        return True
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return any(_is_tuple_type(a) for a in typing.get_args(tp))
    return False


def config_from_dict(cls: type, data: dict):
    """Rebuild a (nested, frozen) config dataclass from ``dataclasses.asdict`` output.

    JSON turns tuples into lists and nested dataclasses into dicts; both are restored from
    the type hints. Unknown keys raise a ``ValueError`` that names them.
    """
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {unknown}")
    kwargs = {}
    for key, value in data.items():
        tp = hints[key]
        if dataclasses.is_dataclass(tp) and isinstance(value, dict):
            value = config_from_dict(tp, value)
        elif isinstance(value, list) and _is_tuple_type(tp):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def read_model_json(path: str | os.PathLike) -> dict:
    """``path/model.json`` of a saved model (or a single-file model of version 1)."""
    path = Path(path)
    f = path / "model.json" if path.is_dir() else path
    if not f.is_file():
        raise FileNotFoundError(f"no model at {path} (model.json missing)")
    return json.loads(f.read_text())


class Model(ABC):
    """What every fitted model shares: a config, ``fit``, and one directory layout on disk.

    Class attributes:
        name: registry name, written to ``model.json`` as ``estimator``.
        config_class: the frozen dataclass of its settings (None: no settings).
        format: ``model.json`` format tag; readers refuse others.
        legacy_formats: older tags this class still reads.
    """

    name: ClassVar[str] = "model"
    config_class: ClassVar[type | None] = None
    format: ClassVar[str] = "pyro_clusters.model/2"
    legacy_formats: ClassVar[tuple[str, ...]] = ()

    config: Any = None

    @classmethod
    def configure(cls, train=None, msigma=None):
        """A config for a run, the rest kept at its defaults.

        ``train`` (a :class:`~pyro_clusters.training.TrainConfig` of epochs, patience, seed,
        device, progress, budget) and ``msigma`` (the M-sigma configuration) go where the model
        uses them.
        """
        return cls.config_class() if cls.config_class is not None else None

    @property
    def label(self) -> str:
        """The name shown in reports and metrics.json (the registry name unless overridden)."""
        return self.name

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, data: Splits | ClusterSet, val: ClusterSet | None = None, *,
            calibration: ClusterSet | None = None, **options) -> Model:
        """Fit on ``Splits(train, val, calibration)`` (or ``train, val`` given separately).

        ``options`` are the estimator's own (e.g. ``checkpoint=``, ``resume=`` of the neural
        estimators). Returns ``self``.
        """
        self._fit(Splits.of(data, val, calibration), **options)
        return self

    @abstractmethod
    def _fit(self, splits: Splits, **options) -> None:
        """Fit the model (subclass hook)."""

    # -- persistence -----------------------------------------------------------------------
    def _state(self) -> dict:
        """JSON-serialisable fitted state written to ``model.json`` (besides the config)."""
        return {}

    def _restore(self, meta: dict, path: Path, device: str | None) -> None:  # noqa: B027
        """Restore what :meth:`_state` and :meth:`_write_files` saved (subclass hook)."""

    def _write_files(self, path: Path) -> None:  # noqa: B027
        """Write files besides ``model.json`` (weights, nested models)."""

    def _require_fitted(self) -> None:  # noqa: B027
        """Raise ``RuntimeError`` if there is nothing to save or use yet."""

    def _config_dict(self) -> dict | None:
        return dataclasses.asdict(self.config) if self.config is not None else None

    @classmethod
    def _config_for_device(cls, config: dict | None, device: str | None) -> dict | None:
        """The saved config with its torch device replaced (models without one ignore it)."""
        return config

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted model to the directory ``path`` (created); returns it."""
        from pyro_clusters import __version__

        self._require_fitted()
        path = Path(path)
        if path.is_file():
            raise FileExistsError(f"{path} is a file; a model is saved to a directory")
        path.mkdir(parents=True, exist_ok=True)
        meta = {"format": self.format, "estimator": self.name, "config": self._config_dict(),
                "package_version": __version__, **self._state()}
        self._write_files(path)
        (path / "model.json").write_text(json.dumps(meta, indent=2))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> Model:
        """Restore a model written by :meth:`save`, optionally onto another torch ``device``.

        Raises:
            FileNotFoundError: no model there.
            ValueError: the directory holds another kind of model.
        """
        path = Path(path)
        meta = read_model_json(path)
        fmt = meta.get("format")
        if meta.get("estimator") != cls.name or (fmt is not None and fmt != cls.format
                                                 and fmt not in cls.legacy_formats):
            raise ValueError(f"{path} is not a {cls.name} model (format {fmt!r}, estimator "
                             f"{meta.get('estimator')!r})")
        cfg = cls._config_for_device(meta.get("config"), device)
        config = config_from_dict(cls.config_class, cfg) if cls.config_class else None
        model = cls._from_config(config, meta, path, device)
        model._restore(meta, path, device)
        return model

    @classmethod
    def _from_config(cls, config, meta: dict, path: Path, device: str | None) -> Model:
        """An unfitted instance built from the saved config (hook for other constructors)."""
        return cls(config)


class Estimator(Model):
    """A posterior estimator of log10(M200c / h^-1 Msun) (see module docstring)."""

    name: ClassVar[str] = "estimator"

    @abstractmethod
    def sample(self, clusters: ClusterSet, n: int, rng: np.random.Generator) -> np.ndarray:
        """Posterior draws of log10(M200c / h^-1 Msun), shape (len(clusters), n)."""

    def sample_with_info(self, clusters: ClusterSet, n: int, rng: np.random.Generator
                         ) -> SampleResult:
        """:meth:`sample` plus what the call learned (empty ``info`` unless overridden)."""
        return SampleResult(self.sample(clusters, n, rng))

    def log_prob(self, clusters: ClusterSet, grid: np.ndarray) -> np.ndarray:
        """Log-density of log10 M on a grid, (n_clusters, len(grid)) [per dex].

        Only estimators with a posterior density implement it (:attr:`has_density`).
        """
        raise NotImplementedError(f"{self.name} has no posterior density; use sample()")

    @property
    def has_density(self) -> bool:
        """Whether :meth:`log_prob` is available."""
        return type(self).log_prob is not Estimator.log_prob
