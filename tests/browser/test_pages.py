"""The built book in real headless Chromium (Debian's chromium + chromedriver).

For the index, the claims page and every chapter: no broken local link or asset, no
request leaving the machine (the book must work offline), every <img> decoded, and a
screenshot under _build/screenshots/. On the intro page MathJax must have typeset math.
"""

import functools
import http.server
import json
import shutil
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from moderndl import stage

from ..conftest import REPO

HTML = REPO / "_build" / "html"
SHOTS = REPO / "_build" / "screenshots"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
PAGES = ["index.html", "book/intro.html", "book/claims.html"] + [f"notebooks/{n}.html" for n in stage.chapters()]

pytestmark = pytest.mark.skipif(not HTML.joinpath("index.html").is_file(), reason="run `make book` first")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    handler = functools.partial(_Quiet, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    assert CHROMIUM and CHROMEDRIVER, "install Debian's chromium and chromium-driver (make browser-deps)"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,1600", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@functools.cache
def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def _load(browser, url):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get_log("performance")  # drop the previous page's events
    browser.get(url)
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(
        "return Array.from(document.images).every(i => i.complete)"))


def _requests(browser) -> list[tuple[str, int | None]]:
    """(url, status) for every network request the page made."""
    seen: dict[str, int | None] = {}
    for entry in browser.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            seen.setdefault(msg["params"]["request"]["url"], None)
        elif msg["method"] == "Network.responseReceived":
            seen[msg["params"]["response"]["url"]] = msg["params"]["response"]["status"]
    return list(seen.items())


@pytest.mark.parametrize("page", PAGES)
def test_page(browser, server, page):
    _load(browser, server + page)
    assert "404" not in browser.title

    off_machine = [u for u, _ in _requests(browser) if u.startswith("http") and not u.startswith(server)]
    assert not off_machine, f"{page} requests resources from the network: {off_machine}"
    failed = [(u, s) for u, s in _requests(browser) if s is not None and s >= 400]
    assert not failed, f"{page}: failed requests {failed}"

    refs = browser.execute_script("""
        const out = [];
        document.querySelectorAll('a[href]').forEach(e => out.push(e.href));
        document.querySelectorAll('img[src], script[src]').forEach(e => out.push(e.src));
        document.querySelectorAll('link[href]').forEach(e => { if (e.rel !== 'canonical') out.push(e.href); });
        return out;""")
    local = {urllib.parse.urldefrag(r)[0].split("?")[0] for r in refs if r.startswith(server)}
    broken = sorted(u for u in local if _status(u) != 200)
    assert not broken, f"{page}: broken local links or assets: {broken}"

    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.currentSrc || i.src, i.naturalWidth]);")
    undecoded = [src for src, width in images if not width]
    assert not undecoded, f"{page}: images that did not load: {undecoded}"

    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / (Path(page).with_suffix("").as_posix().replace("/", "_") + ".png")
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000


def test_mathjax_renders_on_the_intro(browser, server):
    from selenium.webdriver.support.ui import WebDriverWait

    _load(browser, server + "book/intro.html")
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(
        "return document.querySelectorAll('mjx-container').length > 0"))
    rendered = browser.execute_script("return document.querySelectorAll('mjx-container').length")
    assert rendered >= 1
    assert browser.execute_script("return window.MathJax && window.MathJax.version").startswith("3.")


@pytest.mark.parametrize("name", stage.chapters())
def test_chapter_page_shows_provenance(browser, server, name):
    _load(browser, server + f"notebooks/{name}.html")
    text = browser.find_element("tag name", "body").text
    assert "Provenance of this page" in text and any(p in text for p in ("smoke", "laptop", "full"))


@pytest.mark.parametrize("name", stage.chapters())
def test_no_code_cell_scrolls_sideways_at_1280_px(browser, server, name):
    """Code cells fit the page: none of a chapter's code blocks is wider than its box."""
    browser.set_window_size(1280, 1600)
    _load(browser, server + f"notebooks/{name}.html")
    wide = browser.execute_script("""
        return Array.from(document.querySelectorAll('div.cell_input pre'))
            .filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1)
            .map(e => (e.innerText.split('\\n').find(l => l.length > 0) || '').slice(0, 60)
                      + ` (${e.scrollWidth} > ${e.clientWidth} px)`);""")
    assert not wide, f"{name}: code cells that scroll sideways at 1280 px: {wide}"


def test_claims_page_lists_every_chapter(browser, server):
    _load(browser, server + "book/claims.html")
    assert "Claims ledger" in browser.find_element("tag name", "body").text
    links = browser.execute_script(
        "return Array.from(document.querySelectorAll('main a[href]')).map(a => a.href)")
    for name in stage.chapters():
        assert any(h.split("#")[0].endswith(f"notebooks/{name}.html") for h in links), f"claims page lacks {name}"
    tables = browser.execute_script("return document.querySelectorAll('main table').length")
    assert tables >= len(stage.chapters()), "one claims table per chapter"
