"""Estimators by name: ``register``, ``build``, ``load``.

Experiments, the real-field path and reports ask for an estimator by its name and never import
its class (as sbi's ``posterior_nn(model="nsf")`` or halotools' ``PrebuiltHodModelFactory``)::

    from pyro_clusters.estimators import registry

    est = registry.build("cnn_kde_slice", train=TrainConfig(max_epochs=20, seed=0))
    est.fit(Splits(train, val, calibration))
    est.save("models/cnn")
    same = registry.load("models/cnn")          # dispatches on model.json's "estimator"

A new estimator is one class and one line::

    @registry.register
    class MyEstimator(Estimator):
        name = "my_estimator"
        ...

The package's own estimators are registered below by ``"module:Class"`` so that importing the
registry imports neither torch nor sbi; a class is imported the first time it is asked for.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from pyro_clusters.estimators.base import Model, read_model_json

__all__ = ["build", "get", "load", "names", "register"]

_REGISTRY: dict[str, type[Model] | str] = {}


def register(cls_or_name: type[Model] | str, target: str | None = None):
    """Register a model class under its ``name``; usable as a class decorator.

    ``register(cls)`` registers a class; ``register("name", "package.module:Class")`` a class
    imported on first use. Registering another class under a taken name raises ``ValueError``.
    """
    if isinstance(cls_or_name, str):
        if target is None:
            raise TypeError("register(name, 'module:Class') needs the class's location")
        name, entry = cls_or_name, target
    else:
        name, entry = cls_or_name.name, cls_or_name
    old = _REGISTRY.get(name)
    if old is not None and old is not entry and not _same(old, entry):
        raise ValueError(f"an estimator named {name!r} is registered already ({old})")
    _REGISTRY[name] = entry
    return cls_or_name


def _same(a: type | str, b: type | str) -> bool:
    def spell(x):
        return x if isinstance(x, str) else f"{x.__module__}:{x.__qualname__}"

    return spell(a) == spell(b)


def get(name: str) -> type[Model]:
    """The class registered as ``name``."""
    if name not in _REGISTRY:
        raise KeyError(f"no estimator named {name!r}; registered: {', '.join(names())}")
    entry = _REGISTRY[name]
    if isinstance(entry, str):
        module, qualname = entry.split(":")
        entry = getattr(importlib.import_module(module), qualname)
        _REGISTRY[name] = entry
    return entry


def names(kind: type[Model] = Model) -> list[str]:
    """Registered names, sorted; ``kind=Estimator`` (estimators.base) keeps mass estimators."""
    return sorted(n for n in _REGISTRY if kind is Model or issubclass(get(n), kind))


def build(name: str, config=None, **settings) -> Model:
    """A fresh, unfitted model.

    Args:
        name: registered name.
        config: its config dataclass; None builds one with ``cls.configure(**settings)``.
        **settings: ``train=`` a :class:`~pyro_clusters.training.TrainConfig` of run settings,
            ``msigma=`` an M-sigma configuration, for the models that use them.
    """
    cls = get(name)
    if config is None:
        config = cls.configure(**settings)
    elif settings:
        raise TypeError("give either a config or settings for configure(), not both")
    return cls(config) if config is not None else cls()


def load(path: str | os.PathLike, device: str | None = None) -> Model:
    """Load any saved model; the class comes from ``model.json``'s ``estimator``.

    Args:
        path: the model directory (or a single-file model of format version 1).
        device: torch device to put a network on (None: the saved config's).
    """
    meta = read_model_json(path)
    name = meta.get("estimator")
    if name is None:
        raise ValueError(f"{path}: model.json names no estimator")
    return get(name).load(Path(path), device)


for _name, _target in {
    "msigma": "pyro_clusters.estimators.msigma:MSigmaEstimator",
    "npe_deepsets": "pyro_clusters.estimators.npe_deepsets:NPEDeepSets",
    "cnn_kde_slice": "pyro_clusters.estimators.kde_image:CNNKDESlice",
    "mc_dropout": "pyro_clusters.estimators.kde_image:MCDropoutCNN",
    "nf_kde2d": "pyro_clusters.estimators.kde_image:GaussianFlowKDE",
    "sbi_npe": "pyro_clusters.estimators.sbi_npe:SbiNPE",
    "jeans_exact": "pyro_clusters.estimators.jeans_exact:JeansExact",
    "prior_reweighted": "pyro_clusters.estimators.reweighted:PriorReweighted",
    "deepsets_membership": "pyro_clusters.membership.classifier:MembershipClassifier",
}.items():
    register(_name, _target)
