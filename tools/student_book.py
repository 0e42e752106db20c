"""``make student-book``: the book without a single solution, for handing to students.

The instructor's sources stay as they are.  This copies ``book/`` to
``book/_build/student/src/``, removes every ``{solution}`` block from the copy's chapters (so
no solution reaches the HTML, the search index, the ``_sources`` pages or any downloadable
``.md`` or ``.ipynb``), replaces each by a pointer to the instructor, and builds the copy with
the same strict, offline build (``tools/build_book.py``) into
``book/_build/student/src/_build/html``.  The copy's code cells are the instructor's, so the
execution cache of the last ``make book`` is reused when its library state matches.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
STUDENT = BOOK / "_build" / "student" / "src"

# A solution block: an opening fence of three or more backticks with {solution}, up to the
# closing fence of the same length (solutions may hold code cells in longer fences); or a gated
# solution, from its {solution-start} fence to the closing fence of its {solution-end} (the
# form that holds executed code cells).
SOLUTION = re.compile(r"^(?P<fence>`{3,})\{solution\}[^\n]*\n.*?^(?P=fence)[ \t]*\n"
                      r"|^```\{solution-start\}[^\n]*\n.*?^```\{solution-end\}[ \t]*\n```[ \t]*\n",
                      re.MULTILINE | re.DOTALL)
PLACEHOLDER = "*The solution of this exercise is in the instructor's edition.*\n"
STUDENT_NOTE = ("```{note}\nThis is the student edition: it holds the exercises without "
                "their solutions.\n```\n\n")


def strip_solutions(text: str) -> tuple[str, int]:
    """``text`` with every solution block replaced by a one-line pointer, and their count."""
    return SOLUTION.subn(PLACEHOLDER, text)


def _build_book_module():
    spec = importlib.util.spec_from_file_location("build_book", ROOT / "tools" / "build_book.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def prepare(book: Path = BOOK, target: Path = STUDENT) -> int:
    """Copy ``book`` to ``target`` without its build folder, strip the solutions from every
    page, and seed the copy's execution cache from the instructor's build; returns how many
    solutions were removed."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(book, target, ignore=shutil.ignore_patterns("_build"))
    course = target / "course.md"
    text = course.read_text()
    title_end = text.index("\n", text.index("\n# ") + 1) + 1  # the note goes under the title
    course.write_text(text[:title_end] + "\n" + STUDENT_NOTE + text[title_end:])
    removed = 0
    for page in sorted(target.rglob("*.md")):
        text, count = strip_solutions(page.read_text())
        if count:
            page.write_text(text)
            removed += count
    cache, key = book / "_build" / ".jupyter_cache", book / "_build" / ".cache-key"
    if cache.is_dir() and key.is_file():
        (target / "_build").mkdir(parents=True, exist_ok=True)
        shutil.copytree(cache, target / "_build" / ".jupyter_cache")
        shutil.copyfile(key, target / "_build" / ".cache-key")
    return removed


def main() -> int:
    build_book = _build_book_module()
    removed = prepare()
    print(f"student edition: {removed} solutions removed; building {STUDENT}", flush=True)
    # Never a published build: its edit, Binder and Colab links would open the instructor's
    # sources and executed notebooks, solutions included.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TDYN_")}
    status = build_book.build(STUDENT, build_book.keyed_paths(), env)
    if status == 0:
        print(f"Student edition built: open {STUDENT / '_build' / 'html' / 'index.html'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
