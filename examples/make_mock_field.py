"""Write a mock redshift survey around one simulated cluster, as a real catalogue would look.

    python examples/make_mock_field.py --log-m 14.8 --seed 4 --out docs/examples/mock_field.csv

The cluster is simulated in the cylinder setup with a wider aperture (2.5 h^-1 Mpc) and velocity
window (+-5000 km/s) than the default model's, so the table holds galaxies that
``python -m pyro_clusters infer`` must cut away, then placed on the sky at (RA, Dec, z) with
the exact inverse of the projection ``infer`` uses. Columns: RAJ2000, DEJ2000 [deg], zhelio,
a made-up r-band magnitude (to show that extra columns are ignored), and three rows with a
missing redshift (dropped and counted by ``infer``). The true log M is printed, not written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pyro_clusters.cosmology import C_KMS
from pyro_clusters.realfield.table import cluster_to_table
from pyro_clusters.simulator import SimulatorConfig, simulate_selected
from pyro_clusters.simulator.config import ObservationConfig
from pyro_clusters.simulator.priors import FlatLogMassPrior


def main() -> None:
    """Parse the options and write the table."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--log-m", type=float, default=14.8, help="log10(M200c / h^-1 Msun)")
    p.add_argument("--ra", type=float, default=194.953)
    p.add_argument("--dec", type=float, default=27.981)
    p.add_argument("--z", type=float, default=0.117)
    p.add_argument("--seed", type=int, default=4)
    p.add_argument("--out", type=Path, default=Path("docs/examples/mock_field.csv"))
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    config = SimulatorConfig(setup="cylinder", z=args.z,
                             observation=ObservationConfig(aperture=2.5, v_cut=5000.0))
    prior = FlatLogMassPrior(args.log_m - 1e-6, args.log_m + 1e-6)
    clusters = simulate_selected(1, prior, config, rng)[0]
    ra, dec, cz = cluster_to_table(clusters, 0, args.ra, args.dec, args.z)
    z = cz / C_KMS
    z[rng.choice(z.size, 3, replace=False)] = np.nan
    mag = rng.uniform(15.0, 17.7, z.size)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = ["RAJ2000,DEJ2000,zhelio,rmag"] + [
        f"{a:.7f},{d:.7f},{'' if np.isnan(zz) else f'{zz:.6f}'},{m:.2f}"
        for a, d, zz, m in zip(ra, dec, z, mag, strict=True)]
    args.out.write_text("\n".join(rows) + "\n")
    print(f"wrote {args.out}: {z.size} galaxies around a cluster with log10 M200c = "
          f"{clusters.log_m[0]:.3f} at RA {args.ra}, Dec {args.dec}, z {args.z}")


if __name__ == "__main__":
    main()
