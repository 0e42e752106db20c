"""Binder opens the chapters as notebooks (postBuild and the project's JupyterLab settings),
and a release tag sets every version number (tools/set_version.py)."""

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OVERRIDES = ROOT / "jupyter_config" / "lab-settings" / "overrides.json"
DOCMANAGER = "@jupyterlab/docmanager-extension:plugin"

spec = importlib.util.spec_from_file_location("set_version", ROOT / "tools" / "set_version.py")
set_version = importlib.util.module_from_spec(spec)
spec.loader.exec_module(set_version)


def test_binder_builds_from_the_root_and_opens_markdown_as_notebooks():
    """repo2docker uses binder/ alone when it exists; the root environment.yml (kept in step with
    pyproject.toml by tests/test_environment_sync.py) and postBuild are used only without it."""
    assert not (ROOT / "binder").exists() and not (ROOT / ".binder").exists()
    viewers = json.loads(OVERRIDES.read_text())[DOCMANAGER]["defaultViewers"]
    assert viewers == {"markdown": "Jupytext Notebook", "myst": "Jupytext Notebook"}
    post_build = (ROOT / "postBuild").read_text()
    assert os.access(ROOT / "postBuild", os.X_OK)
    assert "cp jupyter_config/lab-settings/overrides.json" in post_build


def test_post_build_installs_the_settings_where_jupyterlab_reads_them(tmp_path):
    prefix = tmp_path / "prefix"
    subprocess.run(["bash", str(ROOT / "postBuild")], cwd=ROOT, check=True,
                   env={**os.environ, "NB_PYTHON_PREFIX": str(prefix)})
    installed = prefix / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    assert installed.read_text() == OVERRIDES.read_text()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_jupyterlab_started_with_the_project_config_defaults_markdown_to_jupytext(tmp_path):
    """A live JupyterLab server (the project's JUPYTER_CONFIG_DIR, as make lab sets it) reports
    the Jupytext notebook as the default viewer of Markdown and MyST files."""
    port, token = _free_port(), "launch-test"
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(ROOT / "jupyter_config"),
           "JUPYTER_PLATFORM_DIRS": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/lab/api/settings/{DOCMANAGER}?token={token}"
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    settings = json.load(response)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not answer within a minute")
    finally:
        server.terminate()
        server.wait(timeout=30)
    default = settings["schema"]["properties"]["defaultViewers"]["default"]
    assert default["markdown"] == default["myst"] == "Jupytext Notebook"


def _release_tree(root: Path) -> Path:
    for name, _, _ in set_version.TARGETS:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, root / name)
    return root


def test_a_release_tag_sets_every_version(tmp_path):
    tree = _release_tree(tmp_path)
    assert set_version.set_version("v1.2.0rc1", root=tree, today="2027-03-04") == "1.2.0rc1"
    assert '__version__ = "1.2.0rc1"' in (tree / "lib/tdyn/__init__.py").read_text()
    citation = (tree / "CITATION.cff").read_text()
    assert 'version: "1.2.0rc1"' in citation and 'date-released: "2027-03-04"' in citation
    assert "version = {1.2.0rc1}," in (tree / "book/cite.md").read_text()
    set_version.set_version("v1.2.0", root=tree, today="2027-03-05")  # a second release
    citation = (tree / "CITATION.cff").read_text()
    assert citation.count("date-released") == 1 and '"2027-03-05"' in citation


def test_the_package_takes_its_version_from_the_one_place_the_tag_writes():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "tdyn.__version__"}


def test_bad_tags_and_changed_layouts_are_refused_in_one_line(tmp_path, capsys):
    assert set_version.version_of_tag("v1.2") == "1.2"
    for tag in ("1.2.0", "release-1", "v1.2.0-beta", "v"):
        with pytest.raises(ValueError, match="is not v<version>"):
            set_version.version_of_tag(tag)
    tree = _release_tree(tmp_path)
    (tree / "book/cite.md").write_text("no version here\n")
    with pytest.raises(ValueError, match="holds 0 version lines"):
        set_version.set_version("v2.0.0", root=tree)
    assert set_version.main(["release-1"]) == 2  # refused before any file is read
    assert capsys.readouterr().err.strip().count("\n") == 0
