"""Coursework: every chapter of a part ends with exercises whose solutions are hidden."""

import re
from pathlib import Path

import pytest

from tdyn.exercises import CHECKERS

BOOK = Path(__file__).resolve().parents[2] / "book"
CHAPTERS = sorted(BOOK.glob("part*/*.md"))
EXERCISE = re.compile(r"^```\{exercise\}[^\n]*\n:label: ([\w-]+)", re.MULTILINE)
SOLUTION = re.compile(r"^```\{solution(?:-start)?\} ([\w-]+)\n((?::[\w-]+:[^\n]*\n)*)",
                      re.MULTILINE)


def exercise_labels(text: str) -> list[str]:
    return EXERCISE.findall(text)


def test_the_parts_have_chapters():
    assert CHAPTERS


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: str(p.relative_to(BOOK)))
def test_chapter_ends_with_exercises_with_hidden_solutions(chapter):
    text = chapter.read_text()
    exercises = exercise_labels(text)
    assert exercises, "a chapter must end with exercises for a course"
    # Sphinx lowercases labels; a reference to a mixed-case exercise label loses its number
    assert [label.lower() for label in exercises] == exercises
    solutions = dict(SOLUTION.findall(text))
    for label in exercises:
        assert label in solutions, f"exercise {label} has no solution"
        assert ":class: dropdown" in solutions[label], f"solution of {label} is not hidden"
    # The exercises come last: nothing but exercises and solutions after the first one.
    tail = text[text.index("```{exercise}"):]
    headings = re.findall(r"^#+ .*$", tail, re.MULTILINE)
    assert headings == [], f"sections after the exercises: {headings}"


def test_course_page_lists_every_exercise_exactly_once():
    course = (BOOK / "course.md").read_text()
    listed = re.findall(r"\{ref\}`([\w-]+)`", course)
    in_chapters = [label for chapter in CHAPTERS for label in exercise_labels(chapter.read_text())]
    assert sorted(set(listed)) == sorted(listed), "an exercise is listed twice"
    assert sorted(listed) == sorted(in_chapters)
    # Each row names the chapter that holds the exercise.
    rows = re.findall(r"\{ref\}`([\w-]+)` \| \{doc\}`[^<`]*<([\w/]+)>`", course)
    assert len(rows) == len(listed), "every row names its chapter as {doc}`Title <path>`"
    for label, chapter in rows:
        assert label in exercise_labels((BOOK / f"{chapter}.md").read_text()), (label, chapter)


ROW = re.compile(r"^\| \{ref\}`([\w-]+)` \| \{doc\}`[^`]*` \| ([^|]+) \| ([^|]+) \| (\d+) min \| "
                 r"(yes|no) \|$", re.MULTILINE)


def test_course_rows_give_title_kind_time_and_checker():
    course = (BOOK / "course.md").read_text()
    rows = ROW.findall(course)
    assert len(rows) == len(re.findall(r"\{ref\}`([\w-]+)` \|", course))
    titles = [title.strip() for _, title, _, _, _ in rows]
    assert all(titles) and len(set(titles)) == len(titles)
    for label, _, kind, _, checker in rows:
        assert kind.split(" (")[0] in {"derivation", "computation", "discussion",
                                       "derivation and computation"}, (label, kind)
        assert (checker == "yes") == (label in CHECKERS), label
        if label in CHECKERS:
            assert "computation" in kind, label


def test_course_page_has_prerequisites_week_plan_grading_and_editions():
    course = (BOOK / "course.md").read_text()
    problem_sets = re.findall(r"^Problem set [^\n]*", course, re.MULTILINE)
    assert problem_sets and all("Prerequisites:" in line for line in problem_sets)
    plan = course[course.index("## A suggested week plan"):course.index("## Grading")]
    assert sorted(re.findall(r"\{doc\}`(part\d/\w+)`", plan)) == sorted(
        str(c.relative_to(BOOK).with_suffix("")) for c in CHAPTERS)
    for command in ("make book", "make student-book", "make student-notebooks"):
        assert command in course
