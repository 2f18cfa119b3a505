"""The documentation site builds without warnings and its API reference covers every module."""

import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _modules() -> set[str]:
    names = set()
    for path in (ROOT / "pyro_clusters").rglob("*.py"):
        if path.name == "__main__.py":
            continue
        name = path.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
        names.add(name.removesuffix(".__init__"))
    return names


def test_api_reference_lists_every_module():
    listed = set()
    for page in (ROOT / "docs" / "api").glob("*.md"):
        listed |= set(re.findall(r"^::: (\S+)$", page.read_text(), flags=re.MULTILINE))
    assert listed == _modules()


def test_docs_do_not_cite_internal_paper_files():
    """Papers are cited by authors, year and arXiv id, never by the project's file names."""
    for path in [*ROOT.glob("docs/**/*.md"), ROOT / "README.md",
                 *ROOT.glob("pyro_clusters/**/*.py"), *ROOT.glob("experiments/*.py")]:
        assert not re.search(r"[Pp]apers/00\d|shared/|\(00[0-4][ ,;)]", path.read_text()), path


def test_site_builds_strict(tmp_path):
    """``mkdocs build --strict``: a broken link, a missing page or a docstring griffe cannot
    parse is an error."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                          str(tmp_path / "site")], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    api = (tmp_path / "site" / "api" / "estimators" / "index.html").read_text()
    assert "pyro_clusters.estimators.registry.register" in api
