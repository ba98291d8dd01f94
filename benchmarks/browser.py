"""The echo procedure driven from headless Chromium, the client that matters.

Chromium (Debian's ``/usr/bin/chromium``; override with ``ALTWS_CHROMIUM``) is driven over
the DevTools protocol with nothing but ``Target`` and ``Runtime`` commands, on a
``websockets`` connection: no Playwright here. Playwright enables the ``Network`` domain of
every page, which costs each HTTP request an event round to its driver: measured on this
machine, a bare ``fetch`` from the page took 5.6 ms (median) under Playwright against 3.0 ms
without it — an overhead that would be charged to every emulated message.

A page on the server's own origin (the lab's blank ``/_lab/page`` of ``altws serve``, the
bare server's page, or the CGI site's index) loads ``/static/altwebsocket.js`` and
``browser.js`` beside this module, then runs the round trips inside the page
(``performance.now()``). The lab's pages are cross-origin isolated (COOP and COEP headers,
``benchmarks.servers.ISOLATED``), where Chromium's ``performance.now()`` resolves 5 µs; in a
page without them (the CGI site's) it resolves 0.1 ms, coarse for single round trips but
fine for totals and medians.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from altwebsocket.bench.procedure import WARMUP, Progress, Series

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "BrowserRun", "BrowserUnavailable", "BrowserBench"]

CHROMIUM = os.environ.get("ALTWS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--no-default-browser-check", "--disable-extensions",
    # a background tab must not be throttled while it measures
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
]
_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "browser.js")
_CLIENTS = {"emulation": "/static/altwebsocket.js", "emulation-v1": "/static/altwebsocket.js",
            "emulation-worker": "/static/altwebsocket.js",
            "native": "/static/altwebsocket.js", "socketio": "/socket.io/socket.io.min.js",
            "socketio-text": "/socket.io/socket.io.min.js"}
"""The client script each mode loads into the page (from the page's own origin)."""
CHUNK = 250
"""Round trips per call into the page (the progress bar moves between calls)."""


@dataclass
class BrowserRun:
    """One setup for :meth:`BrowserBench.measure_interleaved` (see :meth:`~BrowserBench.
    measure` for the modes)."""

    key: str
    label: str
    page_url: str
    target: str
    mode: str
    transport: str
    rounds: list[int]


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


class BrowserUnavailable(RuntimeError):
    """No Chromium on this machine, or it did not start."""


class PageError(RuntimeError):
    """A script in the page threw, or the DevTools protocol answered an error."""


class _DevTools:
    """A minimal DevTools protocol client: commands and their answers, events ignored."""

    def __init__(self, url: str, timeout: float) -> None:
        from websockets.sync.client import connect

        self._ws = connect(url, max_size=None, compression=None, open_timeout=timeout)
        self._next = 0
        self.timeout = timeout

    def call(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None, timeout: float | None = None
             ) -> dict[str, Any]:
        """Send a command and wait for its answer (``PageError`` for an error answer)."""
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._ws.send(json.dumps(message))
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer to {method} in time")
            answer = json.loads(self._ws.recv(timeout=left))
            if answer.get("id") == self._next:
                if "error" in answer:
                    raise PageError(f"{method}: {answer['error'].get('message')}")
                return answer.get("result", {})  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close the protocol connection."""
        self._ws.close()


class BrowserBench:
    """One headless Chromium; :meth:`measure` runs the echo procedure in a fresh page."""

    def __init__(self, executable: str = CHROMIUM, timeout_ms: int = 30000) -> None:
        path = executable if os.path.exists(executable) else shutil.which(executable)
        if not path:
            raise BrowserUnavailable(f"no Chromium at {executable} (set ALTWS_CHROMIUM)")
        self.timeout_ms = timeout_ms
        self._profile = tempfile.mkdtemp(prefix="altws-bench-chromium-")
        self._proc = subprocess.Popen(
            [path, *CHROMIUM_ARGS, "--remote-debugging-port=0",
             f"--user-data-dir={self._profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        port_file = os.path.join(self._profile, "DevToolsActivePort")
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            try:
                with open(port_file, encoding="ascii") as found:
                    port, path_line = found.read().split("\n")[:2]
                if port and path_line:
                    break
            except (OSError, ValueError):
                pass
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise BrowserUnavailable("Chromium did not start (no DevTools port)")
            time.sleep(0.05)
        try:
            self._devtools = _DevTools(f"ws://127.0.0.1:{port}{path_line}", timeout_ms / 1000)
        except Exception as exc:
            self.close()
            raise BrowserUnavailable(f"cannot reach Chromium's DevTools: {exc}") from None
        with open(_SCRIPT, encoding="utf-8") as script:
            self._js = script.read()

    def _evaluate(self, session: str, expression: str, timeout: float | None = None
                  ) -> Any:
        result = self._devtools.call("Runtime.evaluate", {
            "expression": expression, "awaitPromise": True, "returnByValue": True,
        }, session, timeout)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise PageError(str(text).splitlines()[0])
        return result.get("result", {}).get("value")

    def _open_page(self, url: str) -> tuple[str, str]:
        target = self._devtools.call("Target.createTarget", {"url": url})["targetId"]
        session = self._devtools.call("Target.attachToTarget",
                                      {"targetId": target, "flatten": True})["sessionId"]
        deadline = time.monotonic() + self.timeout_ms / 1000
        # a new target shows about:blank, complete, before it navigates to ``url``: wait
        # for the page itself (a script run in about:blank dies with the navigation)
        probe = f"location.href === {json.dumps(url)} && document.readyState === 'complete'"
        while True:
            try:
                if self._evaluate(session, probe):
                    break
            except PageError:  # the context went away mid-navigation: ask again
                pass
            if time.monotonic() > deadline:
                raise PageError(f"{url} did not load")
            time.sleep(0.05)
        return target, session

    def measure(self, page_url: str, target: str, mode: str, rounds: Iterable[int],
                size: int, key: str, label: str, transport: str,
                quiet: bool = False) -> Series:
        """Run the procedure from a page at ``page_url`` (an HTML or JSON document of the
        server's origin) against ``target`` (an app base URL, or a ``ws://`` URL for the
        browser's own WebSocket; an HTTP echo URL for ``fetch``), with ``mode``
        ``emulation`` (the shared session, held by the tab), ``emulation-worker`` (held by a
        SharedWorker), ``emulation-v1`` (``{share: false}``, one stream per socket),
        ``native``, ``websocket``, ``fetch`` (one POST per echo) or ``sse`` (a raw
        EventSource down, a fetch POST up, at a bare server) or ``socketio`` /
        ``socketio-text`` (Socket.IO's long-polling, binary or as hex text, from a page of the
        peer's own origin).
        Errors are recorded in the series."""
        run = BrowserRun(key, label, page_url, target, mode, transport, list(rounds))
        return self.measure_interleaved([run], size, quiet)[0]

    def measure_interleaved(self, runs: list[BrowserRun], size: int, quiet: bool = False
                            ) -> list[Series]:
        """Measure several setups side by side: each in its own page (tab), their sockets
        open together, their round trips taken in turns of :data:`CHUNK` (A, B, C, A, B,
        C…), so that a moment of load on this shared machine falls on all of them alike and
        their ratios hold. Each round count is a fresh connection per setup. A setup that
        fails is recorded in its series and leaves the others going."""
        series = [Series(run.key, run.label, "chromium", run.transport) for run in runs]
        pages: list[tuple[str, str] | None] = []
        seconds = self.timeout_ms / 1000
        for run, one in zip(runs, series):
            try:
                pages.append(self._prepare(run))
            except Exception as exc:  # a page error or timeout: recorded for the table
                one.error = _error(exc)
                pages.append(None)
        try:
            for count in sorted({count for run in runs for count in run.rounds}):
                going = [n for n, run in enumerate(runs)
                         if count in run.rounds and pages[n] and not series[n].error]
                title = f"Chromium, {len(going)} setups in turns" if len(going) != 1 \
                    else runs[going[0]].label[:36]
                progress: Progress | None = None if quiet or not going else Progress(
                    f"{title} x{count}", count * len(going))
                for n in list(going):
                    try:
                        self._open_socket(runs[n], pages[n][1], size)  # type: ignore[index]
                    except Exception as exc:
                        series[n].error = _error(exc)
                        going.remove(n)
                totals = dict.fromkeys(going, 0.0)
                samples: dict[int, list[float]] = {n: [] for n in going}
                done = 0
                while done < count and going:
                    step = min(CHUNK, count - done)
                    for n in list(going):
                        session = pages[n][1]  # type: ignore[index]
                        try:
                            result = self._evaluate(
                                session, f"altwsBench.run({step}, {size}, {self.timeout_ms})",
                                step * seconds)
                        except Exception as exc:
                            series[n].error = _error(exc)
                            going.remove(n)
                            continue
                        totals[n] += float(result["total"])
                        samples[n].extend(float(value) for value in result["samples"])
                        if progress is not None:
                            progress.update(step)
                    done += step
                for n in going:
                    try:
                        self._evaluate(pages[n][1], "altwsBench.close()")  # type: ignore[index]
                    except Exception as exc:
                        series[n].error = _error(exc)
                        continue
                    series[n].add(count, totals[n], samples[n])
                if progress is not None:
                    progress.finish(", ".join(f"{totals[n]:,.0f}" for n in going) + " ms")
        finally:
            for page in pages:
                if page:
                    try:
                        self._devtools.call("Target.closeTarget", {"targetId": page[0]})
                    except Exception:  # the browser may be gone: close() cleans up
                        pass
        return series

    def _prepare(self, run: BrowserRun) -> tuple[str, str]:
        """A tab at the run's page with its client script and ``browser.js`` loaded."""
        page_target, session = self._open_page(run.page_url)
        try:
            script = _CLIENTS.get(run.mode)
            if script:
                self._evaluate(session, f"""new Promise((resolve, reject) => {{
                    const s = document.createElement("script");
                    s.src = {json.dumps(script)}; s.onload = resolve;
                    s.onerror = () => reject(new Error("cannot load " + s.src));
                    (document.head || document.documentElement).appendChild(s); }})""")
            self._evaluate(session, self._js)
        except BaseException:
            try:
                self._devtools.call("Target.closeTarget", {"targetId": page_target})
            except Exception:
                pass
            raise
        return page_target, session

    def _open_socket(self, run: BrowserRun, session: str, size: int) -> None:
        """Open the run's socket in its tab, then the uncounted warm-up round trips."""
        seconds = self.timeout_ms / 1000
        args = json.dumps([run.target, run.mode, self.timeout_ms])
        got = self._evaluate(session, f"altwsBench.open(...{args})", 2 * seconds)
        wanted = "emulation" if run.mode.startswith("emulation") else run.mode
        if got != wanted and (run.mode.startswith("emulation") or run.mode == "native"):
            raise RuntimeError(f"AltWebSocket opened {got}, not {wanted}")
        self._evaluate(session, f"altwsBench.run({WARMUP}, {size}, {self.timeout_ms})",
                       2 * seconds)

    def close(self) -> None:
        """Close Chromium and remove its profile."""
        devtools = getattr(self, "_devtools", None)
        if devtools is not None:
            try:
                devtools.call("Browser.close", timeout=5)
            except Exception:  # it may close the connection before answering
                pass
            devtools.close()
            # no method but close() runs after close(), and close() reads it with getattr
            self._devtools = None  # type: ignore[assignment]
        if self._proc.poll() is None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self._proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self._proc.wait(timeout=5)
        shutil.rmtree(self._profile, ignore_errors=True)
