"""The package's layout keeps its promises: imports follow the data flow, CLIs stay thin."""

import ast
import pathlib

import pyro_clusters

ROOT = pathlib.Path(pyro_clusters.__file__).parent
#: the pipeline's stages, upstream first; a module may import its own stage and those above
LAYERS = ["defaults", "cosmology", "data", "simulator", "catalog", "features", "nets",
          "training", "estimators", "membership", "diagnostics", "realfield", "pipeline", "cli",
          "__main__"]


def _modules():
    for f in sorted(ROOT.rglob("*.py")):
        parts = f.relative_to(ROOT).with_suffix("").parts
        yield f, parts[0] if parts[0] != "__init__" else None


def _imports(path: pathlib.Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pyro_clusters."):
            yield node.module.split(".")[1], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module == "pyro_clusters":
            for a in node.names:  # from pyro_clusters import defaults
                if a.name in LAYERS:
                    yield a.name, node.lineno
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("pyro_clusters."):
                    yield a.name.split(".")[1], node.lineno


def test_every_stage_is_known_and_no_module_imports_upward():
    upward = []
    for path, stage in _modules():
        if stage is None:
            continue
        assert stage in LAYERS, f"{path}: stage {stage!r} missing from the layer list"
        for target, line in _imports(path):
            if LAYERS.index(target) > LAYERS.index(stage):
                upward.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not upward, upward


def test_command_line_code_lives_in_cli_or_in_small_modules():
    """argparse outside cli/ only in a module small enough to read at once (< 350 lines)."""
    for path, stage in _modules():
        text = path.read_text()
        if "import argparse" in text and stage != "cli":
            assert len(text.splitlines()) < 350, path
