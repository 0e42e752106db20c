"""Coursework: every chapter of a part ends with exercises whose solutions are hidden."""

import re
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parent.parent / "book"
CHAPTERS = sorted(BOOK.glob("part*/*.md"))
EXERCISE = re.compile(r"^```\{exercise\}[^\n]*\n:label: ([\w-]+)", re.MULTILINE)
SOLUTION = re.compile(r"^```\{solution\} ([\w-]+)\n((?::[\w-]+:[^\n]*\n)*)", re.MULTILINE)


def exercise_labels(text: str) -> list[str]:
    return EXERCISE.findall(text)


def test_the_parts_have_chapters():
    assert CHAPTERS


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: str(p.relative_to(BOOK)))
def test_chapter_ends_with_exercises_with_hidden_solutions(chapter):
    text = chapter.read_text()
    exercises = exercise_labels(text)
    assert exercises, "a chapter must end with exercises for a course"
    solutions = dict(SOLUTION.findall(text))
    for label in exercises:
        assert label in solutions, f"exercise {label} has no solution"
        assert ":class: dropdown" in solutions[label], f"solution of {label} is not hidden"
    # The exercises come last: nothing but exercises and solutions after the first one.
    tail = text[text.index("```{exercise}"):]
    headings = re.findall(r"^#+ .*$", tail, re.MULTILINE)
    assert headings == [], f"sections after the exercises: {headings}"
