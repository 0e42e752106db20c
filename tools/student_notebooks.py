"""``make student-notebooks``: one notebook per chapter for students to work in.

Each chapter of Parts I-III is read, its solutions are removed (as in ``make student-book``),
and after each computational exercise, one that :data:`tdyn.exercises.CHECKERS` has a checker
for, two code cells are added: a stub the student replaces (it raises ``NotImplementedError``)
and a check cell that calls the checker on the student's ``answer``.  The notebooks are
written, without outputs, to ``book/_build/student/notebooks/<part>/<chapter>.ipynb``: a
build artefact, never committed.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import jupytext

from tdyn.exercises import CHECKERS

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
TARGET = BOOK / "_build" / "student" / "notebooks"

EXERCISE = re.compile(r"^```\{exercise\}[^\n]*\n:label: (?P<label>[\w-]+)\n.*?^```[ \t]*\n",
                      re.MULTILINE | re.DOTALL)
GATED = re.compile(r"^```\{solution-start\} (?P<label>[\w-]+)\n.*?^```\{solution-end\}",
                   re.MULTILINE | re.DOTALL)
CODE_CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(?P<code>.*?)^```[ \t]*$",
                       re.MULTILINE | re.DOTALL)


def _student_book():
    path = ROOT / "tools" / "student_book.py"
    spec = importlib.util.spec_from_file_location("student_book", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stub_cell(label: str) -> str:
    """The code a student replaces: it sets ``answer`` to nothing and raises."""
    return ("# Your solution: compute `answer` as the exercise's check line asks.\n"
            "answer = None\n"
            f'raise NotImplementedError("replace this cell by your solution of {label}")')


def check_cell(label: str) -> str:
    """The cell that checks the student's ``answer`` with the exercise's checker."""
    return f"from tdyn import exercises\n\nexercises.{CHECKERS[label].__name__}(answer)"


def solution_code(text: str) -> dict[str, str]:
    """The code cells of each gated solution of a chapter's ``text``, joined, by exercise
    label (the reference solutions the check cells are tested against)."""
    return {m["label"]: "\n".join(c["code"] for c in CODE_CELL.finditer(m.group(0)))
            for m in GATED.finditer(text)}


def student_text(text: str) -> str:
    """A chapter's MyST ``text`` without its solutions, with a stub and a check cell after
    every exercise that has a checker."""
    stripped, _ = _student_book().strip_solutions(text)

    def with_cells(match: re.Match) -> str:
        label = match["label"]
        if label not in CHECKERS:
            return match.group(0)
        return (match.group(0) + "\n" + "".join(
            f"```{{code-cell}} ipython3\n{code}\n```\n\n"
            for code in (stub_cell(label), check_cell(label))))

    return EXERCISE.sub(with_cells, stripped)


def write_notebooks(book: Path = BOOK, target: Path = TARGET) -> list[Path]:
    """Write the student notebook of every chapter of ``book`` under ``target``."""
    written = []
    for chapter in sorted(book.glob("part*/*.md")):
        notebook = jupytext.reads(student_text(chapter.read_text()), fmt="myst")
        path = target / chapter.parent.name / f"{chapter.stem}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        jupytext.write(notebook, path, fmt="ipynb")
        written.append(path)
    return written


def main() -> int:
    written = write_notebooks()
    print(f"{len(written)} student notebooks ({len(CHECKERS)} exercises with a check cell) "
          f"in {TARGET}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
