"""tdyn runs outside the repository: a wheel of this checkout, installed in a fresh virtual
environment away from the clone, executes one Part I and one Part II chapter against a copy of
the repository's data/ and profiles (TDYN_DATA), with its parameter specs as package data and
no path into the clone.

The fresh environment gets its dependencies (torch, jupyter, ...) by a path to this
environment's site-packages, which installs nothing and downloads nothing, but not the editable
install of ``lib/`` (a path in a ``.pth`` file is not itself scanned for ``.pth`` files), so
``import tdyn`` there can only find the wheel.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = ["part1/particles", "part2/full_transformer"]


@pytest.fixture(scope="module")
def fresh_env(tmp_path_factory) -> dict[str, str]:
    """A new virtual environment with the wheel of this checkout installed: its python, and the
    environment variables that put it first (and nothing of the clone on the path)."""
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
    venv = out / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"], check=True,
                             capture_output=True, text=True).stdout.strip()
    Path(purelib, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True, timeout=300)
    assert Path(purelib, "tdyn", "specs", "markov_full.yaml").is_file()  # package data
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "VIRTUAL_ENV", "JUPYTER_PATH")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"  # the kernel spec runs "python"
    env["JUPYTER_DATA_DIR"] = str(out / "jupyter")
    return {"python": str(python), "purelib": purelib, "env": env}


def test_the_wheel_imports_nothing_from_the_clone(fresh_env, tmp_path):
    code = ("import sys, tdyn, tdyn.runs.store as s, tdyn.runs.params as p; "
            "print(s.__file__); print(p.ParameterSpec.load('markov_full').experiment); "
            "print(s.data_root()); print(tdyn.__version__); print(sys.path)")
    env = {**fresh_env["env"], "TDYN_DATA": str(tmp_path / "d")}
    out = subprocess.run([fresh_env["python"], "-c", code], capture_output=True, text=True,
                         env=env, cwd=tmp_path, check=True).stdout.splitlines()
    assert out[0].startswith(fresh_env["purelib"])
    assert out[1] == "tdyn.markov.experiment" and out[2] == str(tmp_path / "d")
    from tdyn import __version__

    assert out[3] == __version__
    assert str(ROOT / "lib") not in out[4]


@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_a_chapter_executes_outside_the_repository(fresh_env, tmp_path, chapter):
    data = tmp_path / "copy" / "data"  # the layout of a copy of the repository
    shutil.copytree(ROOT / "data", data)
    shutil.copytree(ROOT / "notebooks" / "params", tmp_path / "copy" / "notebooks" / "params")
    work = tmp_path / "reader"
    work.mkdir()
    notebook = work / f"{Path(chapter).name}.ipynb"
    subprocess.run([sys.executable, "-m", "jupytext", "--to", "ipynb", "-o", str(notebook),
                    str(ROOT / "book" / f"{chapter}.md")], check=True, capture_output=True)
    content = json.loads(notebook.read_text())  # a last cell: which tdyn did the kernel run?
    content["cells"].append({"cell_type": "code", "metadata": {}, "outputs": [],
                             "execution_count": None,
                             "source": "import tdyn\nprint(tdyn.__file__)"})
    notebook.write_text(json.dumps(content))
    env = {**fresh_env["env"], "TDYN_DATA": str(data)}
    result = subprocess.run(
        [fresh_env["python"], "-m", "nbconvert", "--to", "notebook", "--execute",
         "--inplace", "--ExecutePreprocessor.timeout=600", str(notebook)],
        capture_output=True, text=True, env=env, cwd=work, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    cells = json.loads(notebook.read_text())["cells"]
    errors = [o for c in cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert errors == [] and any(c.get("outputs") for c in cells)
    assert "".join(cells[-1]["outputs"][0]["text"]).startswith(fresh_env["purelib"])
