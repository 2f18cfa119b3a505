"""Real fields: reading redshift tables, the sky <-> phase-space round trip, bad input."""

import numpy as np
import pytest

from pyro_clusters.cosmology import C_KMS
from pyro_clusters.realfield.table import (
    ObservationError,
    cluster_to_table,
    observe_field,
    read_redshift_table,
    write_redshift_table,
)


@pytest.fixture(scope="module")
def clusters(simulated):
    return simulated("cylinder", (4,), seed=7, mass_range=(14.0, 15.0))[0]


@pytest.mark.parametrize("center", [(150.0, 30.0, 0.117), (0.05, -12.0, 0.117),
                                    (359.98, 5.0, 0.05), (210.0, 84.0, 0.3)])
def test_mock_cluster_round_trip(tmp_path, clusters, center):
    """Sky placement -> CSV -> read -> observe gives the same phase space.

    Centres include RA wrapping through 0/360 and a field near the pole. Tolerance: 1e-4
    h^-1 Mpc and 0.01 km/s, far below float32 storage of the mock itself (the transforms are
    exact inverses in float64).
    """
    ra0, dec0, z = center
    for i in range(len(clusters)):
        ra, dec, cz = cluster_to_table(clusters, i, ra0, dec0, z)
        path = write_redshift_table(tmp_path / f"c{i}.csv", ra, dec, cz)
        obs = observe_field(read_redshift_table(path), ra0, dec0, z, 1.6, 2200.0)
        g, h = clusters.galaxies_of(i), obs.clusters.galaxies
        assert obs.n_gal == clusters.n_gal[i]  # every galaxy survives the same cut
        np.testing.assert_allclose(h["x_proj"], g["x_proj"], atol=1e-4)
        np.testing.assert_allclose(h["y_proj"], g["y_proj"], atol=1e-4)
        np.testing.assert_allclose(h["v_los"], g["v_los"], atol=1e-2)
        assert obs.clusters.attrs["setup"] == "cylinder"


def test_whitespace_table_with_redshift_column_and_custom_names(tmp_path, clusters):
    ra, dec, cz = cluster_to_table(clusters, 0, 194.95, 27.98, 0.117)
    lines = ["# a comment line", "RAJ2000 DEJ2000 zhelio mag"]
    lines += [f"{a:.10f} {d:.10f} {c / C_KMS:.12f} 17.0"
              for a, d, c in zip(ra, dec, cz, strict=True)]
    (tmp_path / "t.txt").write_text("\n".join(lines) + "\n")
    t = read_redshift_table(tmp_path / "t.txt")
    assert t.columns == {"ra": "RAJ2000", "dec": "DEJ2000", "z": "zhelio"}
    obs = observe_field(t, 194.95, 27.98, 0.117, 1.6, 2200.0)
    np.testing.assert_allclose(obs.clusters.galaxies["v_los"],
                               clusters.galaxies_of(0)["v_los"], atol=0.05)
    (tmp_path / "u.csv").write_text("alpha_x,delta_x,velo\n10,20,30000\n")
    u = read_redshift_table(tmp_path / "u.csv", ra="alpha_x", dec="DELTA_X", cz="velo")
    assert u.cz[0] == 30000.0 and u.columns["dec"] == "delta_x"


def test_cut_drops_far_and_fast_galaxies(tmp_path):
    z = 0.117
    from pyro_clusters.cosmology import projected_to_sky

    x = np.array([0.1, 1.5, 1.7, 0.2, 0.3])
    v = np.array([100.0, -2000.0, 0.0, 2300.0, -2150.0])
    ra, dec, cz = projected_to_sky(x, np.zeros(5), v, 30.0, 10.0, z)
    path = write_redshift_table(tmp_path / "t.csv", ra, dec, cz)
    obs = observe_field(read_redshift_table(path), 30.0, 10.0, z, 1.6, 2200.0)
    assert obs.n_gal == 3 and list(obs.row) == [0, 1, 4]
    assert obs.coverage_radius == pytest.approx(1.7, abs=1e-6)
    assert obs.velocity_span == pytest.approx((-2150.0, 2300.0), abs=1e-3)


def test_nan_rows_dropped_and_counted(tmp_path):
    (tmp_path / "t.csv").write_text("ra,dec,z\n10,20,0.1\n10.1,,0.1\n10.2,20.2,nan\n"
                                    "10.3,20.3,0.1\n")
    t = read_redshift_table(tmp_path / "t.csv")
    assert t.n_rows == 4 and t.n_dropped == 2 and list(t.row) == [0, 3]


@pytest.mark.parametrize("text, kwargs, match", [
    ("ra,dec,mag\n1,2,3\n", {}, r"no column for redshift"),
    ("x,dec,z\n1,2,0.1\n", {}, r"no column for RA"),
    ("ra,dec,z\n1,2,0.1\n", {"dec": "DE_ICRS"}, r"'DE_ICRS' .* not in the table"),
    ("ra,dec,z\n1,2,0.1\n1,two,0.1\n", {}, r"non-numeric value 'two' in data row 2"),
    ("ra,dec,z\n1,2,30000\n", {}, r"values above 20.*--cz-col"),
    ("ra,dec,cz\n1,2,0.1\n1,95,0.1\n", {}, r"declinations outside"),
    ("", {}, r"is empty"),
    ("\n  \n", {}, r"is empty"),
    ("ra,dec,z\n", {}, r"header \(ra, dec, z\) but no data rows"),
    ("ra,dec,z\n1,2,-1\n1,2,-99\n", {}, r"every redshift .* is negative"),
    ("ra,dec,z\n1,,0.1\n,2,0.1\n", {}, r"every row .* misses a value"),
])
def test_bad_tables_raise_clear_errors(tmp_path, text, kwargs, match):
    (tmp_path / "t.csv").write_text(text)
    with pytest.raises(ObservationError, match=match):
        read_redshift_table(tmp_path / "t.csv", **kwargs)


def test_unreadable_table_is_one_line(tmp_path):
    """astropy's format guessing writes pages; the error keeps its first line."""
    (tmp_path / "t.csv").write_text("ra dec z\n1 2\n3 4 5 6 7\n")
    with pytest.raises(ObservationError) as err:
        read_redshift_table(tmp_path / "t.csv")
    assert "cannot read" in str(err.value) and str(err.value).count("\n") == 0


def test_negative_redshifts_dropped_and_counted(tmp_path):
    (tmp_path / "t.csv").write_text("ra,dec,z\n10,20,0.1\n10.1,20.1,-1\n10.2,20.2,nan\n"
                                    "10.3,20.3,-9999\n10.4,20.4,0.11\n")
    t = read_redshift_table(tmp_path / "t.csv")
    assert (t.n_rows, t.n_dropped, t.n_negative) == (5, 1, 2)
    assert list(t.row) == [0, 4]


def _cone(n=200, ra0=194.95, dec0=27.98, radius=0.5, seed=0):
    rng = np.random.default_rng(seed)
    r, phi = radius * np.sqrt(rng.uniform(size=n)), rng.uniform(0, 2 * np.pi, n)
    ra = ra0 + r * np.cos(phi) / np.cos(np.deg2rad(dec0))
    return ra, dec0 + r * np.sin(phi)


def test_ra_in_hours_is_caught_or_converted(tmp_path):
    from pyro_clusters.realfield.table import RedshiftTable, ra_in_degrees

    ra, dec = _cone()
    n = ra.size
    args = (np.full(n, 35000.0), np.arange(n), n, 0, {"ra": "ra", "dec": "dec", "z": "z"})
    degrees = RedshiftTable(ra, dec, *args)
    hours = RedshiftTable(ra / 15.0, dec, *args)
    same, ra0 = ra_in_degrees(degrees, 194.95, 27.98)  # degrees pass untouched
    assert same is degrees and ra0 == 194.95
    with pytest.raises(ObservationError, match="look like hours.*--ra-unit hour"):
        ra_in_degrees(hours, 194.95 / 15.0, 27.98)
    converted, ra0 = ra_in_degrees(hours, 194.95 / 15.0, 27.98, "hour")
    np.testing.assert_allclose(converted.ra, ra)
    assert ra0 == pytest.approx(194.95)
    kept, _ = ra_in_degrees(hours, 194.95 / 15.0, 27.98, "deg")  # the user says degrees
    assert kept is hours
    # a genuine field near RA 10 deg (all RA < 24) is not mistaken for hours
    ra_small, dec_small = _cone(ra0=10.0, dec0=5.0)
    small = RedshiftTable(ra_small, dec_small, *args)
    assert ra_in_degrees(small, 10.0, 5.0)[0] is small
    with pytest.raises(ObservationError, match="RA >= 24"):
        ra_in_degrees(degrees, 194.95, 27.98, "hour")
    # a centre in hours beside a table in degrees: the empty-cylinder error says so
    with pytest.raises(ObservationError, match="centre RA .* looks like hours"):
        observe_field(degrees, 194.95 / 15.0, 27.98, 0.117, 1.6, 2200.0)


def test_missing_file_and_empty_cylinder(tmp_path):
    with pytest.raises(ObservationError, match="no table"):
        read_redshift_table(tmp_path / "nope.csv")
    (tmp_path / "t.csv").write_text("ra,dec,z\n10,20,0.1\n10.01,20,0.1\n")
    t = read_redshift_table(tmp_path / "t.csv")
    with pytest.raises(ObservationError, match="no galaxy of the table"):
        observe_field(t, 100.0, -20.0, 0.1, 1.6, 2200.0)
    with pytest.raises(ObservationError, match="declination"):
        observe_field(t, 10.0, 95.0, 0.1, 1.6, 2200.0)
    with pytest.raises(ObservationError, match="redshift"):
        observe_field(t, 10.0, 20.0, -0.1, 1.6, 2200.0)
