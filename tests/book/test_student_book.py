"""The student edition (tools/student_book.py, ``make student-book``): no solution anywhere in
its output (HTML, search index, _sources, downloadable .md and .ipynb), every exercise there."""

import html
import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("student_book", ROOT / "tools" / "student_book.py")
student_book = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(student_book)

BLOCK = re.compile(r"^(`{3,})\{(exercise|solution)\}[^\n]*\n(.*?)^\1[ \t]*\n"
                   r"|^()```\{(solution)-start\}[^\n]*\n(.*?)^```\{solution-end\}",
                   re.MULTILINE | re.DOTALL)
CODE_CELL = re.compile(r"^(`{3,})\{code-cell\}[^\n]*\n(.*?)^\1[ \t]*$", re.MULTILINE | re.DOTALL)
# phrases of plain words, longest first: six words where a block has them, else four or three
PLAIN_RUNS = [re.compile(rf"(?:[A-Za-z]{{2,}},? ){{{n - 1}}}[A-Za-z]{{2,}}") for n in (6, 4, 3)]


def kind_of(block: re.Match) -> str:
    """'exercise' or 'solution' (a {solution} block or a gated {solution-start} one)."""
    return block.group(2) or block.group(5)


def body_of(block: re.Match) -> str:
    """The text inside the block (for a gated solution, after the fence that closes its
    {solution-start} options)."""
    return block.group(3) if block.group(2) else block.group(6).split("```\n", 1)[1]


def fingerprints(kind: str) -> dict[str, str]:
    """One phrase of plain words (no markup or math; six where the block has them, else four
    or three; else its longest formula) from each exercise or solution block of the
    chapters, keyed by its chapter and position."""
    found = {}
    for chapter in sorted((ROOT / "book").glob("part*/*.md")):
        blocks = [b for b in BLOCK.finditer(chapter.read_text()) if kind_of(b) == kind]
        for k, block in enumerate(blocks):
            # markup and math break a phrase (they render differently in the output)
            text = body_of(block)
            text = re.sub(r"^```\{code-cell\}.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
            body = re.sub(r"\$[^$]*\$|`[^`]*`|\{[^}]*\}|[*_()\[\]]", "|", text)
            body = "\n".join(line for line in body.splitlines() if not line.startswith(":"))
            key = f"{chapter.stem} {kind} {k}"
            for pattern in PLAIN_RUNS:
                runs = [m.group(0) for line in body.splitlines()
                        for m in pattern.finditer(line)]
                if runs:
                    found[key] = max(runs, key=len)
                    break
            else:  # all math: its longest formula that HTML does not escape
                formulas = [f for f in re.findall(r"\$([^$]+)\$", text)
                            if not set(f) & set("<>&\"'")]
                if formulas:
                    found[key] = max(formulas, key=len)
    return found


def code_fingerprints() -> dict[str, str]:
    """One line from each code cell of each solution of the chapters, keyed by its chapter,
    solution and cell: its longest line (whitespace collapsed, at least 12 characters, not a
    comment or cell option) that occurs nowhere in the chapters without their solutions (so
    that finding it in a student output means the solution leaked); "" for a cell that has
    none."""
    chapters = sorted((ROOT / "book").glob("part*/*.md"))
    rest = " ".join(" ".join(student_book.strip_solutions(c.read_text())[0].split())
                    for c in chapters)
    found = {}
    for chapter in chapters:
        blocks = [b for b in BLOCK.finditer(chapter.read_text()) if kind_of(b) == "solution"]
        for k, block in enumerate(blocks):
            for j, cell in enumerate(CODE_CELL.finditer(body_of(block))):
                lines = {" ".join(line.split()) for line in cell.group(2).splitlines()}
                unique = [line for line in lines if len(line) >= 12 and line[0] not in "#:"
                          and line not in rest]
                found[f"{chapter.stem} solution {k} cell {j}"] = max(unique, key=len,
                                                                     default="")
    return found


def searchable(path: Path) -> str:
    """An output file's text, whitespace collapsed, as its reader sees it as well as raw:
    for HTML also without tags and entities (highlighted code is split into spans), for a
    notebook also its cells' sources (JSON escapes quotes and newlines)."""
    raw = path.read_text(errors="replace")
    texts = [raw]
    if path.suffix == ".html":
        texts.append(html.unescape(re.sub(r"<[^>]*>", "", raw)))
    elif path.suffix == ".ipynb":
        texts.extend("".join(cell["source"]) for cell in json.loads(raw)["cells"])
    return " ".join(" ".join(texts).split())


def test_strip_solutions_removes_whole_blocks_and_keeps_exercises():
    text = ("```{exercise}\n:label: e\nDo it.\n```\n\n```{solution} e\n:class: dropdown\n\n"
            "Secret answer.\n\n````{code-cell} ipython3\nx = 1\n````\n```\n\nAfter.\n"
            "````{solution} f\nNested\n```python\ny = 2\n```\n````\n"
            "```{solution-start} g\n:class: dropdown\n```\n\nGated prose.\n\n"
            "```{code-cell} ipython3\nanswer = 3\n```\n\n```{solution-end}\n```\n\nEnd.\n")
    stripped, count = student_book.strip_solutions(text)
    assert count == 3 and "Secret" not in stripped and "Nested" not in stripped
    assert "Gated" not in stripped and "answer" not in stripped and "solution-end" not in stripped
    assert "Do it." in stripped and "After." in stripped and "End." in stripped
    assert stripped.count(student_book.PLACEHOLDER) == 3


def test_every_solution_and_exercise_has_a_fingerprint():
    blocks = [kind_of(b) for p in (ROOT / "book").glob("part*/*.md")
              for b in BLOCK.finditer(p.read_text())]
    assert len(fingerprints("solution")) == blocks.count("solution") >= 39
    assert len(fingerprints("exercise")) == blocks.count("exercise") >= 39


def test_searchable_finds_highlighted_code_and_notebook_sources(tmp_path):
    page = tmp_path / "page.html"
    page.write_text('<pre><span class="n">x</span> <span class="o">=</span> '
                    '<span class="s2">&quot;a&quot;</span></pre>')
    notebook = tmp_path / "page.ipynb"
    notebook.write_text(json.dumps({"cells": [{"source": ['y = "b"\n', "z = 1"]}]}))
    assert 'x = "a"' in searchable(page) and 'y = "b" z = 1' in searchable(notebook)


def test_every_solution_code_cell_has_a_fingerprint():
    code = code_fingerprints()
    cells = sum(len(CODE_CELL.findall(body_of(b))) for p in (ROOT / "book").glob("part*/*.md")
                for b in BLOCK.finditer(p.read_text()) if kind_of(b) == "solution")
    assert len(code) == cells >= 18
    assert {key: line for key, line in code.items() if not line} == {}


@pytest.mark.slow
@pytest.mark.book
def test_the_student_edition_holds_no_solution_and_every_exercise(monkeypatch):
    monkeypatch.delenv("TDYN_DATA")  # chapters read the committed results, as in make book
    assert student_book.main() == 0
    out = student_book.STUDENT / "_build" / "html"
    texts = {p: searchable(p) for p in out.rglob("*") if p.is_file() and p.suffix in
             {".html", ".js", ".txt", ".md", ".ipynb", ".json"}}
    assert any(p.suffix == ".ipynb" for p in texts) and any(p.suffix == ".txt" for p in texts)
    everything = "\n".join(texts.values())
    solutions = {**fingerprints("solution"), **code_fingerprints()}
    built = ROOT / "book" / "_build"
    fresh = (built / ".build-ok").exists() and all(
        p.stat().st_mtime < (built / ".build-ok").stat().st_mtime
        for p in (ROOT / "book").glob("part*/*.md"))
    instructor = "\n".join(searchable(p) for p in (built / "html").rglob("*.html")) if fresh else ""
    if instructor:  # an up-to-date instructor's build: the fingerprints find its solutions
        assert {key: phrase for key, phrase in solutions.items()
                if " ".join(phrase.split()) not in instructor} == {}
    leaks = {key: phrase for key, phrase in solutions.items()
             if " ".join(phrase.split()) in everything}
    assert leaks == {}
    missing = {key: phrase for key, phrase in fingerprints("exercise").items()
               if " ".join(phrase.split()) not in everything}
    assert missing == {}
