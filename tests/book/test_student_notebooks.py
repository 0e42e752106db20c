"""The student notebooks (tools/student_notebooks.py, ``make student-notebooks``): one per
chapter, no solution in them, and for each exercise with a checker a stub cell that raises and
a check cell that fails on the stub and passes with the chapter's reference solution."""

import importlib.util
from pathlib import Path

import nbformat
import pytest

from tdyn.exercises import CHECKERS
from tests.book.test_student_book import code_fingerprints, fingerprints, searchable
from tests.test_exercises import committed_runs  # noqa: F401 (autouse: the committed runs)

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("student_notebooks",
                                               ROOT / "tools" / "student_notebooks.py")
student_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(student_notebooks)
CHAPTERS = sorted((ROOT / "book").glob("part*/*.md"))


@pytest.fixture(scope="module")
def notebooks(tmp_path_factory):
    target = tmp_path_factory.mktemp("notebooks")
    written = student_notebooks.write_notebooks(target=target)
    return {path.relative_to(target).with_suffix("").as_posix(): path for path in written}


def cells(path: Path) -> list[str]:
    return [cell.source for cell in nbformat.read(path, as_version=4).cells
            if cell.cell_type == "code"]


def test_one_notebook_per_chapter_without_a_solution(notebooks):
    assert sorted(notebooks) == [c.relative_to(ROOT / "book").with_suffix("").as_posix()
                                 for c in CHAPTERS]
    text = "\n".join(searchable(p) for p in notebooks.values())
    assert "solution-start" not in text and "{solution}" not in text
    solutions = {**fingerprints("solution"), **code_fingerprints()}
    assert {k: v for k, v in solutions.items() if " ".join(v.split()) in text} == {}
    assert all(" ".join(v.split()) in text for v in fingerprints("exercise").values())


def test_every_checked_exercise_has_a_stub_and_a_check_cell(notebooks):
    code = {cell for path in notebooks.values() for cell in cells(path)}
    for label in CHECKERS:
        assert student_notebooks.stub_cell(label) in code, label
        assert student_notebooks.check_cell(label) in code, label


@pytest.mark.parametrize("label", sorted(CHECKERS))
def test_the_check_cell_fails_on_the_stub_and_passes_with_the_solution(label, capsys):
    references = {k: v for c in CHAPTERS
                  for k, v in student_notebooks.solution_code(c.read_text()).items()}
    namespace = {}
    with pytest.raises(NotImplementedError):
        exec(student_notebooks.stub_cell(label), namespace)
    exec(student_notebooks.check_cell(label), namespace)
    assert "not right" in capsys.readouterr().out
    exec(references[label], namespace)
    capsys.readouterr()  # what the solution itself prints
    exec(student_notebooks.check_cell(label), namespace)
    out = capsys.readouterr().out.strip().splitlines()
    assert out and all(line.startswith(label) and ": right (" in line for line in out)
