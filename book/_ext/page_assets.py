"""Sphinx extension: the scripts every page needs, each once.

* MathJax on every page.  Sphinx loads it only on pages whose body has math, but chapter
  titles with math appear in the navigation of every page (the sidebar, search, index), and
  stayed raw TeX there.
* No duplicated scripts.  Under jupyter-book 1.x the inline scripts of sphinx-thebe and
  sphinx-togglebutton reach each page twice (once registered with file name ``None``, once
  with ``""``), so every page declared ``const THEBE_JS_URL`` twice and the browser reported
  a SyntaxError.  This keeps one copy of each script (same file, priority and inline body).
* Status words, not emoji.  myst-nb's execution table (``{nb-exec-table}``) marks each
  chapter with a tick or cross emoji, empty boxes without an emoji font; it says "passed" or
  "failed" instead.
"""

from myst_nb.ext import execution_tables


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    # The two copies differ only in an empty file name (None once, "" the other time).
    unique = {}
    for script in scripts:
        key = (script.filename or "", script.priority, tuple(sorted(script.attributes.items())))
        unique.setdefault(key, script)
    context["script_files"] = list(unique.values())


def setup(app):
    execution_tables._key2transform["succeeded"] = lambda ok: "passed" if ok is True else "failed"
    app.set_html_assets_policy("always")
    # Run after the theme and the other extensions have added their page scripts.
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
