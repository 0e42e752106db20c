"""tdyn runs outside the repository: a wheel, unpacked away from the clone and ahead of it on
the path, executes one Part I and one Part II chapter against a copy of the repository's
data/ and profiles (TDYN_DATA), with its parameter specs as package data and no path into the
clone."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = ["part1/particles", "part2/full_transformer"]


@pytest.fixture(scope="module")
def unpacked_wheel(tmp_path_factory):
    """The wheel of this checkout, unpacked (a pure-Python wheel installs by unpacking)."""
    out = tmp_path_factory.mktemp("wheel")
    source = out / "source"  # setuptools writes build/ into the tree it builds: a copy
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "lib", source / "lib",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(source)], check=True, capture_output=True,
                   timeout=300)
    (wheel,) = out.glob("tdyn-*.whl")
    site = out / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    assert (site / "tdyn" / "specs" / "markov_full.yaml").is_file()  # package data
    return site


def test_the_wheel_imports_nothing_from_the_clone(unpacked_wheel, tmp_path):
    code = ("import tdyn.runs.store as s, tdyn.runs.params as p; print(s.__file__); "
            "print(p.ParameterSpec.load('markov_full').experiment); print(s.data_root())")
    env = {**os.environ, "PYTHONPATH": str(unpacked_wheel), "TDYN_DATA": str(tmp_path / "d")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=tmp_path, check=True).stdout.splitlines()
    assert out[0].startswith(str(unpacked_wheel))
    assert out[1] == "tdyn.markov.experiment" and out[2] == str(tmp_path / "d")


@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_a_chapter_executes_outside_the_repository(unpacked_wheel, tmp_path, chapter):
    data = tmp_path / "copy" / "data"  # the layout of a copy of the repository
    shutil.copytree(ROOT / "data", data)
    shutil.copytree(ROOT / "notebooks" / "params", tmp_path / "copy" / "notebooks" / "params")
    work = tmp_path / "reader"
    work.mkdir()
    notebook = work / f"{Path(chapter).name}.ipynb"
    subprocess.run([sys.executable, "-m", "jupytext", "--to", "ipynb", "-o", str(notebook),
                    str(ROOT / "book" / f"{chapter}.md")], check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(unpacked_wheel), "TDYN_DATA": str(data)}
    result = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
         "--inplace", "--ExecutePreprocessor.timeout=600", str(notebook)],
        capture_output=True, text=True, env=env, cwd=work, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    cells = json.loads(notebook.read_text())["cells"]
    errors = [o for c in cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert errors == [] and any(c.get("outputs") for c in cells)
