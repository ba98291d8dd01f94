"""The echo procedure driven from headless Chromium, the client that matters.

Playwright (Python) drives Debian's ``/usr/bin/chromium`` (no browser download; override
with ``ALTWS_CHROMIUM``). A page on the server's own origin loads ``/static/altwebsocket.js``
and ``browser.js`` of this package, then runs the round trips inside the page
(``performance.now()``, whose resolution in Chromium is 0.1 ms without cross-origin
isolation: fine for totals and medians of emulated round trips, coarse for native ones).
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Iterable, Optional

from .procedure import WARMUP, Progress, Series

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "BrowserUnavailable", "BrowserBench"]

CHROMIUM = os.environ.get("ALTWS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    # a background tab must not be throttled while it measures
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
]
_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "browser.js")
CHUNK = 250
"""Round trips per call into the page (the progress bar moves between calls)."""


class BrowserUnavailable(RuntimeError):
    """No Chromium or no Playwright on this machine."""


class BrowserBench:
    """One headless Chromium; :meth:`measure` runs the echo procedure in a fresh page."""

    def __init__(self, executable: str = CHROMIUM, timeout_ms: int = 30000) -> None:
        if not os.path.exists(executable) and not shutil.which(executable):
            raise BrowserUnavailable(f"no Chromium at {executable} (set ALTWS_CHROMIUM)")
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            raise BrowserUnavailable("the Python package playwright is not installed") \
                from None
        self.timeout_ms = timeout_ms
        self._playwright = sync_playwright().start()
        try:
            self._browser = self._playwright.chromium.launch(
                executable_path=executable, args=CHROMIUM_ARGS, timeout=timeout_ms)
        except Exception as exc:
            self._playwright.stop()
            raise BrowserUnavailable(f"Chromium did not start: {exc}") from None
        with open(_SCRIPT, encoding="utf-8") as script:
            self._js = script.read()

    def measure(self, page_url: str, target: str, mode: str, rounds: Iterable[int],
                size: int, key: str, label: str, transport: str,
                quiet: bool = False) -> Series:
        """Run the procedure from a page at ``page_url`` (an HTML or JSON document of the
        server's origin) against ``target`` (an app base URL, or a ``ws://`` URL for the
        browser's own WebSocket), with ``mode`` ``emulation``, ``native`` or ``websocket``.
        Errors are recorded in the series."""
        series = Series(key, label, "chromium", transport)
        context: Any = self._browser.new_context()
        try:
            page = context.new_page()
            page.set_default_timeout(self.timeout_ms)
            page.goto(page_url)
            if mode != "websocket":
                page.add_script_tag(url="/static/altwebsocket.js")
            page.add_script_tag(content=self._js)
            for count in rounds:
                progress: Optional[Progress] = None if quiet else \
                    Progress(f"{label[:36]} x{count}", count)
                got = page.evaluate("([u, m, ms]) => altwsBench.open(u, m, ms)",
                                    [target, mode, self.timeout_ms])
                if mode != "websocket" and got != mode:
                    raise RuntimeError(f"AltWebSocket opened {got}, not {mode}")
                page.evaluate("([n, s, ms]) => altwsBench.run(n, s, ms)",
                              [WARMUP, size, self.timeout_ms])
                total, samples = 0.0, []
                left = count
                while left > 0:
                    step = min(CHUNK, left)
                    result = page.evaluate("([n, s, ms]) => altwsBench.run(n, s, ms)",
                                           [step, size, self.timeout_ms])
                    total += float(result["total"])
                    samples.extend(float(value) for value in result["samples"])
                    left -= step
                    if progress is not None:
                        progress.update(step)
                page.evaluate("() => altwsBench.close()")
                series.add(count, total, samples)
                if progress is not None:
                    progress.finish(f"{total:,.0f} ms")
        except Exception as exc:  # a page error or timeout: recorded for the table
            series.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        finally:
            context.close()
        return series

    def close(self) -> None:
        """Close Chromium and Playwright."""
        try:
            self._browser.close()
        finally:
            self._playwright.stop()
