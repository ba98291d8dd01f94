"""Fixtures of the browser tests: headless Debian Chromium driven by Playwright, the site
``altws serve`` serves (in threads of this process, on 127.0.0.1), and the bare
``websockets`` echo server as the native reference.

``engine`` runs a test in each engine of ``engines.py`` (Chromium, Firefox ESR, WebKit),
through one interface; ``browser``, ``context`` and ``page`` are Playwright's Chromium.

No browser is downloaded: the browsers are Debian's. Every wait is bounded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from ..support import TIMEOUT, NativeEcho, Site, serving
from .engines import (  # noqa: F401 - where they always were
    CHROMIUM,
    CHROMIUM_ARGS,
    ENGINES,
    Engine,
    EngineError,
    Tab,
    _close_all,
    _Playwright,
    missing,
)

MS = int(TIMEOUT * 1000)

# Helpers injected into every test page (window.H), used by the page-side test code.
HELPERS = r"""
window.H = {
  MS: %(ms)d,
  record(ws) {
    const log = [];
    for (const type of ["open", "message", "error", "close"]) {
      ws.addEventListener(type, (e) => {
        const item = { type, readyState: ws.readyState };
        if (type === "message") {
          item.data = e.data;
          item.kind = typeof e.data === "string" ? "string"
            : e.data instanceof Blob ? "Blob" : e.data instanceof ArrayBuffer ? "ArrayBuffer"
            : "other";
          item.isMessageEvent = e instanceof MessageEvent;
          item.originMatches = e.origin === new URL(ws.url).origin;
        }
        if (type === "close") {
          Object.assign(item, { code: e.code, reason: e.reason, wasClean: e.wasClean,
                                isCloseEvent: e instanceof CloseEvent });
        }
        item.isEvent = e instanceof Event;
        item.targetOk = e.target === ws;
        log.push(item);
      });
    }
    return log;
  },
  until(predicate, ms = H.MS) {
    return new Promise((resolve) => {
      const start = Date.now();
      (function check() {
        if (predicate()) return resolve(true);
        if (Date.now() - start > ms) return resolve(false);
        setTimeout(check, 10);
      })();
    });
  },
  opened(ws) {
    return new Promise((resolve, reject) => {
      if (ws.readyState === 1) return resolve();
      const timer = setTimeout(() => reject(new Error("no open in time")), H.MS);
      ws.addEventListener("open", () => { clearTimeout(timer); resolve(); });
      ws.addEventListener("close", () => { clearTimeout(timer); reject(new Error("closed")); });
    });
  },
  closed(ws) {
    return new Promise((resolve) => {
      if (ws.readyState === 3) return resolve(true);
      const timer = setTimeout(() => resolve(false), H.MS);
      ws.addEventListener("close", () => {
        clearTimeout(timer);
        setTimeout(() => resolve(true), 0);
      });
    });
  },
  async bytes(data) {
    if (data instanceof Blob) data = await data.arrayBuffer();
    return Array.from(new Uint8Array(data));
  },
  error(fn) {
    try {
      fn();
      return null;
    } catch (e) {
      return e instanceof DOMException ? e.name : "not DOMException:" + e;
    }
  },
};
""" % {"ms": MS}  # noqa: UP031 - JavaScript: with str.format every brace would be doubled


def require(engine: str) -> None:
    """Skip a test whose browser is not installed, except in CI, where that is a failure
    (tests/run.sh installs every engine)."""
    absent = missing(engine)
    if absent:
        if os.environ.get("CI"):
            pytest.fail(f"{engine}: not installed ({absent}); tests/run.sh installs it")
        pytest.skip(f"{engine}: not installed ({absent}); tests/run.sh installs it")


@pytest.fixture(scope="session")
def browser() -> object:
    """Playwright's Debian Chromium (one for the session, shared with ``engine``)."""
    require("chromium")
    return _Playwright.browser()


@pytest.fixture(scope="session", params=ENGINES)
def engine(request) -> Iterator[Engine]:
    """Each engine in turn (tests are grouped by engine: one engine runs at a time)."""
    require(request.param)
    current = Engine(request.param)
    try:
        yield current
    finally:
        current.close()


def pytest_sessionfinish(session, exitstatus) -> None:  # type: ignore[no-untyped-def]
    _close_all()
    _Playwright.stop()


@pytest.fixture(scope="session")
def native_echo() -> Iterator[NativeEcho]:
    yield from serving(NativeEcho())


@pytest.fixture(scope="session")
def altws(tmp_path_factory) -> Iterator[Site]:
    """One site (the emulation alone) shared by the tests that do not change its settings."""
    yield from serving(Site(str(tmp_path_factory.mktemp("altws-data"))))


@pytest.fixture
def short_streams(tmp_path) -> Iterator[Site]:
    """A site whose streams end after one second: the client must resume them."""
    yield from serving(Site(str(tmp_path / "data"), stream_lifetime=1, heartbeat=0.5,
                            poll_interval=0.1))


def open_page(context: object, server_url: str) -> object:
    """A page on the server's origin (its /echo/info, a same-origin JSON document) with the
    client library and the test helpers loaded."""
    page = context.new_page()  # type: ignore[attr-defined]
    page.set_default_timeout(3 * MS)
    page.goto(server_url + "/echo/info")
    page.add_script_tag(url="/static/altwebsocket.js")
    page.add_script_tag(content=HELPERS)
    return page


def open_tab(browser: object, server_url: str, tab: object | None = None) -> object:
    """``open_page`` for any engine: a tab of ``browser`` (an ``engines.Browser``; or
    ``tab``, navigated anew) on the server's /echo/info with the client library and the test
    helpers loaded."""
    if tab is None:
        tab = browser.new_tab()  # type: ignore[attr-defined]
    tab.goto(server_url + "/echo/info")  # type: ignore[attr-defined]
    tab.load_script("/static/altwebsocket.js")  # type: ignore[attr-defined]
    tab.evaluate("() => {" + HELPERS + "}")  # type: ignore[attr-defined]
    return tab


_SPARE_TABS: dict[str, Tab] = {}  # per engine: the last test's tab, for the next one


@pytest.fixture
def engine_tab(engine, altws) -> Iterator[Tab]:
    """A tab of the engine's shared browser, as ``page`` is for Chromium. The previous
    test's tab is navigated anew rather than a new one opened (a fresh document, whose
    sockets the navigation ended): opening a window costs Firefox and WebKit most of a
    second."""
    browser = engine.shared()
    tab = _SPARE_TABS.pop(engine.name, None)
    if tab is not None and (tab.closed or tab.crashed or tab.browser is not browser):
        tab = None
    try:
        tab = open_tab(browser, altws.url, tab)
    except EngineError:
        if tab is None:
            raise
        tab.close()  # a tab the previous test left unusable
        tab = open_tab(browser, altws.url)
    yield tab  # type: ignore[misc]
    if not (tab.closed or tab.crashed):  # type: ignore[attr-defined]
        _SPARE_TABS[engine.name] = tab  # type: ignore[assignment]


@pytest.fixture
def context(browser) -> Iterator[object]:
    ctx = browser.new_context()  # type: ignore[attr-defined]
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context, altws) -> object:
    return open_page(context, altws.url)


def console_errors(page: object) -> list[str]:
    """Collect the page's console errors (CSP violations show up there)."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)  # type: ignore[attr-defined]
    return errors
