"""Every page of the built book, as a reader sees it in headless Chromium.

Builds the book (served from the execution cache when nothing changed), serves it on
loopback and opens each page at 1400 px and at a 390 x 844 phone viewport: no console
errors, every equation typeset by the bundled MathJax (no raw TeX left), every image loaded
and at its own aspect ratio (within 2 %), no element wider than the viewport (the page never
scrolls sideways), every internal link and anchor resolving, every figure numbered with a
caption and alt text that is not a file name, no output showing a traceback, a warning or a
local path, and no network request to anything but the local server (Chrome's DevTools
performance log).

Screenshots, for a reader to look at: book/_build/screenshots/front.png (the front page),
derivation.png (a Part I derivation), phase_diagram.png (a phase diagram), phone.png (a
Part I chapter at 390 px).

Skips, with the reason, only when Chromium or ChromeDriver is not installed (Debian's
`chromium` and `chromium-driver`; .ci/run installs them).
"""

import functools
import http.server
import importlib.util
import json
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
# a page, scrolled to an anchor when one is given.
SCREENSHOT_PAGES = {
    "front": ["intro"],
    "derivation": ["part1/attention#step-2-the-gram-matrix-of-the-attention-output",
                   "part1/particles", "intro"],
    "phase_diagram": ["part1/joint_phase_diagram#fig-part1-joint-phases",
                      "part1/angle_exponent", "part1/mlp_phases"],
}
PHONE_SCREENSHOT = ["part1/mlp_phases#fig-part1-rho-map", "intro"]
DESKTOP, PHONE = (1400, 1600), (390, 844)

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
                 "--disable-sync", "--window-size={},{}".format(*DESKTOP),
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # performance: every network request of a page (Network.requestWillBeSent)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
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

# Elements that stick out of the viewport, outside any box that scrolls or clips them: what
# makes the page scroll sideways.
OVERFLOWING = """
const overflowing = () => {
  const width = document.documentElement.clientWidth;
  // inside a box that scrolls or clips, or in a fixed layer (the theme's off-canvas drawers)
  const clipped = (e) => { for (let a = e; a; a = a.parentElement) {
      const style = getComputedStyle(a);
      if (style.position === 'fixed') return true;
      if (a !== e && style.overflowX !== 'visible') return a !== document.body
        && a !== document.documentElement; } return false; };
  const found = [...document.querySelectorAll('body *')].filter(e => {
    const r = e.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && r.right > width + 1 && !clipped(e); });
  const outer = found.filter(e => !found.includes(e.parentElement));
  return {scrollWidth: document.documentElement.scrollWidth, width: width,
          elements: outer.slice(0, 5).map(e => e.tagName.toLowerCase() + '.' +
            [...e.classList].join('.') + ' (' + Math.round(e.getBoundingClientRect().right) + ')')};
};
"""

PAGE_REPORT = DISTORTED + OVERFLOWING + """
const text = (root) => { const c = root.cloneNode(true);
  // .onlyprint: the theme's print-only title, hidden on screen
  c.querySelectorAll('pre, code, script, style, mjx-container, .highlight, .onlyprint')
   .forEach(e => e.remove());
  return c.textContent; };
const maths = [...document.querySelectorAll('.math')];
const outputs = [...document.querySelectorAll('.cell_output')].map(o => o.textContent);
const images = [...document.querySelectorAll('main .cell_output img')];
return {
  math: maths.length,
  untypeset: maths.filter(m => !m.querySelector('mjx-container')).length,
  mathErrors: document.querySelectorAll('mjx-merror').length,
  rawTex: (text(document.querySelector('main') || document.body)
           .match(/\\$|\\\\[A-Za-z]{2,}/g) || []),
  brokenImages: [...document.images].filter(i => !(i.complete && i.naturalWidth > 0))
                .map(i => i.getAttribute('src')),
  distortedImages: distorted(),
  overflow: overflowing(),
  badOutputs: outputs.filter(o => /Traceback|Warning|\\/(work|root|home)\\//.test(o))
                     .map(o => o.trim().slice(0, 160)),
  uncaptioned: images.filter(i => { const f = i.closest('figure');
      return !(f && f.id && f.querySelector('figcaption .caption-number')
               && f.querySelector('figcaption').textContent.trim().length > 20); })
    .map(i => i.getAttribute('src').split('/').pop().slice(0, 12)),
  badAlt: images.map(i => i.getAttribute('alt') || '')
    .filter(a => a.length < 20 || /[0-9a-f]{16}|\\.(png|svg|jpe?g)$/i.test(a)),
  links: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href')),
};
"""


def _requests(browser) -> list[str]:
    """URLs the browser requested since the last call (Chrome's performance log)."""
    urls = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _foreign(urls: list[str], base: str) -> list[str]:
    """The requests that do not go to the local server (inline data excepted)."""
    return [u for u in urls if not u.startswith((base, "data:", "blob:", "about:"))]


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


def _viewport(browser, size: tuple[int, int], mobile: bool = False) -> None:
    """Give pages a viewport of exactly ``size`` CSS pixels (a phone's when ``mobile``)."""
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": mobile})


def _open(browser, url: str) -> None:
    """Load ``url`` and wait for MathJax."""
    browser.get(url)
    assert browser.execute_async_script(WAIT_FOR_MATHJAX), f"MathJax failed to start on {url}"


@pytest.mark.parametrize("page", toc_pages())
def test_page_renders_for_a_reader(page, site, browser):
    url = urljoin(site, f"{page}.html")
    _viewport(browser, DESKTOP)
    browser.get_log("browser")  # drop messages and requests of earlier pages
    _requests(browser)
    _open(browser, url)
    report = browser.execute_script(PAGE_REPORT)
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], f"console errors on {page}: {errors}"
    assert _foreign(_requests(browser), site) == [], "requests to other servers than the book's"
    assert report["untypeset"] == 0, f"{report['untypeset']} of {report['math']} equations"
    assert report["mathErrors"] == 0, "MathJax reported TeX errors"
    assert report["rawTex"] == [], "raw TeX (a dollar sign or a command) left in the text"
    assert report["brokenImages"] == [], "images that did not load"
    assert report["distortedImages"] == [], "images not at their own aspect ratio (1400 px)"
    assert report["overflow"]["elements"] == [], "elements wider than the viewport (1400 px)"
    assert report["overflow"]["scrollWidth"] <= report["overflow"]["width"], "page scrolls sideways"
    assert report["badOutputs"] == [], "outputs with a traceback, a warning or a local path"
    assert report["uncaptioned"] == [], "figures without a number and a caption"
    assert report["badAlt"] == [], "figures whose alt text is a file name, or missing"
    problems = [p for href in report["links"] if not href.startswith(("mailto:", "javascript:"))
                if (p := _check_internal_link(url, href, site))]
    assert problems == [], "broken internal links"
    source = ROOT / "book" / f"{page}.md"
    if source.is_file() and "```{code-cell}" in source.read_text():
        assert any(href.endswith(f"_sources/{page}.ipynb") for href in report["links"]), (
            "a chapter with code offers its executed notebook for download")


def test_every_page_fits_a_phone(site, browser):
    """At a 390 x 844 phone viewport every image is scaled down to the column, width and
    height together (within 2 % of its own aspect ratio), and nothing is wider than the
    screen: no page scrolls sideways."""
    _viewport(browser, PHONE, mobile=True)
    distorted, overflowing = {}, {}
    try:
        for page in toc_pages():
            _open(browser, urljoin(site, f"{page}.html"))
            found = browser.execute_script(DISTORTED + OVERFLOWING
                                           + "return [distorted(), overflowing()];")
            if found[0]:
                distorted[page] = found[0]
            if found[1]["elements"] or found[1]["scrollWidth"] > found[1]["width"]:
                overflowing[page] = found[1]
    finally:
        _viewport(browser, DESKTOP)
    assert distorted == {}, f"images not at their own aspect ratio at 390 px: {distorted}"
    assert overflowing == {}, f"pages wider than a 390 px screen: {overflowing}"


def test_screenshots_of_key_pages(site, browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pages = toc_pages()
    def first(candidates):
        return next((p for p in candidates if p.split("#")[0] in pages), None)

    shots = [(name, first(candidates), DESKTOP) for name, candidates in SCREENSHOT_PAGES.items()]
    shots.append(("phone", first(PHONE_SCREENSHOT), PHONE))
    taken = []
    try:
        for name, page, size in shots:
            if page is None:
                continue
            _viewport(browser, size, mobile=size == PHONE)
            page, _, anchor = page.partition("#")
            _open(browser, urljoin(site, f"{page}.html") + (f"#{anchor}" if anchor else ""))
            path = SCREENSHOTS / f"{name}.png"
            assert browser.save_screenshot(str(path)), f"no screenshot of {page}"
            assert path.stat().st_size > 10_000, f"screenshot of {page} looks empty"
            taken.append(name)
    finally:
        _viewport(browser, DESKTOP)
    assert {"front", "phone"} <= set(taken)
