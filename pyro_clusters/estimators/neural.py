"""The skeleton every trained network shares: configure, fit, move, save, load.

A neural model supplies only what differs (as sbi's ``NeuralInference`` and its subclasses):

- :meth:`NeuralModel._prepare` -- constants fitted on the training clusters (feature scaling,
  targets, baselines) before the network exists;
- :meth:`NeuralModel._network` -- the ``torch.nn.Module``;
- :meth:`NeuralModel._inputs`, :meth:`NeuralModel._targets`, :meth:`NeuralModel._batches` --
  what one batch holds;
- :meth:`NeuralModel._loss` -- the mean loss of a batch;
- optionally :meth:`NeuralModel._after_fit`, and :meth:`~pyro_clusters.estimators.base.Model
  ._state` / ``_restore`` for fitted constants.

The base does the rest in one order for every network: provenance, ``_prepare``, the network
built under ``torch.manual_seed(train.seed)`` inside ``torch.random.fork_rng`` (the caller's
global state is untouched), validation batches, :func:`~pyro_clusters.training.train_model`
(early stopping, checkpoints, NaN guard; dropout draws seeded with ``train.seed + 1``),
``_after_fit``; and one directory on disk: ``model.json`` (config, constants, what it was
trained on, training history) + ``weights.pt`` (the ``state_dict``, read with
``weights_only=True``).

:class:`SetNetwork` adds what the two Deep Sets networks share: the per-galaxy features of
:mod:`pyro_clusters.features.galaxies`, optional extra galaxy columns, and padded batches grouped
by set size.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from torch import nn

from pyro_clusters.data.clusters import ClusterSet
from pyro_clusters.estimators.base import Model, Splits, check_same_setup, provenance
from pyro_clusters.features.batches import make_batches, pad_features
from pyro_clusters.features.galaxies import FeatureSpec, global_columns
from pyro_clusters.training import TrainConfig, TrainResult, train_model

__all__ = ["NeuralModel", "SetBatch", "SetNetConfig", "SetNetwork"]


class NeuralModel(Model):
    """A model with a trained torch network (see module docstring).

    Its ``config`` must have ``train`` (:class:`~pyro_clusters.training.TrainConfig`) and
    ``eval_batch_size``.

    Attributes:
        model: the network (None until fitted or loaded).
        trained_on: provenance of the training clusters (setup, z, aperture, v_cut, mass range).
        result: what training did (None after loading).
        train_seconds: wall time of :meth:`fit` [s].
    """

    legacy_state_keys: ClassVar[dict[str, str]] = {}

    def __init__(self, config: Any = None):
        self.config = self._with_batch_size(config if config is not None
                                            else self.config_class())
        self.model: nn.Module | None = None
        self.trained_on: dict = {}
        self.result: TrainResult | None = None
        self._loaded_training: dict | None = None  # a loaded model's record, saved again
        self.train_seconds: float | None = None

    @classmethod
    def configure(cls, train: TrainConfig | None = None, msigma=None):
        """The default config with the run settings of ``train``.

        ``train.batch_size`` is honoured; None keeps the estimator's own.
        """
        config = cls.config_class()
        if train is not None:
            config = cls._with_batch_size(replace(config, train=train))
        return config

    @classmethod
    def _with_batch_size(cls, config: Any) -> Any:
        """``config`` with a batch size of None replaced by the estimator's default."""
        if config.train.batch_size is not None:
            return config
        default = cls.config_class().train.batch_size
        return replace(config, train=replace(config.train, batch_size=default))

    @property
    def device(self) -> torch.device:
        """The torch device of the network."""
        return torch.device(self.config.train.device)

    # -- hooks ------------------------------------------------------------------------------
    def _prepare(self, splits: Splits) -> Splits:
        """Fit constants on ``splits.train`` before the network is built; may re-split."""
        return splits

    def _network(self) -> nn.Module:
        """The (untrained) network, built from the config and the fitted constants."""
        raise NotImplementedError

    def _inputs(self, clusters: ClusterSet) -> Any:
        """The network's input for a set of clusters, computed once per set."""
        raise NotImplementedError

    def _targets(self, clusters: ClusterSet) -> Any:
        """Training targets of a set of clusters."""
        raise NotImplementedError

    def _batches(self, clusters: ClusterSet, inputs: Any, targets: Any, batch_size: int,
                 rng: np.random.Generator | None) -> Iterator:
        """Batches for ``_loss``; shuffled with ``rng`` (training), in order without.

        Every draw from ``rng`` must happen before the first batch is yielded (fresh
        training reads the next epoch's seed from ``rng`` at that point; :class:`_Ahead`).
        """
        raise NotImplementedError

    def _loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """Mean loss of a batch."""
        raise NotImplementedError

    def _batch_weight(self, batch: Any) -> float:
        """The weight of ``batch``'s mean loss in the validation loss: its clusters.

        So the validation loss is the mean over the validation set's clusters however the
        set was cut into batches (at evaluation, batches are packed up to a galaxy budget:
        a batch of rich clusters holds fewer of them). For the membership classifier, whose
        loss is a mean over a batch's galaxies, this is the mean over clusters of each
        cluster's mean over galaxies, as in training: its batches of equal cluster count
        hold clusters of similar size.
        """
        return float(len(batch[0]))

    def _after_fit(self, splits: Splits) -> None:
        """Run after training, with the best weights restored (calibration steps)."""

    # -- fitting ----------------------------------------------------------------------------
    def _fit(self, splits: Splits, checkpoint: str | Path | None = None,
             resume: bool = False) -> None:
        """Train (``fit(data, checkpoint=FILE, resume=True)`` continues an interrupted run)."""
        splits.require_val(self.name)
        t0 = time.perf_counter()
        cfg = self.config
        self.trained_on = provenance(splits.train)
        splits = self._prepare(splits)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.train.seed)
            self.model = self._network().to(self.device)
        train, val = splits.train, splits.val
        val_batches = list(self._batches(val, self._inputs(val), self._targets(val),
                                         cfg.eval_batch_size, None))
        val_weights = [self._batch_weight(b) for b in val_batches]
        ahead = None
        if splits.fresh is None:
            x_train, y_train = self._inputs(train), self._targets(train)  # once, not per epoch

            def epoch(rng: np.random.Generator) -> Iterator:
                return self._batches(train, x_train, y_train, cfg.train.batch_size, rng)
        else:
            def make(seed: int) -> tuple:
                # new clusters from a generator spawned off the epoch's: its stream never
                # coincides with that of whoever simulated the fixed sets
                new = splits.fresh(np.random.default_rng([seed, 1]))
                return new, self._inputs(new), self._targets(new)

            ahead = _Ahead(make)

            def epoch(rng: np.random.Generator) -> Iterator:
                new, x, y = ahead.get(int(rng.integers(2**63)))
                batches = iter(self._batches(new, x, y, cfg.train.batch_size, rng))
                first = next(batches, None)  # the epoch's shuffles are drawn by now
                ahead.start(rng)
                if first is not None:
                    yield first
                yield from batches
        with torch.random.fork_rng(devices=[]):  # dropout draws; caller's state untouched
            torch.manual_seed(cfg.train.seed + 1)
            try:
                self.result = train_model(self.model, self._loss, epoch, val_batches,
                                          cfg.train, checkpoint=checkpoint, resume=resume,
                                          val_weights=val_weights)
            finally:
                if ahead is not None:
                    ahead.close()
        self.model.eval()
        self._after_fit(splits)
        self.train_seconds = time.perf_counter() - t0

    # -- use --------------------------------------------------------------------------------
    def _require_fitted(self) -> None:
        if self.model is None:
            raise RuntimeError(f"fit or load {self.name} first")

    def _check(self, clusters: ClusterSet) -> None:
        """Fitted, and the clusters come from the setup it was trained on."""
        self._require_fitted()
        check_same_setup(self.trained_on, clusters, self.name)

    # -- persistence ------------------------------------------------------------------------
    def _network_state(self) -> dict:
        """Fitted constants saved beside the weights (subclass hook)."""
        return {}

    def _state(self) -> dict:
        return {"trained_on": self.trained_on, "train_seconds": self.train_seconds,
                "training": (self.result.to_dict() if self.result
                             else self._loaded_training),
                **self._network_state()}

    def _write_files(self, path: Path) -> None:
        torch.save(self.model.state_dict(), path / "weights.pt")

    @classmethod
    def _config_for_device(cls, config: dict | None, device: str | None) -> dict | None:
        if device is not None:
            config = {**config, "train": {**config.get("train", {}), "device": device}}
        return config

    def _restore_network(self, meta: dict, path: Path) -> None:
        """Restore the fitted constants of :meth:`_network_state` (subclass hook)."""

    def _restore(self, meta: dict, path: Path, device: str | None) -> None:
        self.trained_on = meta["trained_on"]
        self.train_seconds = meta.get("train_seconds")
        self._loaded_training = meta.get("training")
        self._restore_network(meta, path)
        state = torch.load(path / "weights.pt", map_location="cpu", weights_only=True)
        for old, new in self.legacy_state_keys.items():  # models saved in format version 1
            state = {(new + k[len(old):] if k.startswith(old) else k): v
                     for k, v in state.items()}
        self.model = self._network()
        self.model.load_state_dict(state)
        self.model.to(self.device).eval()


class _Ahead:
    """Fresh training sets, the next epoch's made in a background thread during this one.

    Epoch k draws its seed from the training generator, as it would without this; once the
    epoch's batches are shuffled, :meth:`start` reads the seed epoch k + 1 will draw from a
    copy of the generator (nothing else draws from it in between) and makes that set ahead.
    :meth:`get` uses a set made ahead only if its seed is the one drawn, so the clusters, the
    trained weights and a resumed run are those of making every set when it is needed; the
    simulation (and, for the NPE, the classifier's annotation) overlaps the optimiser steps,
    which keeps a GPU busy.

    Args:
        make: ``make(seed) -> (clusters, inputs, targets)`` of one epoch.
    """

    def __init__(self, make: Callable[[int], tuple]):
        self.make = make
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fresh-clusters")
        self.pending: tuple[int, Future] | None = None

    def get(self, seed: int) -> tuple:
        """The set of ``seed``: made ahead, or now."""
        pending, self.pending = self.pending, None
        if pending is not None:
            made = pending[1].result()  # also re-raises what went wrong in the thread
            if pending[0] == seed:
                return made
        return self.make(seed)

    def start(self, rng: np.random.Generator) -> None:
        """Make, in the background, the set of the seed ``rng`` will give next."""
        seed = int(copy.deepcopy(rng).integers(2**63))
        self.pending = (seed, self.pool.submit(self.make, seed))

    def close(self) -> None:
        """Wait for a set still being made (unused) and stop the thread."""
        if self.pending is not None:
            self.pending[1].cancel()
        self.pool.shutdown(wait=True)
        self.pending = None


@dataclass(frozen=True)
class SetNetConfig:
    """Settings every Deep Sets network shares.

    Attributes:
        hidden: width of the Deep Sets MLPs and per-galaxy latents.
        context: width of the context vector.
        blocks: stacked Deep Sets blocks (3 in Wang, Thiele & Ho 2026, arXiv:2606.12938).
        train: optimisation settings (batch 32: larger batches give too few steps per epoch
            for a few thousand clusters).
        eval_batch_size: clusters per batch at inference.
        eval_max_galaxies: padded galaxies per batch at inference (batches of rich clusters
            hold fewer than ``eval_batch_size``; :func:`make_batches`).
        extra_globals: per-cluster inputs appended to the global features: cluster columns
            (e.g. ``z`` of an amortised model) or derived ones (``log_n_gal``,
            ``log_background``; :func:`pyro_clusters.features.galaxies.global_columns`).
    """

    hidden: int = 64
    context: int = 32
    blocks: int = 3
    train: TrainConfig = field(default_factory=lambda: TrainConfig(batch_size=32))
    eval_batch_size: int = 512
    eval_max_galaxies: int = 2**17
    extra_globals: tuple[str, ...] = ()


class SetBatch(NamedTuple):
    """A padded batch as tensors on the network's device.

    Fields as :class:`~pyro_clusters.features.batches.PaddedBatch`, with the batch's targets
    ``y`` (empty at inference) in place of its index.
    """

    x: torch.Tensor
    mask: torch.Tensor
    g: torch.Tensor
    y: torch.Tensor


class SetNetwork(NeuralModel):
    """A Deep Sets network on per-galaxy features (see module docstring).

    Class attribute ``network_class``: the module, built as ``network_class(n_galaxy_features,
    n_global_features, config)``.

    Attributes:
        features: names and standardisation constants of its features.
    """

    network_class: ClassVar[type[nn.Module]]

    def __init__(self, config: Any = None):
        super().__init__(config)
        self.features: FeatureSpec | None = None

    @property
    def extra_features(self) -> tuple[str, ...]:
        """Galaxy columns appended to the per-galaxy features."""
        return tuple(getattr(self.config, "extra_features", ()))

    def _extra(self, clusters: ClusterSet) -> dict[str, np.ndarray]:
        missing = [n for n in self.extra_features if n not in clusters.galaxies]
        if missing:
            raise ValueError(f"the model uses galaxy feature(s) {missing} that these clusters do "
                             "not have (for classifier probabilities: "
                             "MembershipClassifier.annotate)")
        return {n: clusters.galaxies[n] for n in self.extra_features}

    def _globals(self, clusters: ClusterSet) -> dict[str, np.ndarray]:
        return global_columns(clusters, tuple(getattr(self.config, "extra_globals", ())))

    def _prepare(self, splits: Splits) -> Splits:
        self.features = FeatureSpec.fit(splits.train, self._extra(splits.train),
                                        self._globals(splits.train))
        return splits

    def _network(self) -> nn.Module:
        return self.network_class(len(self.features.galaxy), len(self.features.global_),
                                  self.config)

    def _inputs(self, clusters: ClusterSet) -> tuple[np.ndarray, np.ndarray]:
        """Standardised (galaxy (n_galaxies, F), global (n_clusters, G)) features."""
        return self.features.transform(clusters, self._extra(clusters), self._globals(clusters))

    def _batch_targets(self, clusters: ClusterSet, targets: Any, index: np.ndarray
                       ) -> np.ndarray:
        """The targets of clusters ``index`` as one array (subclass hook)."""
        raise NotImplementedError

    def _batches(self, clusters: ClusterSet, inputs: tuple, targets: Any, batch_size: int,
                 rng: np.random.Generator | None) -> Iterator[SetBatch]:
        for _, batch in self._indexed_batches(clusters, inputs, targets, batch_size, rng):
            yield batch

    def _indexed_batches(self, clusters: ClusterSet, inputs: tuple | None, targets: Any,
                         batch_size: int, rng: np.random.Generator | None = None
                         ) -> Iterable[tuple[np.ndarray, SetBatch]]:
        """(cluster index, batch) pairs, grouped by set size; targets None at inference."""
        gal, glob = inputs if inputs is not None else self._inputs(clusters)
        dev = self.device
        budget = self.config.eval_max_galaxies if rng is None else None
        for index in make_batches(clusters.n_gal, batch_size, rng, max_padded=budget):
            pb = pad_features(gal, glob, clusters.offsets, index)
            y = (torch.from_numpy(self._batch_targets(clusters, targets, index)).to(dev)
                 if targets is not None else torch.empty(0))
            yield index, SetBatch(torch.from_numpy(pb.x).to(dev),
                                  torch.from_numpy(pb.mask).to(dev),
                                  torch.from_numpy(pb.g).to(dev), y)

    def _network_state(self) -> dict:
        return {"features": self.features.to_dict()}

    def _restore_network(self, meta: dict, path: Path) -> None:
        self.features = FeatureSpec(**meta["features"])
