"""python -m pyro_clusters simulate."""

import h5py
import numpy as np
import pytest

from pyro_clusters.cli.simulate import main
from pyro_clusters.data import ClusterDataset


def test_same_seed_same_file_for_any_worker_count(tmp_path):
    args = ["--setup", "cylinder", "--prior", "flat", "--n", "250", "--seed", "5",
            "--batch-size", "100", "--no-progress"]
    assert main(args + ["--out", str(tmp_path / "w1.h5"), "--workers", "1"]) == 0
    assert main(args + ["--out", str(tmp_path / "w2.h5"), "--workers", "2"]) == 0
    with h5py.File(tmp_path / "w1.h5") as a, h5py.File(tmp_path / "w2.h5") as b:
        for group in ("clusters", "galaxies"):
            for k in a[group]:
                np.testing.assert_array_equal(a[group][k][:], b[group][k][:])
        np.testing.assert_array_equal(a["offsets"][:], b["offsets"][:])
    ds = ClusterDataset(tmp_path / "w1.h5")
    assert len(ds) == 250
    assert ds.metadata["seed"] == 5 and ds.metadata["setup"] == "cylinder"
    assert ds.metadata["config"]["observation"]["aperture"] == 1.6
    assert ds.metadata["n_simulated"] >= 250


def test_hmf_prior_range(tmp_path):
    out = tmp_path / "t.h5"
    assert main(["--setup", "idealized", "--prior", "hmf", "--n", "50", "--seed", "1",
                 "--out", str(out), "--no-progress"]) == 0
    lm = ClusterDataset(out).read().log_m
    assert lm.min() >= 14.0 and lm.max() <= 15.3


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--aperture", "-1"], "aperture"),
        (["--z", "-0.5"], "z must be"),
        (["--log-m-min", "11"], "supported range"),
        (["--n", "0"], "positive"),
    ],
)
def test_bad_input_clear_error_and_no_file(tmp_path, capsys, extra, message):
    out = tmp_path / "x.h5"
    args = ["--setup", "cylinder", "--n", "10", "--seed", "1", "--out", str(out), "--no-progress"]
    # later flags win in argparse, so extra overrides the defaults above
    assert main(args + extra) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_output_folder_created_or_clear_error(tmp_path, capsys):
    out = tmp_path / "new" / "folder" / "x.h5"
    args = ["--setup", "cylinder", "--n", "10", "--seed", "1", "--no-progress"]
    assert main(args + ["--out", str(out)]) == 0
    assert len(ClusterDataset(out)) == 10
    (tmp_path / "file").write_text("")
    assert main(args + ["--out", str(tmp_path / "file" / "x.h5")]) == 2
    assert "a file is in the way" in capsys.readouterr().err


def test_console_script_version_and_help(capsys):
    import importlib
    import re
    from importlib.metadata import entry_points

    from pyro_clusters import __version__
    from pyro_clusters.__main__ import main as cli
    from pyro_clusters.cli import COMMANDS

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "pyro-clusters"]
    assert script.value == "pyro_clusters.__main__:main"
    assert cli(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"pyro-clusters {__version__}"
    for name, (module, _) in COMMANDS.items():
        parser = importlib.import_module(module).build_parser()
        with pytest.raises(SystemExit):
            parser.parse_args(["--version"])
        assert __version__ in capsys.readouterr().out
        for action in parser._actions:
            if action.option_strings and action.dest not in ("help", "version"):
                assert action.help, f"{name} {action.option_strings} has no help"
        text = parser.format_help()
        assert text.startswith(f"usage: pyro-clusters {name}")
        assert not re.search(r":(mod|func|class|meth):|``", text), name
    seed_help = importlib.import_module(COMMANDS["infer"][0]).build_parser().format_help()
    assert "(default: 4000)" in seed_help and "(default: results/infer)" in seed_help


def test_existing_output_refused_without_overwrite(tmp_path, capsys):
    out = tmp_path / "x.h5"
    args = ["--setup", "idealized", "--n", "10", "--seed", "1", "--out", str(out),
            "--no-progress"]
    assert main(args) == 0
    before = out.read_bytes()
    assert main(args[:5] + ["2"] + args[6:]) == 2  # another seed, same file: refused
    err = capsys.readouterr().err
    assert "exists" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert out.read_bytes() == before
    assert main(args + ["--overwrite"]) == 0


def test_interrupt_ends_in_one_line_and_leaves_no_file(tmp_path, capsys, monkeypatch):
    from pyro_clusters.__main__ import main as cli
    from pyro_clusters.simulator import files

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(files, "_batch", interrupted)
    out = tmp_path / "x.h5"
    assert cli(["simulate", "--setup", "idealized", "--n", "10", "--seed", "1", "--out",
                str(out), "--no-progress"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "interrupted" in err[0]
    assert not out.exists() and list(tmp_path.iterdir()) == []
