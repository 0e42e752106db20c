"""The book's sources and its strict, cache-safe, offline build (tools/build_book.py)."""

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"

_spec = importlib.util.spec_from_file_location("build_book", ROOT / "tools" / "build_book.py")
build_book = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_book)
_spec = importlib.util.spec_from_file_location("lint_chapters",
                                               ROOT / "tools" / "lint_chapters.py")
lint_chapters = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lint_chapters)


def toc_files(toc: dict) -> set[str]:
    """Every file the table of contents lists, recursively."""
    files = {toc["root"]}
    stack = [toc]
    while stack:
        node = stack.pop()
        for key in ("chapters", "sections", "parts"):
            for child in node.get(key, []):
                if "file" in child:
                    files.add(child["file"])
                stack.append(child)
    return files


def chapter_sources() -> set[str]:
    return {
        str(p.relative_to(BOOK).with_suffix(""))
        for p in BOOK.rglob("*.md")
        if not any(part.startswith("_") for part in p.relative_to(BOOK).parts)
        and p.name != "README.md"
    }


def test_toc_lists_exactly_the_chapters():
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    assert toc_files(toc) == chapter_sources()


def test_chapters_are_myst_notebooks_without_outputs():
    assert not [p for p in BOOK.rglob("*.ipynb") if "_build" not in p.parts]
    for name in chapter_sources():
        text = (BOOK / f"{name}.md").read_text()
        if "```{code-cell}" in text:
            header = yaml.safe_load(text.split("---")[1])
            assert header["kernelspec"]["language"] == "python", name
            assert header["jupytext"]["text_representation"]["format_name"] == "myst", name


def test_every_cited_key_is_in_the_bibliography():
    import re

    bib = (BOOK / "references.bib").read_text()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    for name in chapter_sources():
        for cited in re.findall(r"\{cite:[pt]\}`([^`]+)`", (BOOK / f"{name}.md").read_text()):
            for key in cited.split(","):
                assert key.strip() in keys, (name, key)


def test_cache_key_follows_library_contents(tmp_path):
    lib = tmp_path / "lib"
    (lib / "__pycache__").mkdir(parents=True)
    (lib / "a.py").write_text("x = 1\n")
    key = build_book.cache_key([lib])
    (lib / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"bytecode")
    assert build_book.cache_key([lib]) == key, "bytecode must not change the key"
    (lib / "a.py").write_text("x = 2\n")
    assert build_book.cache_key([lib]) != key, "an edit must change the key"
    (lib / "a.py").write_text("x = 1\n")
    assert build_book.cache_key([lib]) == key
    (lib / "b.py").write_text("")
    assert build_book.cache_key([lib]) != key, "a new file must change the key"


def test_offline_check_flags_remote_resources_and_missing_mathjax(tmp_path):
    (tmp_path / "page.html").write_text(
        '<script src="https://cdn.example.org/x.js"></script>'
        '<a href="https://example.org">a link is fine</a><span class="math">x</span>'
        '<link rel="canonical" href="https://pages.example.org/page.html" />'
        '<link rel="stylesheet" href="https://fonts.example.org/f.css" />'
    )
    problems = build_book.offline_problems(tmp_path)
    assert any("missing" in p for p in problems)
    assert any("loads https://cdn.example.org/x.js" in p for p in problems)
    assert any("has math but no local MathJax" in p for p in problems)
    assert not any("example.org\"" in p or p.endswith("example.org") for p in problems)
    assert any("loads https://fonts.example.org/f.css" in p for p in problems)
    assert not any("pages.example.org" in p for p in problems)  # its own address, not a load


def _tiny_book(tmp_path: Path, chapter_body: str) -> Path:
    book = tmp_path / "book"
    book.mkdir()
    shutil.copy(BOOK / "_config.yml", book / "_config.yml")
    shutil.copy(BOOK / "references.bib", book / "references.bib")
    for folder in ("_ext", "_static"):  # what _config.yml refers to
        shutil.copytree(BOOK / folder, book / folder)
    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: broken\n")
    (book / "intro.md").write_text("# Intro\n\nA tiny book for a test.\n")
    header = textwrap.dedent("""\
        ---
        jupytext:
          text_representation: {extension: .md, format_name: myst, format_version: 0.13}
        kernelspec: {display_name: Python 3, language: python, name: python3}
        ---
        """)
    (book / "broken.md").write_text(header + chapter_body)
    return book


@pytest.mark.slow
def test_failing_cell_fails_the_build_naming_chapter_and_cell(tmp_path, capfd):
    book = _tiny_book(tmp_path, "# Broken\n\n```{code-cell} ipython3\nanswer = 1 / 0\n```\n")
    assert build_book.build(book, []) != 0
    out = capfd.readouterr()
    text = out.out + out.err
    assert "chapter book/broken failed to execute" in text
    assert "answer = 1 / 0" in text and "ZeroDivisionError" in text
    assert not (book / "_build" / ".build-ok").exists(), "a failed build must not count as done"
    # Nothing changed, yet the failing chapter is executed and reported again.
    assert build_book.build(book, []) != 0
    assert "answer = 1 / 0" in capfd.readouterr().out


@pytest.mark.slow
def test_broken_cross_reference_fails_the_build_naming_chapter(tmp_path, capfd):
    book = _tiny_book(tmp_path, "# Broken\n\nSee {ref}`no-such-label`.\n")
    assert build_book.build(book, []) != 0
    out = capfd.readouterr()
    text = out.out + out.err
    assert "broken.md" in text and "no-such-label" in text


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="needs root and unshare to take the network away")
def test_build_brings_loopback_up_in_a_namespace_without_network():
    # `unshare -n make book` must work: kernels need 127.0.0.1, which starts down there.
    code = ("import importlib.util as u, sys; s = u.spec_from_file_location('b', sys.argv[1]); "
            "b = u.module_from_spec(s); s.loader.exec_module(b); "
            "assert not b.loopback_works(); b.ensure_loopback(); assert b.loopback_works()")
    result = subprocess.run(["unshare", "-n", sys.executable, "-c", code,
                             str(ROOT / "tools" / "build_book.py")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_changed_library_contents_are_never_served_from_the_cache(tmp_path):
    # The chapter's code does not change, only a file under a keyed path (as lib/ would):
    # jupyter-cache alone would serve the old output; the build must execute it again.
    lib = tmp_path / "fake_lib"
    lib.mkdir()
    (lib / "value.txt").write_text("first-value")
    book = _tiny_book(tmp_path, "# Reads the library\n\n```{code-cell} ipython3\n"
                      f"print(open({str(lib / 'value.txt')!r}).read())\n```\n")
    page = book / "_build" / "html" / "broken.html"
    assert build_book.build(book, [lib]) == 0
    assert "first-value" in page.read_text()
    (lib / "value.txt").write_text("second-value")
    assert build_book.build(book, [lib]) == 0
    assert "second-value" in page.read_text() and "first-value" not in page.read_text()


def test_cache_key_covers_everything_chapters_read():
    keyed = {p.relative_to(ROOT).as_posix() for p in build_book.keyed_paths()}
    assert keyed == {"lib", "data", "notebooks/params", "pyproject.toml"}
    assert "numpy==" in build_book.installed_packages()
    paths = build_book.keyed_paths()
    assert build_book.cache_key(paths, "numpy==2.0") != build_book.cache_key(paths, "numpy==2.1")


def test_cache_key_follows_symlinked_folders(tmp_path):
    lib, outside = tmp_path / "lib", tmp_path / "outside"
    lib.mkdir()
    outside.mkdir()
    (outside / "run.json").write_text("1")
    (lib / "linked").symlink_to(outside, target_is_directory=True)
    key = build_book.cache_key([lib])
    (outside / "run.json").write_text("2")
    assert build_book.cache_key([lib]) != key, "a file reached through a symlink is keyed"


@pytest.mark.slow
def test_an_edited_profile_re_executes_the_chapter(tmp_path):
    # A chapter loads the run of a profile in notebooks/params/: editing the profile (and
    # nothing else) must re-execute the chapter, not serve the cached output.
    repo = tmp_path / "repo"
    profile = repo / "notebooks" / "params" / "toy-cpu.yaml"
    profile.parent.mkdir(parents=True)
    profile.write_text("steps: 1000\n")
    book = _tiny_book(tmp_path, "# Reads a profile\n\n```{code-cell} ipython3\n"
                      f"print('profile says', open({str(profile)!r}).read())\n```\n")
    page = book / "_build" / "html" / "broken.html"
    assert build_book.build(book, build_book.keyed_paths(repo)) == 0
    assert "steps: 1000" in page.read_text()
    profile.write_text("steps: 2000\n")
    assert build_book.build(book, build_book.keyed_paths(repo)) == 0
    assert "steps: 2000" in page.read_text() and "steps: 1000" not in page.read_text()


ROOT_FINDERS = {"brentq", "bisect", "fsolve", "root_scalar", "newton", "ridder"}


def test_no_chapter_defines_a_function_or_finds_a_root():
    """lib/ is the single home of the math: chapters call it and plot."""
    import ast

    problems = []
    for name in sorted(chapter_sources()):
        path = BOOK / f"{name}.md"
        if "```{code-cell}" not in path.read_text():
            continue
        for node in ast.walk(ast.parse(lint_chapters.chapter_code(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                problems.append(f"{name} defines {node.name}")
            if isinstance(node, ast.Name | ast.Attribute):
                called = node.id if isinstance(node, ast.Name) else node.attr
                if called in ROOT_FINDERS:
                    problems.append(f"{name} finds a root with {called}")
    assert problems == [], problems
