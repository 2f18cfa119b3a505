"""A torch ``IterableDataset`` over a cluster dataset file, in padded batches."""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.utils.data

from pyro_clusters.data.clusters import pad, ragged_to_padded
from pyro_clusters.data.hdf5 import ClusterDataset

__all__ = ["TorchClusterStream"]


class TorchClusterStream(torch.utils.data.IterableDataset):
    """A torch ``IterableDataset`` streaming of padded batches from a dataset file.

    Reads the file in blocks (memory bounded by ``block_size`` clusters), optionally shuffles
    within a block with a seeded generator, and yields dicts of tensors:
    ``x`` (B, n_max, 4) float32 [x_proj, y_proj, v_los, valid], ``member`` (B, n_max) bool,
    ``theta`` (B, 1) float32 log10 M. In a ``DataLoader`` with several workers each worker reads
    a disjoint share of the blocks.
    """

    def __init__(self, path: str | os.PathLike, batch_size: int = 256, n_max: int = 2048,
                 shuffle: bool = False, seed: int = 0, block_size: int = 8192,
                 index: np.ndarray | None = None):
        super().__init__()
        self.dataset = ClusterDataset(path)
        self.batch_size, self.n_max = batch_size, n_max
        self.shuffle, self.seed, self.block_size = shuffle, seed, block_size
        self.index = np.arange(len(self.dataset)) if index is None else np.sort(index)
        self.epoch = 0

    def __len__(self) -> int:
        return int(np.ceil(self.index.size / self.batch_size))

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, self.epoch])
        blocks = [self.index[i:i + self.block_size]
                  for i in range(0, self.index.size, self.block_size)]
        if self.shuffle:
            blocks = [blocks[i] for i in rng.permutation(len(blocks))]
        if info is not None:
            blocks = blocks[info.id::info.num_workers]
        for block in blocks:
            cs = self.dataset.read_index(block)
            order = rng.permutation(len(cs)) if self.shuffle else np.arange(len(cs))
            for start in range(0, len(cs), self.batch_size):
                sub = cs.select(order[start:start + self.batch_size])
                x = pad(sub, self.n_max)
                member = ragged_to_padded(sub.galaxies["member"], sub.offsets,
                                          n_max=self.n_max)[0]
                yield {
                    "x": torch.from_numpy(x),
                    "member": torch.from_numpy(member),
                    "theta": torch.from_numpy(sub.log_m.astype(np.float32)[:, None]),
                }
        self.epoch += 1
