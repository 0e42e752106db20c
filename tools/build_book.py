"""Build the book strictly, offline, and never from a stale execution cache.

Called by ``make book``.  Steps:

1. Key the execution cache on everything a chapter's outputs depend on besides its own code
   cells: the contents of ``lib/``, ``data/``, ``notebooks/params/`` (the profiles whose runs
   chapters load) and ``pyproject.toml``, symbolic links followed, and the name and version of
   every installed package.  jupyter-cache
   already re-executes a chapter whose code changed; when the key changes, the cache is
   cleared and every chapter is executed and read again.
2. Publishing settings come from the environment (:func:`publishing_config`): with
   ``TDYN_REPOSITORY_URL`` set (the GitHub Actions workflow sets it from the repository it
   runs in) the pages get repository, issue and edit links, Binder and Colab launch buttons,
   ``html_baseurl``, a sitemap and Open Graph metadata; without it, none of them.
3. Execute every chapter the execution cache lacks, in parallel (one kernel per core, the
   slowest chapters of the last build first), and store the results in the cache
   (:func:`execute_chapters`), so that jupyter-book reads them all from it; a chapter that
   fails here is left to jupyter-book, which executes it again and reports it.
4. Run ``jupyter-book build`` with warnings as errors and nitpicky cross-references.
5. On failure, name each chapter whose execution failed and print its cell traceback.
6. Check that the HTML loads nothing from the network: every script, stylesheet and image
   is served from the build itself, MathJax included.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import yaml

from tdyn.runs.store import walk_files

ROOT = Path(__file__).resolve().parent.parent

# jsonschema, which nbformat and jupyter-book import, builds about 40 parsers of the optional
# rfc3987-syntax package at import (1 s) for the "iri" format checks, which nothing here uses;
# marking it absent skips them (JUPYTER_BOOK: jupyter-book's command line, the same way).
sys.modules.setdefault("rfc3987_syntax", None)
JUPYTER_BOOK = ("import sys; sys.modules.setdefault('rfc3987_syntax', None); "
                "from jupyter_book.cli.main import main; main()")


def keyed_paths(root: Path = ROOT) -> list[Path]:
    """The files and folders of the repository at ``root`` that chapters read."""
    return [root / "lib", root / "data", root / "notebooks" / "params", root / "pyproject.toml"]


# Resources a page loads by itself (not links a reader may follow).
RESOURCE = re.compile(r'<(?:script|img|link|iframe|source)\b[^>]*?\b(?:src|href)="([^"]+)"')
MATHJAX = "_static/mathjax/tex-chtml.js"
# The published page's own address (html_baseurl): named, never fetched.
CANONICAL = re.compile(r'<link\b[^>]*\brel="canonical"[^>]*>')


def installed_packages() -> str:
    """``name==version`` of every package installed in this environment, one per line."""
    names = {f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions()}
    return "\n".join(sorted(names))


def cache_key(paths: list[Path], packages: str = "") -> str:
    """SHA-256 over the names and bytes of every file under ``paths`` (bytecode excluded) and
    the list of installed ``packages``."""
    digest = hashlib.sha256(packages.encode() + b"\0")
    for base in paths:
        if not base.exists():
            continue
        for path in walk_files(base):
            if "__pycache__" in path.parts or path.suffix == ".pyc" or ".egg-info" in str(path):
                continue
            digest.update(path.relative_to(base.parent).as_posix().encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()


GITHUB_URL = re.compile(r"https://github\.com/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+)")


def publishing_config(config: dict, env: Mapping[str, str] = os.environ) -> dict:
    """The book's configuration for a published build: ``config`` (the parsed
    ``_config.yml``) unchanged when ``TDYN_REPOSITORY_URL`` is unset, else with the
    repository (``TDYN_REPOSITORY_BRANCH``, default main), its links, the launch buttons of
    ``book/_ext/launch_links.py`` (the executed notebooks served from ``TDYN_PAGES_BRANCH``,
    default gh-pages), and ``html_baseurl`` = ``TDYN_BOOK_URL`` (default the GitHub Pages
    address, ``https://<org>.github.io/<repo>/``; set it for a custom domain) with a sitemap
    and Open Graph metadata."""
    url = env.get("TDYN_REPOSITORY_URL", "").strip().removesuffix(".git").rstrip("/")
    if not url:
        return config
    match = GITHUB_URL.fullmatch(url)
    if not match:
        raise SystemExit(f"make book: TDYN_REPOSITORY_URL={url!r} must be "
                         "https://github.com/<org>/<repo>")
    org, repo = match.groups()
    branch = env.get("TDYN_REPOSITORY_BRANCH", "").strip() or "main"
    pages = env.get("TDYN_PAGES_BRANCH", "").strip() or "gh-pages"
    pages_site = f"https://{org.lower()}.github.io/"  # GitHub Pages names owners in lower case
    if repo.lower() != f"{org.lower()}.github.io":  # a user or organization site is the root
        pages_site += f"{repo}/"
    site = env.get("TDYN_BOOK_URL", "").strip() or pages_site
    site = site.rstrip("/") + "/"
    out = {**config, "repository": {"url": url, "branch": branch, "path_to_book": "book"}}
    out["html"] = {**config.get("html", {}), "use_repository_button": True,
                   "use_issues_button": True, "use_edit_page_button": True, "baseurl": site}
    sphinx = dict(config.get("sphinx", {}))
    sphinx["extra_extensions"] = [*sphinx.get("extra_extensions", []), "sphinx_sitemap",
                                  "sphinxext.opengraph"]
    sphinx["config"] = {**sphinx.get("config", {}),
                        "tdyn_publishing": {"repository_url": url, "branch": branch,
                                            "pages_branch": pages, "path_to_book": "book",
                                            "commit": source_commit(env)},
                        "html_baseurl": site, "ogp_site_url": site, "sitemap_url_scheme": "{link}"}
    out["sphinx"] = sphinx
    return out


def source_commit(env: Mapping[str, str] = os.environ) -> str:
    """The commit the book is built from: ``GITHUB_SHA`` in the workflow, else git's HEAD."""
    if env.get("GITHUB_SHA"):
        return env["GITHUB_SHA"]
    result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT, check=False)
    if result.returncode != 0:
        raise SystemExit("make book: TDYN_REPOSITORY_URL is set but the commit is unknown "
                         "(no git; set GITHUB_SHA)")
    return result.stdout.strip()


def write_build_config(book: Path, env: Mapping[str, str] = os.environ) -> Path:
    """``_build/_config.yml``: the book's configuration with the publishing settings of
    :func:`publishing_config`, the folders of local extensions made absolute."""
    config = yaml.safe_load((book / "_config.yml").read_text())
    sphinx = config.get("sphinx", {})
    # jupyter-book resolves the folders of local extensions against the config file's folder
    sphinx["local_extensions"] = {name: str((book / folder).resolve())
                                  for name, folder in sphinx.get("local_extensions", {}).items()}
    path = book / "_build" / "_config.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(publishing_config(config, env), sort_keys=False))
    return path


def toc_notebooks(book: Path) -> list[Path]:
    """The sources the table of contents lists that have code cells (MyST notebooks)."""
    toc = yaml.safe_load((book / "_toc.yml").read_text())
    names, stack = [toc["root"]], [toc]
    while stack:
        node = stack.pop()
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key, []):
                names.extend([child["file"]] if "file" in child else [])
                stack.append(child)
    paths = [book / f"{name}.md" for name in names]
    return [p for p in paths if p.is_file() and "```{code-cell}" in p.read_text()]


def _execute(path: str, timeout: int) -> tuple[dict, float, str | None]:
    """Execute the MyST notebook at ``path`` in its folder: (notebook, seconds, traceback)."""
    from jupyter_cache.executors.utils import single_nb_execution
    from myst_nb.core.read import read_myst_markdown_notebook

    nb = read_myst_markdown_notebook(Path(path).read_text("utf8"), add_source_map=True,
                                     path=path)
    # Once the last cell has replied every output is in: the kernel is killed rather than
    # asked to exit, which costs a kernel that imported torch about 0.8 s of CPU.
    result = single_nb_execution(nb, cwd=str(Path(path).parent), timeout=timeout,
                                 allow_errors=False, shutdown_kernel="immediate")
    return nb, result.time, result.exc_string


def execute_chapters(book: Path, workers: int | None = None) -> None:
    """Execute, ``workers`` kernels at a time (default one per core, each kernel with its
    share of the cores as OpenMP threads, so that they do not oversubscribe them), every
    chapter whose code the execution cache of ``book`` does not hold, and cache each that
    succeeds, read as jupyter-book reads it (so that its build finds them); the slowest
    chapters of the last run go first (``_build/.chapter-seconds.json``)."""
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn
    from myst_nb.core.read import read_myst_markdown_notebook

    cache = get_cache(str(book / "_build" / ".jupyter_cache"))
    times_file = book / "_build" / ".chapter-seconds.json"
    seconds = json.loads(times_file.read_text()) if times_file.exists() else {}
    pending = []
    for path in toc_notebooks(book):
        nb = read_myst_markdown_notebook(path.read_text("utf8"), add_source_map=True,
                                         path=str(path))
        try:
            cache.match_cache_notebook(nb)
        except KeyError:
            pending.append(path)
    if not pending:
        return
    pending.sort(key=lambda p: -seconds.get(p.relative_to(book).as_posix(), float("inf")))
    config = yaml.safe_load((book / "_config.yml").read_text())
    timeout = config.get("execute", {}).get("timeout", 30)
    cores = os.cpu_count() or 1
    workers = min(workers or cores, len(pending))
    print(f"executing {len(pending)} chapter(s), {workers} at a time", flush=True)
    start = time.perf_counter()
    threads = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(max(1, cores // workers))  # kernels inherit it
    try:
        with ThreadPoolExecutor(workers) as pool:  # each thread drives one kernel process
            futures = {pool.submit(_execute, str(path), timeout): path for path in pending}
            for future in as_completed(futures):
                name = futures[future].relative_to(book).as_posix()
                nb, elapsed, error = future.result()
                seconds[name] = elapsed
                print(f"  {name}: {elapsed:.1f} s"
                      + (" FAILED (jupyter-book reports it)" if error else ""), flush=True)
                if error is None:
                    cache.cache_notebook_bundle(CacheBundleIn(
                        nb, str(futures[future]), data={"execution_seconds": elapsed}),
                        check_validity=False, overwrite=True)
    finally:
        if threads is None:
            os.environ.pop("OMP_NUM_THREADS")
        else:
            os.environ["OMP_NUM_THREADS"] = threads
    print(f"executed {len(pending)} chapter(s) in {time.perf_counter() - start:.1f} s", flush=True)
    times_file.write_text(json.dumps(seconds, indent=1, sort_keys=True) + "\n")


def report_failures(book: Path) -> None:
    """Print the execution traceback of every chapter that failed to execute."""
    reports = book / "_build" / "html" / "reports"
    for log in sorted(reports.glob("**/*.err.log")):
        chapter = log.relative_to(reports).with_suffix("").with_suffix("")
        print(f"\n=== chapter {book.name}/{chapter} failed to execute; the failing cell: ===",
              flush=True)
        print(log.read_text(), flush=True)


def offline_problems(html_dir: Path) -> list[str]:
    """Every resource a built page would fetch from the network, and missing local MathJax."""
    problems = []
    if not (html_dir / MATHJAX).is_file():
        problems.append(f"{MATHJAX} is missing: math would not render offline")
    for page in sorted(html_dir.rglob("*.html")):
        text = page.read_text(errors="replace")
        for url in RESOURCE.findall(CANONICAL.sub("", text)):
            if url.startswith(("http://", "https://", "//")):
                problems.append(f"{page.relative_to(html_dir)} loads {url}")
        if 'class="math' in text and MATHJAX.removeprefix("_static/") not in text:
            problems.append(f"{page.relative_to(html_dir)} has math but no local MathJax")
    return problems


def loopback_works() -> bool:
    """Whether a TCP connection to 127.0.0.1 succeeds (Jupyter kernels need it)."""
    try:
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen(1)
            socket.create_connection(server.getsockname(), timeout=2).close()
        return True
    except OSError:
        return False


def ensure_loopback() -> None:
    """Kernels talk to the builder over loopback, which starts down in a network namespace
    without network (``unshare -n make book``): bring it up there when permitted."""
    if loopback_works():
        return
    subprocess.run(["ip", "link", "set", "lo", "up"], capture_output=True, check=False)
    if not loopback_works():
        raise SystemExit("make book: the loopback interface (127.0.0.1) is down and could not "
                         "be brought up; Jupyter kernels need it (run `ip link set lo up`).")


def build(book: Path, keyed_paths: list[Path], env: Mapping[str, str] = os.environ,
          workers: int | None = None) -> int:
    """Build ``book`` strictly; returns 0 on success, non-zero with a report otherwise.
    ``env`` holds the publishing settings (:func:`publishing_config`); ``workers``: chapters
    executed at a time (:func:`execute_chapters`).

    Two stamps in ``_build/``: ``.cache-key`` names the library state the execution cache was
    made with (the cache is cleared when it differs); ``.build-ok`` exists only after a
    successful build.  Without it every chapter is read again (``--all``), so a chapter that
    failed last time is executed and reported again instead of being taken as up to date;
    chapters that succeeded are then served from the execution cache.
    """
    ensure_loopback()
    build_dir = book / "_build"
    key_file, ok_file = build_dir / ".cache-key", build_dir / ".build-ok"
    key = cache_key(keyed_paths, installed_packages())
    if key_file.exists() and key_file.read_text().strip() != key:
        print("the library, data, profiles or installed packages changed: clearing the "
              "execution cache",
              flush=True)
        shutil.rmtree(build_dir / ".jupyter_cache", ignore_errors=True)
        ok_file.unlink(missing_ok=True)
    read_all = not ok_file.exists()
    # after a good build, only chapters edited since need the executor (they are few: the
    # build's own executor takes them); otherwise every one the cache lacks
    done = 0.0 if read_all else ok_file.stat().st_mtime
    if read_all:
        shutil.rmtree(build_dir / ".doctrees", ignore_errors=True)
    build_dir.mkdir(parents=True, exist_ok=True)
    key_file.write_text(key + "\n")
    ok_file.unlink(missing_ok=True)
    shutil.rmtree(build_dir / "html" / "reports", ignore_errors=True)
    if any(p.stat().st_mtime > done for p in toc_notebooks(book)):
        execute_chapters(book, workers)
    cmd = [
        sys.executable, "-c", JUPYTER_BOOK, "build", str(book),
        "--config", str(write_build_config(book, env)),
        "--warningiserror", "--nitpick", "--keep-going",
    ]
    if read_all:
        cmd.append("--all")
    result = subprocess.run(cmd, cwd=book.parent)
    if result.returncode != 0:
        report_failures(book)
        print("\nmake book FAILED: see the warnings above (each names its chapter).", flush=True)
        return result.returncode
    problems = offline_problems(build_dir / "html")
    if problems:
        print("\nmake book FAILED: the built pages need the network:", *problems, sep="\n  ")
        return 1
    ok_file.touch()
    print(f"\nBook built: open {build_dir / 'html' / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(build(ROOT / "book", keyed_paths()))
