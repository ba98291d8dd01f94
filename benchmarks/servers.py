"""The servers the lab (``python -m benchmarks``) starts, each in its own process, the
process runner, and how it reads their memory.

- :func:`main` (``python -m benchmarks.servers``) is the bare ``websockets`` echo
  server (:func:`websockets_echo`): the floor for native WebSocket in Python (no storage, no
  handler); ``python -m benchmarks.servers http-echo`` answers every POST with its body
  (:func:`http_echo`): one bare POST per echo, the floor of any SSE + POST design; its
  ``GET /sse`` and ``POST /sse`` are a raw SSE + POST echo (each POST's body goes out as one
  event on every open ``/sse`` stream): the design of the emulation with nothing else;
- ``python -m benchmarks.servers altws-serve ARGS`` is ``altws serve ARGS`` with the lab's
  routes (:func:`altws_serve`): ``POST /_lab/fetch``, a trivial handler answering the body,
  one bare POST to the very server (same process, waitress, threads) the emulation runs on;
  and ``GET /_lab/times``, the server's own time per request of the emulation's sends and of
  that trivial route (:class:`RouteTimes`);
- :class:`ServerProcess` starts a command and waits for the URL on its first lines
  (``altws serve``, ``altws daemon``, the bare echo server);
- :func:`rss_kb` / :func:`peak_rss_kb` read ``/proc/PID/status`` (Linux).

The test suite uses :class:`ServerProcess` and :func:`websockets_echo` too (``tests/support.py``):
one process runner and one bare echo server for the repository. This module therefore needs
nothing but the standard library (and ``websockets`` inside :func:`websockets_echo`), and
nothing of the lab or of the tests.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable
from typing import Any, Callable

__all__ = ["ServerProcess", "URL_PATTERN", "free_port", "rss_kb", "peak_rss_kb",
           "processes_running", "websockets_echo", "http_echo", "altws_serve", "lab_site",
           "timed_route", "RouteTimes", "LAB_FETCH", "LAB_PAGE", "LAB_TIMES", "main"]

URL_PATTERN = r"(https?|wss?)://[\d.]+:\d+/?"
"""The first line matching this tells where a started server listens."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (for servers that must know each other's port)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _status_field(pid: int, name: str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def rss_kb(pid: int) -> int:
    """Resident memory of process ``pid`` in KiB (0 if unknown)."""
    return _status_field(pid, "VmRSS")


def peak_rss_kb(pid: int) -> int:
    """Peak resident memory (``VmHWM``) of process ``pid`` in KiB (0 if unknown)."""
    return _status_field(pid, "VmHWM")


def processes_running(fragment: str) -> list[int]:
    """PIDs whose command line contains ``fragment`` (read from ``/proc``)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as cmdline:
                if fragment.encode() in cmdline.read():
                    found.append(int(name))
        except OSError:
            continue
    return found


class ServerProcess:
    """A server command in its own process group; ``url`` is the first URL it prints.

    ``output`` holds what it printed (stdout and stderr), every line, or the last ``keep``
    lines when given (a long benchmark run bounds it).

    Raises:
        RuntimeError: no URL within ``timeout`` seconds (the output is in the message).
    """

    def __init__(self, args: list[str], pattern: str = URL_PATTERN, timeout: float = 30.0,
                 env: dict[str, str] | None = None, cwd: str | None = None,
                 keep: int | None = None) -> None:
        self.args = args
        self.output: list[str] = []
        self._keep = keep
        self._lines: queue.Queue[str] = queue.Queue()
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, text=True,
                                     env={**os.environ, **(env or {})}, cwd=cwd,
                                     start_new_session=True)
        threading.Thread(target=self._pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise RuntimeError(f"{' '.join(args[-6:])} did not start:\n"
                                   + "".join(self.output)) from None
            match = re.search(pattern, line)
            if match:
                self.url = match.group(0).rstrip("/")
                return

    @property
    def pid(self) -> int:
        """The server's process id."""
        return int(self.proc.pid)

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            if self._keep is not None:
                del self.output[:-self._keep]
            self._lines.put(line)

    def exited(self) -> str | None:
        """``None`` while running; else how it ended, with its last output lines."""
        code = self.proc.poll()
        if code is None:
            return None
        how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        return f"{how}; last output: {''.join(self.output[-8:]).strip()}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """``sig`` (SIGTERM) to its process group, SIGKILL after ``timeout`` seconds."""
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=timeout)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=timeout)


async def websockets_echo(host: str, port: int, ready: Callable[[int], Any],
                          stop: Awaitable[Any]) -> None:
    """The bare ``websockets`` echo server: every message back to its sender, nothing else.
    ``ready(port)`` once listening; it closes when ``stop`` is done. Compression off, as the
    Python client asks: the same frames as with the daemon."""
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed

    async def echo(ws: ServerConnection) -> None:
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass

    async with serve(echo, host, port, max_size=2 ** 22, compression=None) as server:
        ready(server.sockets[0].getsockname()[1])
        await stop


ISOLATED = (b"Cross-Origin-Opener-Policy: same-origin\r\n"
            b"Cross-Origin-Embedder-Policy: require-corp\r\n")
"""The headers that make a page cross-origin isolated: there ``performance.now()`` has a
resolution of 5 µs instead of 100 µs (the pages the browser measures from carry them)."""


def http_echo(host: str = "127.0.0.1", port: int = 0) -> int:
    """An asyncio HTTP/1.1 server answering each POST with its body and each GET with a tiny
    page (keep-alive, CORS ``*``, one write per answer); ``GET /sse`` is an event stream and
    ``POST /sse`` sends its body as one event to every open stream, answering 204 (a raw
    SSE + POST echo). It prints ``bare HTTP echo on http://HOST:PORT/``."""
    import asyncio

    cors = b"Access-Control-Allow-Origin: *\r\nAccess-Control-Allow-Headers: Content-Type\r\n"
    streams: set[asyncio.StreamWriter] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                body = await reader.readexactly(length) if length else b""
                if head.startswith(b"GET /sse "):
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                 b"Cache-Control: no-store\r\n" + cors + b"\r\n: hi\n\n")
                    streams.add(writer)
                    try:
                        await reader.read()  # until the client goes away
                    finally:
                        streams.discard(writer)
                    return
                if head.startswith(b"POST /sse "):
                    event = b"data: " + body.replace(b"\n", b"") + b"\n\n"
                    for stream in list(streams):
                        stream.write(event)
                    writer.write(b"HTTP/1.1 204 No Content\r\n" + cors + b"\r\n")
                    await writer.drain()
                    continue
                kind, extra = b"application/octet-stream", b""
                if head.startswith(b"GET "):  # a page of this origin, for same-origin fetches
                    body, kind = b"<!doctype html><title>bare HTTP echo</title>", b"text/html"
                    extra = ISOLATED  # performance.now() to 5 µs in this page
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: " + kind + b"\r\n" + extra
                             + cors + b"Content-Length: " + str(len(body)).encode()
                             + b"\r\n\r\n" + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError,
                ValueError):
            pass
        finally:
            writer.close()

    async def run() -> None:
        stop = asyncio.get_running_loop().create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
        server = await asyncio.start_server(handle, host, port)
        bound = server.sockets[0].getsockname()[1]
        print(f"bare HTTP echo on http://{host}:{bound}/", flush=True)
        async with server:
            await stop

    asyncio.run(run())
    return 0


LAB_FETCH = "/_lab/fetch"
"""The trivial route :func:`altws_serve` adds to ``altws serve``."""
LAB_PAGE = "/_lab/page"
"""A blank HTML page of the same origin (the browser's page for the measurements)."""


LAB_TIMES = "/_lab/times"
"""``GET``: the server's own time of the timed routes so far (:class:`RouteTimes`), as JSON;
``?reset=1`` starts them again."""


def timed_route(method: str, path: str) -> str | None:
    """The name under which :func:`lab_site` times a request, or ``None`` (not timed): the
    emulation's sends and the trivial route they are measured against."""
    if method != "POST":
        return None
    if path == LAB_FETCH:
        return "trivial route"
    if path == "/_session/send":
        return "S/send"
    if path.endswith("/send"):
        return "B/send"
    return None


class RouteTimes:
    """The server's own time of each timed request: the WSGI call, from the dispatch to the
    answer's return (an ``S/send`` writes its echo to the stream before it returns), on the
    wall clock and in the CPU time of the thread that ran it — the last :attr:`keep` of each
    route."""

    keep = 20000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._samples: dict[str, tuple[list[float], list[float]]] = {}

    def record(self, name: str, wall: float, cpu: float) -> None:
        with self._lock:
            walls, cpus = self._samples.setdefault(name, ([], []))
            if len(walls) >= self.keep:
                del walls[:self.keep // 2], cpus[:self.keep // 2]
            walls.append(wall)
            cpus.append(cpu)

    def summary(self, reset: bool = False) -> dict[str, Any]:
        """Per route: ``count``, and ``wall_us`` / ``cpu_us`` with ``median`` and ``p90``."""
        from altwebsocket.bench.procedure import percentile

        with self._lock:  # (copies: record() goes on meanwhile)
            samples = {name: (list(walls), list(cpus))
                       for name, (walls, cpus) in self._samples.items()}
            if reset:
                self._samples = {}
        return {name: {"count": len(walls),
                       **{f"{what}_us": {"median": round(percentile(values, 50) * 1e6, 1),
                                         "p90": round(percentile(values, 90) * 1e6, 1)}
                          for what, values in (("wall", walls), ("cpu", cpus))}}
                for name, (walls, cpus) in samples.items() if walls}


def lab_site(inner: Callable[..., Any], times: RouteTimes) -> Callable[..., Any]:
    """``inner`` (the site's WSGI app) with the lab's routes: :data:`LAB_PAGE`,
    :data:`LAB_FETCH` and :data:`LAB_TIMES`; the requests :func:`timed_route` names are timed
    into ``times``."""
    import json
    from urllib.parse import parse_qs

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO") or ""
        method = environ.get("REQUEST_METHOD") or ""
        if path == LAB_PAGE:
            page = b"<!doctype html><meta charset=utf-8><title>altws lab</title>"
            start_response("200 OK", [
                ("Content-Type", "text/html; charset=utf-8"),
                ("Content-Length", str(len(page))),
                *(tuple(line.decode().split(": ", 1))  # (see ISOLATED)
                  for line in ISOLATED.splitlines())])
            return [page]
        if path == LAB_TIMES:
            reset = parse_qs(environ.get("QUERY_STRING") or "").get("reset") == ["1"]
            body = json.dumps(times.summary(reset=reset)).encode()
            start_response("200 OK", [("Content-Type", "application/json"),
                                      ("Content-Length", str(len(body))),
                                      ("Cache-Control", "no-store")])
            return [body]
        name = timed_route(method, path)
        if name is None:
            return inner(environ, start_response)
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            if path != LAB_FETCH:
                return inner(environ, start_response)
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                      ("Content-Length", str(len(body)))])
            return [body]
        finally:
            times.record(name, time.perf_counter() - wall, time.thread_time() - cpu)

    return wsgi


def altws_serve(args: list[str]) -> int:
    """``altws serve ARGS`` with the lab's routes (:func:`lab_site`): ``POST /_lab/fetch``
    answering its body, the reference the emulation is measured against — a POST to the
    same process, through the same waitress threads and the same site dispatch, that does
    nothing else; ``GET /_lab/page``, a blank page of the origin; ``GET /_lab/times``, the
    server's own time per request of the emulation's sends and of that trivial route."""
    from altwebsocket import cli, site

    make_site = site.create_site
    times = RouteTimes()

    def with_lab(endpoints: Any, static: str = "") -> Any:
        app: Any = make_site(endpoints, static)  # the Flask app
        app.wsgi_app = lab_site(app.wsgi_app, times)
        return app

    site.create_site = with_lab  # read by ``altws serve`` when it starts
    return cli.main(["serve", *args])


def main(argv: list[str] | None = None) -> int:
    """The bare ``websockets`` echo server on 127.0.0.1 (``--port 0``: a free port) until
    SIGTERM; ``http-echo``: the bare HTTP echo; ``altws-serve ARGS``: :func:`altws_serve`."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["http-echo"]:
        return http_echo()
    if argv[:1] == ["altws-serve"]:
        return altws_serve(argv[1:])
    import argparse
    import asyncio

    parser = argparse.ArgumentParser(description="a bare websockets echo server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    async def run() -> None:
        stop = asyncio.get_running_loop().create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
        await websockets_echo(args.host, args.port, lambda port: print(
            f"bare websockets echo on ws://{args.host}:{port}/", flush=True), stop)

    asyncio.run(run())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
