"""Sphinx extension: launch buttons that work, and no placeholder repository anywhere.

Configuration ``tdyn_publishing`` (set by ``tools/build_book.py`` from the environment
variable ``TDYN_REPOSITORY_URL``; empty for a local build) holds the repository URL
(``https://github.com/<org>/<repo>``), the source branch, the branch the published site is
served from, and the folder of the book in the repository.

* With a repository, every chapter gets a launch menu: **Binder** opens the chapter's MyST
  source from the source branch in JupyterLab (jupytext opens it as a notebook), **Colab**
  opens the chapter's executed notebook, which the download extension writes to
  ``_sources/<page>.ipynb`` of the published site.  Thebe is told the real repository.
* Without one, no page names a repository: the Thebe configuration that sphinx-thebe writes
  into every page (naming ``binder-examples/jupyter-stacks-datascience`` by default) is dropped.
"""

from __future__ import annotations

from docutils import nodes

BINDER = "https://mybinder.org"
COLAB = "https://colab.research.google.com"


def repository_parts(url: str) -> tuple[str, str]:
    """(org, repo) of ``https://github.com/<org>/<repo>``."""
    prefix = "https://github.com/"
    parts = url.removeprefix(prefix).strip("/").split("/")
    if not url.startswith(prefix) or len(parts) != 2 or not all(parts):
        raise ValueError(f"TDYN_REPOSITORY_URL={url!r} must be https://github.com/<org>/<repo>")
    return parts[0], parts[1]


def launch_urls(publishing: dict, pagename: str) -> dict[str, str]:
    """The Binder and Colab URLs of chapter ``pagename`` (its path without suffix)."""
    org, repo = repository_parts(publishing["repository_url"])
    book = publishing["path_to_book"].strip("/")
    binder = (f"{BINDER}/v2/gh/{org}/{repo}/{publishing['branch']}"
              f"?urlpath=lab/tree/{book}/{pagename}.md")
    colab = (f"{COLAB}/github/{org}/{repo}/blob/{publishing['pages_branch']}"
             f"/_sources/{pagename}.ipynb")
    return {"Binder": binder, "Colab": colab}


def _add_launch_buttons(app, pagename, templatename, context, doctree):
    publishing = app.config.tdyn_publishing
    if not publishing or doctree is None or "kernelspec" not in app.env.metadata[pagename]:
        return
    icons = {"Binder": "_static/images/logo_binder.svg", "Colab": "_static/images/logo_colab.png"}
    buttons = [{"type": "link", "text": name, "tooltip": f"Launch on {name}", "url": url,
                "icon": icons[name], "label": f"launch-{name.lower()}"}
               for name, url in launch_urls(publishing, pagename).items()]
    context.setdefault("header_buttons", []).append(
        {"type": "group", "tooltip": "Launch interactive content", "icon": "fas fa-rocket",
         "buttons": buttons, "label": "launch-buttons"})


def _drop_placeholder_thebe(app, doctree, docname):
    if app.config.tdyn_publishing:
        return
    for node in list(doctree.findall(nodes.raw)):
        if "x-thebe-config" in node.astext() or "kernelName = " in node.astext():
            node.parent.remove(node)


def _configure_thebe(app, config):
    publishing = config.tdyn_publishing
    if publishing:
        repository_parts(publishing["repository_url"])  # a malformed URL stops the build
        config.thebe_config = {**(config.thebe_config or {}),
                               "repository_url": publishing["repository_url"],
                               "repository_branch": publishing["branch"],
                               "path_to_docs": publishing["path_to_book"]}


def setup(app):
    app.add_config_value("tdyn_publishing", {}, "html")
    app.connect("config-inited", _configure_thebe)
    # After sphinx-thebe has appended its configuration (priority 500).
    app.connect("doctree-resolved", _drop_placeholder_thebe, priority=900)
    # After sphinx-book-theme has built the header buttons (priority 501).
    app.connect("html-page-context", _add_launch_buttons, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
