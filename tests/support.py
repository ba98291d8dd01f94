"""Helpers shared by the tests: start real servers on 127.0.0.1, read SSE streams.

One timeout unit for all tests: ``TIMEOUT`` seconds (longer under CI).
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import httpx

from altwebsocket.protocol.sse import ServerSentEvent, SSEDecoder

TIMEOUT = 10.0 if os.environ.get("CI") else 5.0
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALTWS = [sys.executable, "-m", "altwebsocket"]


class Process:
    """A server started as a subprocess; its first URL line tells where it listens."""

    def __init__(self, args: list[str], pattern: str = r"(https?|wss?)://[\d.]+:\d+/?",
                 env: dict[str, str] | None = None, cwd: str | None = None) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()
        deadline = time.monotonic() + 3 * TIMEOUT
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise RuntimeError("server did not start:\n" + "".join(self.output)) from None
            match = re.search(pattern, line)
            if match:
                self.url = match.group(0).rstrip("/")
                return

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=TIMEOUT)


class Stream:
    """An SSE stream read in a thread by an independent client (httpx + SSEDecoder)."""

    def __init__(self, url: str, last_event_id: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.events: queue.Queue[ServerSentEvent] = queue.Queue()
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.raw = b""
        self.ended = threading.Event()
        self.opened = threading.Event()
        self.decoder = SSEDecoder()
        self._stop = False
        request_headers = dict(headers or {})
        if last_event_id is not None:
            request_headers["Last-Event-ID"] = str(last_event_id)
        self._thread = threading.Thread(target=self._run, args=(url, request_headers),
                                        daemon=True)
        self._thread.start()
        if not self.opened.wait(TIMEOUT):
            raise RuntimeError("stream did not open")

    def _run(self, url: str, headers: dict[str, str]) -> None:
        try:
            with httpx.stream("GET", url, headers=headers, timeout=None) as response:
                self.status = response.status_code
                self.headers = dict(response.headers)
                self.opened.set()
                for chunk in response.iter_raw():
                    self.raw += chunk
                    for event in self.decoder.feed(chunk):
                        self.events.put(event)
                    if self._stop:
                        break
        except httpx.HTTPError:
            pass
        finally:
            self.opened.set()
            self.ended.set()

    def next(self, timeout: float = TIMEOUT) -> ServerSentEvent:
        return self.events.get(timeout=timeout)

    def take(self, count: int, timeout: float = TIMEOUT) -> list[ServerSentEvent]:
        return [self.next(timeout) for _ in range(count)]

    def close(self) -> None:
        self._stop = True


HTTP = httpx.Client(timeout=TIMEOUT)  # one client: httpx.post() costs ~80 ms to set up


def new_connection(base: str, **body: Any) -> tuple[str, str]:
    response = HTTP.post(base + "/new", json=body or None)
    response.raise_for_status()
    data = response.json()
    return data["id"], data["token"]


def stream_url(base: str, conn_id: str, token: str) -> str:
    return f"{base}/?id={conn_id}&token={token}"


def send(base: str, conn_id: str, token: str, seq: int, data: Any = None,
         binary: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"id": conn_id, "token": token, "seq": seq}
    if binary is not None:
        body["binary"] = binary
    else:
        body["data"] = data
    return HTTP.post(base + "/send", json=body)


class Deployment:
    """A running HTTP deployment of the apps: ``base(app)`` is the app's base URL ``B``."""

    def __init__(self, kind: str, proc: Process, data: str, owns_data: bool = False) -> None:
        self.kind = kind
        self.proc = proc
        self.data = data
        self.url = proc.url
        self._owns_data = owns_data  # a folder made for it, removed when it stops

    def base(self, app: str) -> str:
        if self.kind == "cgi":
            return f"{self.url}/cgi-bin/altws.cgi/{app}"
        return f"{self.url}/{app}"

    def stop(self) -> None:
        self.proc.stop()
        if self._owns_data:
            shutil.rmtree(self.data, ignore_errors=True)


def start_deployment(kind: str, data: str, **settings: Any) -> Deployment:
    """Start ``altws serve`` (kind "wsgi") or ``altws cgi-server`` (kind "cgi") on a free port,
    with ``settings`` written to its configuration."""
    if kind == "wsgi":
        config = os.path.join(data, "altws.ini")
        with open(config, "w", encoding="utf-8") as out:
            out.write("[altws]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
        proc = Process(ALTWS + ["serve", "--port", "0", "--config", config, "--data", data])
    else:
        # Apache runs the CGI as www-data, which cannot enter pytest's 0700 temp folders.
        os.makedirs("/var/tmp/altws", mode=0o755, exist_ok=True)
        data = tempfile.mkdtemp(prefix="test-data-", dir="/var/tmp/altws")
        os.chmod(data, 0o755)
        args = ALTWS + ["cgi-server", "--port", "0", "--data", data]
        for name, value in settings.items():
            args += ["--set", f"{name}={value}"]
        proc = Process(args, pattern=r"http://127\.0\.0\.1:\d+/")
        return Deployment(kind, proc, data, owns_data=True)
    return Deployment(kind, proc, data)


def cgi_processes(method: str, conn_id: str = "") -> list[int]:
    """The CGI processes Apache runs for ``method`` requests (of ``conn_id``'s stream when
    given), found by their environment."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                environ = handle.read()
        except OSError:
            continue
        if (f"REQUEST_METHOD={method}".encode() in environ
                and b"SCRIPT_FILENAME=" in environ
                and (not conn_id or f"id={conn_id}".encode() in environ)):
            found.append(int(pid))
    return found


class FakeClock:
    """A clock for ``AltWebSocketServer(clock=...)``: time moves only when a test says so."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
