"""Ragged cluster sets and their HDF5 form."""

import os

import h5py
import numpy as np
import pytest

from pyro_clusters.data import (
    ClusterDataset,
    ClusterSet,
    DatasetError,
    DatasetWriter,
    pad,
    read_dataset,
    split_indices,
    write_dataset,
)
from pyro_clusters.simulator import FlatLogMassPrior, SimulatorConfig, simulate, simulate_selected


@pytest.fixture(scope="module")
def clusters():
    return simulate(np.linspace(14.0, 15.0, 30), SimulatorConfig(), np.random.default_rng(0))


def assert_same(a: ClusterSet, b: ClusterSet):
    np.testing.assert_array_equal(a.offsets, b.offsets)
    assert set(a.clusters) == set(b.clusters) and set(a.galaxies) == set(b.galaxies)
    for k in a.clusters:
        np.testing.assert_array_equal(a.clusters[k], b.clusters[k])
    for k in a.galaxies:
        np.testing.assert_array_equal(a.galaxies[k], b.galaxies[k])


def test_select_and_concatenate(clusters):
    idx = np.array([5, 2, 17])
    sub = clusters.select(idx)
    for j, i in enumerate(idx):
        for k in clusters.galaxies:
            np.testing.assert_array_equal(sub.galaxies_of(j)[k], clusters.galaxies_of(i)[k])
    halves = [clusters.select(np.arange(10)), clusters.select(np.arange(10, 30))]
    both = ClusterSet.concatenate(halves)
    assert_same(both, clusters)


def test_pad_layout(clusters):
    x = pad(clusters, 2048)
    assert x.shape == (30, 2048, 4) and x.dtype == np.float32
    np.testing.assert_array_equal(x[..., 3].sum(axis=1), clusters.n_gal)
    g = clusters.galaxies_of(3)
    np.testing.assert_array_equal(x[3, : len(g["v_los"]), 2], g["v_los"])


def test_inconsistent_columns_refused():
    with pytest.raises(ValueError, match="galaxy column"):
        ClusterSet({"log_m": np.zeros(1)}, {"v_los": np.zeros(3)}, np.array([0, 2]))


def test_hdf5_round_trip_with_metadata(tmp_path, clusters):
    path = write_dataset(tmp_path / "d.h5", clusters, {"seed": 4, "config": {"a": [1, 2]}})
    back, meta = read_dataset(path)
    assert_same(back, clusters)
    assert meta["seed"] == 4 and meta["config"] == {"a": [1, 2]}
    assert meta["n_clusters"] == 30 and meta["complete"]
    ds = ClusterDataset(path)
    assert_same(ds.read(4, 9), clusters.select(np.arange(4, 9)))
    assert_same(ds.read_index(np.array([20, 3])), clusters.select(np.array([20, 3])))
    # readable with h5py alone, as docs/dataset_format.md says
    with h5py.File(path) as f:
        off = f["offsets"][:]
        v = f["galaxies/v_los"][off[2]:off[3]]
    np.testing.assert_array_equal(v, clusters.galaxies_of(2)["v_los"])


def test_streamed_writing_equals_whole(tmp_path, clusters):
    with DatasetWriter(tmp_path / "s.h5") as w:
        for start in range(0, 30, 8):
            w.append(clusters.select(np.arange(start, min(start + 8, 30))))
    assert_same(read_dataset(tmp_path / "s.h5")[0], clusters)


def test_interrupted_write_leaves_nothing(tmp_path, clusters):
    target = tmp_path / "broken.h5"
    with pytest.raises(RuntimeError, match="boom"), DatasetWriter(target) as w:
        w.append(clusters)
        raise RuntimeError("boom")
    assert not target.exists()
    assert os.listdir(tmp_path) == []


def test_truncated_and_foreign_files_are_refused(tmp_path, clusters):
    good = write_dataset(tmp_path / "g.h5", clusters)
    data = good.read_bytes()
    (tmp_path / "trunc.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError):
        ClusterDataset(tmp_path / "trunc.h5")
    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(DatasetError, match="not a pyro-clusters dataset"):
        ClusterDataset(tmp_path / "foreign.h5")
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(DatasetError, match="not an HDF5"):
        ClusterDataset(tmp_path / "text.h5")
    with h5py.File(good, "r+") as f:  # an incomplete write, as a crash would leave it
        f.attrs["complete"] = False
    with pytest.raises(DatasetError, match="not completely written"):
        ClusterDataset(good)


def test_output_folder_created_and_unwritable_output_refused(tmp_path, clusters):
    write_dataset(tmp_path / "missing" / "d.h5", clusters)  # folders are created
    assert (tmp_path / "missing" / "d.h5").is_file()
    with pytest.raises(IsADirectoryError):
        write_dataset(tmp_path, clusters)
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="a file is in the way"):
        write_dataset(tmp_path / "file" / "d.h5", clusters)


def test_split_is_disjoint_and_respects_groups():
    parts = split_indices(1000, (0.8, 0.1, 0.1), seed=1)
    allidx = np.concatenate(parts)
    assert len(allidx) == 1000 and len(np.unique(allidx)) == 1000
    assert [len(p) for p in parts] == [800, 100, 100]
    groups = np.repeat(np.arange(100), 3)  # three lines of sight per halo
    parts = split_indices(300, (0.5, 0.5), seed=2, groups=groups)
    assert not set(groups[parts[0]]) & set(groups[parts[1]])


def test_small_dataset_is_small_on_disk(tmp_path):
    """Chunks follow the first write: 20 clusters take kilobytes, not 64 Ki elements a column."""
    from pyro_clusters.data.hdf5 import _chunk_length

    rng = np.random.default_rng(0)
    cs = simulate_selected(20, FlatLogMassPrior(), SimulatorConfig(setup="cylinder"), rng)[0]
    path = write_dataset(tmp_path / "small.h5", cs)
    raw = sum(np.asarray(v).nbytes for v in (*cs.clusters.values(), *cs.galaxies.values()))
    assert path.stat().st_size < 1.5 * raw + 64_000  # data, not empty chunk space
    with h5py.File(path) as f:
        assert f["galaxies/v_los"].chunks[0] == _chunk_length(cs.n_gal.sum())
    assert [_chunk_length(n) for n in (1, 1000, 1025, 10**6)] == [128, 1024, 2048, 65536]
    back, _ = read_dataset(path)
    np.testing.assert_array_equal(back.galaxies["v_los"], cs.galaxies["v_los"])
