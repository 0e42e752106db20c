"""Sphinx extension: offer each chapter's executed notebook (.ipynb) for download.

myst-nb writes the executed notebook of every chapter to ``<build>/jupyter_execute/``, and
sphinx-book-theme adds an ``.ipynb`` entry to the page's download menu when the page context
names an ``ipynb_source`` under ``_sources/``; for MyST-markdown chapters nothing sets it.
This copies the executed notebook next to the page's sources and sets it, so readers get
the chapter with all its outputs, ready to open in JupyterLab, Binder or Colab.
"""

import shutil
from pathlib import Path


def _offer_executed_notebook(app, pagename, templatename, context, doctree):
    config = getattr(app.env, "mystnb_config", None)
    if config is None or not config.output_folder:
        return
    executed = Path(config.output_folder) / f"{pagename}.ipynb"
    if not executed.is_file():
        return
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(executed, target)
    context["ipynb_source"] = f"{pagename}.ipynb"


def setup(app):
    # Before sphinx-book-theme builds the header buttons (priority 501).
    app.connect("html-page-context", _offer_executed_notebook, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
