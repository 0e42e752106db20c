"""Lint the code of the book's chapters with ruff (``make lint`` runs it).

Chapters are MyST-markdown notebooks; their code cells, in order, are written to one Python
file per chapter in a temporary folder and checked with the project's ruff configuration.
Imports in later cells are the notebook style, so E402 (import not at the top) is ignored.
Problems are reported with the chapter's path and the line in that extracted file.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parent.parent


def chapter_code(path: Path) -> str:
    """The code cells of a chapter, separated by cell markers."""
    notebook = jupytext.read(path)
    cells = [c.source for c in notebook.cells if c.cell_type == "code"]
    return "".join(f"# %% cell {k}\n{source}\n\n" for k, source in enumerate(cells))


def main() -> int:
    chapters = sorted(p for p in (ROOT / "book").rglob("*.md")
                      if "_build" not in p.parts and "```{code-cell}" in p.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        for chapter in chapters:
            name = chapter.relative_to(ROOT).with_suffix(".py").as_posix().replace("/", "__")
            (Path(tmp) / name).write_text(chapter_code(chapter))
        result = subprocess.run(
            [str(Path(sys.executable).parent / "ruff"), "check", "--config",
             str(ROOT / "pyproject.toml"), "--extend-ignore", "E402", "--output-format",
             "concise", "--no-cache", "."], cwd=tmp, capture_output=True, text=True)
    print(result.stdout.replace("__", "/"), end="")
    print(result.stderr, end="", file=sys.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
