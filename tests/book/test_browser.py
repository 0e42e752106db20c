"""Every page of the built book, as a reader sees it in headless Chromium.

Builds the book (served from the execution cache when nothing changed), serves it on
loopback and opens each page: no console errors, every equation typeset by the bundled
MathJax (no raw TeX left), every image loaded, every internal link and anchor resolving.
Screenshots of a few pages are saved to book/_build/screenshots/ as build artefacts.

Skips, with the reason, only when Chromium or ChromeDriver is not installed (Debian's
`chromium` and `chromium-driver`; .ci/run installs them).
"""

import functools
import http.server
import importlib.util
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "book" / "_build" / "html"
SCREENSHOTS = ROOT / "book" / "_build" / "screenshots"
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
# Pages to photograph (the first that exists of each list): the front page, a derivation,
# a phase diagram.
SCREENSHOT_PAGES = {
    "front": ["intro"],
    "derivation": ["part1/attention", "part1/particles", "part2/landscape", "intro"],
    "phase_diagram": ["part1/angle_exponent", "part1/mlp_phases"],
}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM and CHROMEDRIVER),
        reason="Chromium/ChromeDriver not installed: apt-get install chromium chromium-driver",
    ),
]


def toc_pages() -> list[str]:
    """Docnames of every page in the table of contents, in reading order."""
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    pages = [toc["root"]]

    def walk(node):
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key, []):
                if "file" in child:
                    pages.append(child["file"])
                walk(child)

    walk(toc)
    return pages


@pytest.fixture(scope="module")
def site():
    spec = importlib.util.spec_from_file_location("build_book", ROOT / "tools" / "build_book.py")
    build_book = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_book)
    # The book plots the published results in data/, not the temporary run store that
    # conftest.py gives the other tests.
    test_data = os.environ.pop("TDYN_DATA", None)
    try:
        assert build_book.build(ROOT / "book", build_book.keyed_paths()) == 0, "the book must build"
    finally:
        if test_data is not None:
            os.environ["TDYN_DATA"] = test_data
    handler = functools.partial(QuietHandler, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="tdyn-chromium-")
    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--window-size=1280,1600", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


WAIT_FOR_MATHJAX = """
const done = arguments[arguments.length - 1];
if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
  MathJax.startup.promise.then(() => done(true), () => done(false));
} else { done(document.querySelectorAll('.math').length === 0); }
"""

# Images whose rendered width-to-height ratio is more than 2 % off their own.
DISTORTED = """
const distorted = () => [...document.querySelectorAll('main img')]
  .filter(i => i.naturalWidth > 0 && i.clientWidth > 0 && i.clientHeight > 0)
  .map(i => ({src: i.getAttribute('src').split('/').pop().slice(0, 12),
              ratio: (i.clientWidth / i.clientHeight) / (i.naturalWidth / i.naturalHeight)}))
  .filter(r => Math.abs(r.ratio - 1) > 0.02);
"""

PAGE_REPORT = DISTORTED + """
const text = (root) => { const c = root.cloneNode(true);
  // .onlyprint: the theme's print-only title, hidden on screen
  c.querySelectorAll('pre, code, script, style, mjx-container, .highlight, .onlyprint')
   .forEach(e => e.remove());
  return c.textContent; };
const maths = [...document.querySelectorAll('.math')];
return {
  math: maths.length,
  untypeset: maths.filter(m => !m.querySelector('mjx-container')).length,
  mathErrors: document.querySelectorAll('mjx-merror').length,
  rawTex: (text(document.querySelector('main') || document.body)
           .match(/\\$|\\\\[A-Za-z]{2,}/g) || []),
  brokenImages: [...document.images].filter(i => !(i.complete && i.naturalWidth > 0))
                .map(i => i.getAttribute('src')),
  distortedImages: distorted(),
  links: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href')),
};
"""


def _check_internal_link(page_url: str, href: str, base: str) -> str | None:
    """Problem with one internal link, or None when its file and anchor exist."""
    target = urljoin(page_url, href)
    if not target.startswith(base):
        return None  # external: readers follow it, the page does not load it
    path, fragment = urldefrag(target)
    relative = unquote(urlparse(path).path).lstrip("/")
    file = HTML / relative
    if file.is_dir():
        file = file / "index.html"
    if not file.is_file():
        return f"{href}: {relative} does not exist"
    if fragment and file.suffix == ".html":
        ids = set(re.findall(r'\bid="([^"]+)"', file.read_text(errors="replace")))
        if fragment not in ids:
            return f"{href}: no anchor #{fragment} in {relative}"
    return None


@pytest.mark.parametrize("page", toc_pages())
def test_page_renders_for_a_reader(page, site, browser):
    url = urljoin(site, f"{page}.html")
    browser.get_log("browser")  # drop messages of earlier pages
    browser.get(url)
    assert browser.execute_async_script(WAIT_FOR_MATHJAX), "MathJax failed to start"
    report = browser.execute_script(PAGE_REPORT)
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], f"console errors on {page}: {errors}"
    assert report["untypeset"] == 0, f"{report['untypeset']} of {report['math']} equations"
    assert report["mathErrors"] == 0, "MathJax reported TeX errors"
    assert report["rawTex"] == [], "raw TeX (a dollar sign or a command) left in the text"
    assert report["brokenImages"] == [], "images that did not load"
    assert report["distortedImages"] == [], "images not at their own aspect ratio (1280 px)"
    problems = [p for href in report["links"] if not href.startswith(("mailto:", "javascript:"))
                if (p := _check_internal_link(url, href, site))]
    assert problems == [], "broken internal links"
    source = ROOT / "book" / f"{page}.md"
    if source.is_file() and "```{code-cell}" in source.read_text():
        assert any(href.endswith(f"_sources/{page}.ipynb") for href in report["links"]), (
            "a chapter with code offers its executed notebook for download")


def test_figures_keep_their_shape_on_a_phone(site, browser):
    """At a 390 x 844 viewport every image is scaled down to the column, width and height
    together (within 2 % of its own aspect ratio)."""
    browser.set_window_size(390, 844)
    try:
        distorted = {}
        for page in toc_pages():
            browser.get(urljoin(site, f"{page}.html"))
            found = browser.execute_script(DISTORTED + "return distorted();")
            if found:
                distorted[page] = found
    finally:
        browser.set_window_size(1280, 1600)
    assert distorted == {}, f"images not at their own aspect ratio at 390 px: {distorted}"


def test_screenshots_of_key_pages(site, browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pages = toc_pages()
    taken = []
    for name, candidates in SCREENSHOT_PAGES.items():
        page = next((p for p in candidates if p in pages), None)
        if page is None:
            continue
        browser.get(urljoin(site, f"{page}.html"))
        browser.execute_async_script(WAIT_FOR_MATHJAX)
        path = SCREENSHOTS / f"{name}.png"
        assert browser.save_screenshot(str(path)), f"no screenshot of {page}"
        assert path.stat().st_size > 10_000, f"screenshot of {page} looks empty"
        taken.append(name)
    assert "front" in taken
