"""Validation on real surveys: mass conversions, the manifest, offsets and pulls on mocks."""

import csv
import json

import numpy as np
import pytest

from pyro_clusters.realfield.bundle import CylinderModel
from pyro_clusters.realfield.survey import mock_survey
from pyro_clusters.realfield.table import ObservationError, write_redshift_table
from pyro_clusters.realfield.validation import (
    MassColumn,
    read_manifest,
    summarise,
    to_m200c,
    validate,
)
from pyro_clusters.simulator import FlatLogMassPrior, SimulatorConfig, simulate_selected


def test_published_masses_become_m200c_in_h_inverse_msun():
    from colossus.halo import mass_adv

    from pyro_clusters.cosmology import get_cosmology

    get_cosmology()
    z = np.array([0.05, 0.2, 0.1])
    m500 = to_m200c(np.array([2.0, 8.0, np.nan]), z,
                    MassColumn("x", "m", definition="500c", unit_msun=1e14, h=0.7))
    direct = mass_adv.changeMassDefinitionCModel(1.4e14, 0.05, "500c", "200c",
                                                 c_model="diemer19")[0]
    assert m500[0] == pytest.approx(np.log10(direct), abs=1e-9)
    assert 0.1 < m500[0] - np.log10(1.4e14) < 0.2  # M200c above M500c by 0.1-0.2 dex
    assert np.isnan(m500[2])
    same = to_m200c(np.array([3.0]), z[:1], MassColumn("c", "m", unit_msun=1e14, h=None))
    assert same[0] == pytest.approx(np.log10(3e14))
    with pytest.raises(ValueError, match="definition"):
        MassColumn("x", "m", definition="2500c")


def test_manifest_errors(tmp_path):
    with pytest.raises(ObservationError, match="no manifest"):
        read_manifest(tmp_path / "none.json")
    (tmp_path / "m.json").write_text(json.dumps({"fields": []}))
    with pytest.raises(ObservationError, match="no fields"):
        read_manifest(tmp_path / "m.json")
    (tmp_path / "m.json").write_text(json.dumps(
        {"fields": [{"name": "a", "galaxies": "g.csv", "centres": "c.csv"}]}))
    with pytest.raises(ObservationError, match="no file"):
        read_manifest(tmp_path / "m.json")


def test_true_masses_give_small_offsets_and_unit_pulls(tmp_path):
    """Mock clusters with their true M200c as the 'published' mass (error 0.05 dex): the
    offsets scatter as the posterior does, and the pulls are about unit normal."""
    rng = np.random.default_rng(12)
    cs = simulate_selected(12, FlatLogMassPrior(14.3, 15.0), SimulatorConfig(setup="cylinder"),
                           rng)[0]
    table, centres = mock_survey(cs, seed=3)
    write_redshift_table(tmp_path / "g.csv", table.ra, table.dec, table.cz)
    with open(tmp_path / "c.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "ra", "dec", "z", "m200c_1e14_hinv", "err"])
        for i in range(len(cs)):
            m = 10 ** (cs.log_m[i] - 14.0)
            w.writerow([centres.name[i], centres.ra[i], centres.dec[i], centres.z[i], m,
                        m * 0.05 * np.log(10)])
    (tmp_path / "m.json").write_text(json.dumps({
        "name": "mock", "fields": [{"name": "mock", "galaxies": "g.csv", "centres": "c.csv"}],
        "masses": [{"label": "truth", "column": "m200c_1e14_hinv", "err": "err",
                    "definition": "200c", "unit_msun": 1e14, "h": None}]}))
    rows = validate(read_manifest(tmp_path / "m.json"), CylinderModel.load(), n_draws=500)
    assert len(rows) == 12 and all(r["status"] == "ok" for r in rows)
    np.testing.assert_allclose([r["log_m_pub"] for r in rows], cs.log_m, atol=1e-6)
    np.testing.assert_allclose([r["err_pub_dex"] for r in rows], 0.05, rtol=1e-6)
    s = summarise(rows)["truth"]
    # 12 clusters: posterior sd ~0.18 dex; RMS offset and pull RMS within generous bounds
    assert s["n"] == 12 and s["rms_offset_dex"] < 0.35 and 0.4 < s["pull_rms"] < 1.6
    assert s["n_within_2sigma"] >= 10
