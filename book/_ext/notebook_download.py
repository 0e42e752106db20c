"""Sphinx extension: offer each chapter's executed notebook (.ipynb) for download.

myst-nb writes the executed notebook of every chapter to ``<build>/jupyter_execute/``, and
sphinx-book-theme adds an ``.ipynb`` entry to the page's download menu when the page context
names an ``ipynb_source`` under ``_sources/``; for MyST-markdown chapters nothing sets it.
This copies the executed notebook next to the page's sources and sets it, so readers get
the chapter with all its outputs, ready to open in JupyterLab, Binder or Colab.

In a published build (``tdyn_publishing`` set, see ``launch_links.py``) the copy starts with
one install cell, tagged ``remove-cell``: where ``tdyn`` is not importable (Colab, any machine
without the repository) it clones the repository at the commit the page was built from,
installs ``tdyn`` from it and points ``TDYN_DATA`` at its committed results; elsewhere it does
nothing.
"""

import json
import shutil
from pathlib import Path

INSTALL_CELL = """\
# On Colab or any machine without the book's repository, run this cell first: it installs
# tdyn at the commit this page was built from, with the committed results it plots.
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("tdyn") is None:
    subprocess.run(["git", "clone", "-q", "{repository}", "tdyn-book"], check=True)
    subprocess.run(["git", "-C", "tdyn-book", "checkout", "-q", "{commit}"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "./tdyn-book"], check=True)
    os.environ["TDYN_DATA"] = os.path.abspath("tdyn-book/data")
"""


def with_install_cell(notebook: dict, repository: str, commit: str) -> dict:
    """``notebook`` with :data:`INSTALL_CELL` first (tagged ``remove-cell``)."""
    cell = {"cell_type": "code", "execution_count": None, "outputs": [],
            "metadata": {"tags": ["remove-cell"]},
            "source": INSTALL_CELL.format(repository=repository, commit=commit)}
    return {**notebook, "cells": [cell, *notebook["cells"]]}


def _offer_executed_notebook(app, pagename, templatename, context, doctree):
    config = getattr(app.env, "mystnb_config", None)
    if config is None or not config.output_folder:
        return
    executed = Path(config.output_folder) / f"{pagename}.ipynb"
    if not executed.is_file():
        return
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    publishing = getattr(app.config, "tdyn_publishing", None)
    if publishing:
        notebook = json.loads(executed.read_text())
        notebook = with_install_cell(notebook, publishing["repository_url"],
                                     publishing["commit"])
        target.write_text(json.dumps(notebook, indent=1))
    else:
        shutil.copyfile(executed, target)
    context["ipynb_source"] = f"{pagename}.ipynb"


def setup(app):
    # Before sphinx-book-theme builds the header buttons (priority 501).
    app.connect("html-page-context", _offer_executed_notebook, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
