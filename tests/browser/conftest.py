"""Fixtures of the browser tests: headless Debian Chromium driven by Playwright, the site
``altws serve`` serves (in threads of this process, on 127.0.0.1), and the bare
``websockets`` echo server as the native reference.

No browser is downloaded: Playwright drives ``/usr/bin/chromium``. Every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from ..support import TIMEOUT, NativeEcho, Site, serving

CHROMIUM = os.environ.get("ALTWS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
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


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not os.path.exists(CHROMIUM) and not shutil.which(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                              timeout=3 * MS)
        try:
            yield chromium
        finally:
            chromium.close()


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
