"""The one support module of the tests: servers on 127.0.0.1 (port 0), and the requests the
tests make to them.

- **In this process, in threads** (where nothing needs a process of its own): :class:`Site`
  serves the apps as ``altws serve`` does (waitress; the daemon beside it when asked),
  :class:`Daemon` the native daemon alone, :class:`WSGIThread` any WSGI app, and
  :class:`NativeEcho` the bare ``websockets`` echo server (the native reference).
- **Real processes** (where the process is the point: the command itself, Apache CGI, a
  ``kill -9``, a crash the server must survive): :func:`start_altws` (``altws serve`` or
  ``altws daemon``), :func:`start_deployment` (``altws serve`` or ``altws cgi-server``),
  each a :class:`Process`.
- **Requests**: the HTTP endpoints over httpx (:func:`new_connection`, :func:`send`,
  :func:`open_stream`, :class:`Stream`, :func:`sse_stream` / :func:`sse_chunks` for any SSE
  reader), and in-process over WebTest (:func:`make_server`, :func:`web_app`, :func:`new`,
  :func:`post`, :func:`stored_events`, :func:`state_of`); :func:`send_body` builds a
  ``/send`` body for either.

The process runner and the bare echo server are the benchmark lab's
(``benchmarks/servers.py``, which needs nothing but the standard library and ``websockets``):
one of each in the repository. The imports go one way, tests → benchmarks → altwebsocket:
the lab imports nothing of the tests, and the package never the tests (it runs the lab only
for ``altws bench --local`` from a checkout, found at run time).

One timeout unit for all tests: ``TIMEOUT`` seconds (longer under CI).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import (
    Any,
    Callable,
    Protocol,
    TypeVar,
    Union,
)

import httpx
import webtest

from altwebsocket import AltWebSocketServer, WSGIApp
from altwebsocket.config import Settings
from altwebsocket.protocol import messages as wire
from altwebsocket.protocol.sse import ServerSentEvent, SSEDecoder
from benchmarks.servers import ServerProcess, free_port, websockets_echo

__all__ = [
    "TIMEOUT", "ROOT", "ALTWS", "Process", "free_port", "write_config", "start_altws",
    "Deployment", "start_deployment", "cgi_processes", "serving", "WSGIThread", "Daemon",
    "Site", "NativeEcho", "HTTP", "new_connection", "stream_url", "send_body", "send", "sse_stream",
    "sse_chunks", "Stream", "open_stream", "resume_after_a_cut", "make_server", "web_app",
    "new", "post", "stored_events", "state_of", "FakeClock",
]

TIMEOUT = 10.0 if os.environ.get("CI") else 5.0
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALTWS = [sys.executable, "-m", "altwebsocket"]

Process = ServerProcess
"""A server command in its own process group (``url``, ``output``, ``proc``, ``stop(sig)``)."""


# --- real processes -----------------------------------------------------------------------


def write_config(folder: str, name: str = "altws", **settings: Any) -> str:
    """An ``[altws]`` settings file with ``settings`` in ``folder``; its path (a new file
    each time, so that processes on one data folder keep their own)."""
    handle, path = tempfile.mkstemp(prefix=f"{name}-", suffix=".ini", dir=folder)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write("[altws]\n" + "".join(f"{key} = {value}\n" for key, value in settings.items()))
    return path


def start_altws(command: str, data: str, *extra: str, port: int = 0,
                **settings: Any) -> Process:
    """``altws serve`` or ``altws daemon`` as a real process on 127.0.0.1 (``port`` 0: a free
    one) on the data folder ``data``, with ``settings`` in its configuration file, started
    from the repository (so that ``--app tests.…`` imports)."""
    os.makedirs(data, exist_ok=True)
    args = ALTWS + [command, "--port", str(port), "--data", data]
    if settings:
        args += ["--config", write_config(data, **settings)]
    return Process(args + list(extra), timeout=3 * TIMEOUT, cwd=ROOT)


class Deployment:
    """A running HTTP deployment of the apps: ``base(app)`` is the app's base URL ``B``."""

    def __init__(self, kind: str, proc: Process, data: str, owns_data: bool = False) -> None:
        self.kind = kind
        self.proc = proc
        self.data = data
        self.url = proc.url
        self._owns_data = owns_data  # a folder made for it, removed when it stops
        found = re.search(r"run folder: (\S+)", "".join(proc.output))
        self.run_dir = found.group(1) if found else ""

    def base(self, app: str) -> str:
        if self.kind == "cgi":
            return f"{self.url}/cgi-bin/altws.cgi/{app}"
        return f"{self.url}/{app}"

    def cgi_processes(self, method: str, conn_id: str = "") -> list[int]:
        """The CGI processes this deployment's Apache runs for ``method`` requests (of
        ``conn_id``'s stream when given); not those of another Apache on the machine."""
        assert self.kind == "cgi" and self.run_dir
        return cgi_processes(method, conn_id, under=self.run_dir)

    def stop(self) -> None:
        self.proc.stop()
        if self._owns_data:
            shutil.rmtree(self.data, ignore_errors=True)


def start_deployment(kind: str, data: str, pool: int | None = None, **settings: Any
                     ) -> Deployment:
    """Start ``altws serve`` (kind "wsgi"), ``altws cgi-server`` (kind "cgi") or ``altws
    cgi-server --passenger`` (kind "passenger", with ``pool`` Passenger processes) on a free
    port, with ``settings`` written to its configuration. Under Passenger the apps are
    mounted at the site's root, as under ``altws serve``: ``base(app)`` is ``URL/app``."""
    if kind == "wsgi":
        return Deployment(kind, start_altws("serve", data, **settings), data)
    # Apache runs the CGI (and Passenger the app) as www-data, which cannot enter pytest's
    # 0700 temp folders.
    os.makedirs("/var/tmp/altws", mode=0o755, exist_ok=True)
    data = tempfile.mkdtemp(prefix="test-data-", dir="/var/tmp/altws")
    os.chmod(data, 0o755)
    args = ALTWS + ["cgi-server", "--port", "0", "--data", data]
    if kind == "passenger":
        args += ["--passenger"] + (["--pool", str(pool)] if pool else [])
    for name, value in settings.items():
        args += ["--set", f"{name}={value}"]
    proc = Process(args, pattern=r"http://127\.0\.0\.1:\d+/", timeout=3 * TIMEOUT)
    deadline = time.monotonic() + TIMEOUT  # the next lines name its run folder
    while "run folder:" not in "".join(proc.output) and time.monotonic() < deadline:
        time.sleep(0.05)
    return Deployment(kind, proc, data, owns_data=True)


def cgi_processes(method: str, conn_id: str = "", under: str = "") -> list[int]:
    """The CGI processes Apache runs for ``method`` requests (of ``conn_id``'s stream when
    given; of scripts below the folder ``under`` when given), found by their environment."""
    found = []
    script = f"SCRIPT_FILENAME={under}".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                environ = handle.read()
        except OSError:
            continue
        if (f"REQUEST_METHOD={method}".encode() in environ
                and script in environ
                and (not conn_id or f"id={conn_id}".encode() in environ)):
            found.append(int(pid))
    return found


# --- in this process, in threads ------------------------------------------------------------


Running = TypeVar("Running", bound="Stoppable")


class Stoppable(Protocol):
    def stop(self) -> None:
        """Stop serving."""


def serving(running: Running) -> Iterator[Running]:
    """For a fixture: ``yield from serving(Site(...))`` gives the started server to the test
    and stops it afterwards, whatever the test did."""
    try:
        yield running
    finally:
        running.stop()


class WSGIThread:
    """``app`` served by waitress in a thread of this process, on 127.0.0.1, a free port."""

    def __init__(self, app: Callable[..., Iterable[bytes]], threads: int = 16,
                 as_altws_serve: bool = False) -> None:
        import waitress

        if as_altws_serve:  # its channel, which detaches streams (they need no threads)
            from altwebsocket.transports.http.waitress_channel import create_server

            self.httpd = create_server(app, "127.0.0.1", 0, connections=1000,
                                       threads=threads, ident="altws-test")
        else:
            # select() cannot watch a descriptor above 1023; a test process may hold that many
            self.httpd = waitress.create_server(app, host="127.0.0.1", port=0, threads=threads,
                                                asyncore_use_poll=True, ident="altws-test")
        self.url = f"http://127.0.0.1:{self.httpd.effective_port}"  # type: ignore[union-attr]
        self._thread = threading.Thread(target=self.httpd.run, name="waitress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Close the listening socket and every connection, then the worker threads (once:
        a second call finds the server closed)."""
        httpd = self.httpd
        if httpd.trigger._closed or not httpd._map:  # type: ignore[union-attr]
            return
        done = threading.Event()

        def close_all() -> None:  # on the server's own loop: the map empties, the loop ends
            self._close_connections()
            httpd.close()  # the listening socket and the trigger
            done.set()

        try:
            httpd.trigger.pull_trigger(close_all)  # type: ignore[union-attr]
            woken = done.wait(TIMEOUT)
        except OSError:
            woken = False
        if woken:
            self._thread.join(TIMEOUT)
        else:
            # The trigger's pipe is gone under it (CI saw EBADF here once, after a test that
            # passed; who closed that descriptor is not known), or its number is another
            # file's by now: its loop cannot be woken. Close what it serves from here.
            self._close_here()
        httpd.task_dispatcher.shutdown(timeout=TIMEOUT)  # type: ignore[union-attr]

    def _close_connections(self) -> None:
        httpd = self.httpd
        for channel in list(httpd._map.values()):  # type: ignore[union-attr]
            if channel not in (httpd, httpd.trigger):  # type: ignore[union-attr]
                channel.handle_close()

    def _close_here(self) -> None:
        httpd = self.httpd
        self._close_connections()
        httpd._map.clear()  # type: ignore[union-attr]  # (its loop ends at its next poll)
        httpd.socket.close()  # type: ignore[union-attr]  # (the port takes no more clients)
        # Not httpd.close(): it closes the trigger's descriptors, whose numbers may be
        # another file's by now. (Those of its read end are left open: a rare path.)
        self._thread.join(TIMEOUT)


class Daemon:
    """The native WebSocket daemon in a thread of this process, on 127.0.0.1, a free port;
    ``url`` is ``ws://127.0.0.1:PORT``."""

    def __init__(self, settings: Settings) -> None:
        from altwebsocket.transports.websocket.daemon import run_daemon

        self.url = ""
        self.error: BaseException | None = None
        ready = threading.Event()
        self._stop = threading.Event()

        def started(url: str) -> None:
            self.url = url.rstrip("/")
            ready.set()

        def target() -> None:
            try:
                run_daemon(settings, "127.0.0.1", 0, ready=started, stop=self._stop)
            except BaseException as exc:  # reported below
                self.error = exc
                ready.set()

        self._thread = threading.Thread(target=target, name="altws-daemon", daemon=True)
        self._thread.start()
        if not ready.wait(3 * TIMEOUT) or self.error is not None:
            raise RuntimeError(f"the daemon did not start: {self.error or 'timeout'}")

    @classmethod
    def on(cls, data: str, **settings: Any) -> Daemon:
        """A daemon on the data folder ``data`` with ``settings``."""
        os.makedirs(data, exist_ok=True)
        return cls(Settings(data=data, **settings).validate())

    def stop(self) -> None:
        """Close every native client with 1001 and stop."""
        self._stop.set()
        self._thread.join(TIMEOUT)


class Site:
    """The apps served as ``altws serve`` serves them — index, pages, endpoints, and the
    daemon beside it when ``daemon`` (advertised by ``/info``, the site's origin allowed) —
    but in threads of this process. ``websocket_url`` advertises another daemon instead.
    ``url`` is the site's root, ``ws`` the daemon's (or ``None``)."""

    def __init__(self, data: str, daemon: bool = False, websocket_url: str | None = None,
                 streams: int = 64, **settings: Any) -> None:
        from altwebsocket.site import create_site

        os.makedirs(data, exist_ok=True)
        self.data = data
        config = Settings(data=data, max_streams=streams, **settings).validate()
        app = _LateApp()
        self.http = WSGIThread(app, threads=16, as_altws_serve=True)
        self.url = self.http.url
        self.daemon: Daemon | None = None
        self.ws: str | None = None
        try:
            if daemon:
                own = tuple(self.url.replace("127.0.0.1", host)
                            for host in ("127.0.0.1", "localhost"))
                self.daemon = Daemon(config.replace(
                    allowed_origins=tuple(config.allowed_origins) + own))
                self.ws = websocket_url = self.daemon.url
            if websocket_url:
                config = config.replace(websocket_url=websocket_url.rstrip("/"))
            server = AltWebSocketServer(settings=config)
            server.storage.ensure_schema()
            self.endpoints = WSGIApp(server, direct_writes=True)  # (as altws serve)
            app.app = create_site(self.endpoints)
        except BaseException:
            self.http.stop()
            if self.daemon is not None:
                self.daemon.stop()
            raise

    def base(self, app: str) -> str:
        """The app's base URL ``B``."""
        return f"{self.url}/{app}"

    def stop(self) -> None:
        """End the streams (their clients resume elsewhere or fail), close the server, stop
        the daemon (1001)."""
        self.endpoints.shutdown()
        self.http.stop()
        if self.daemon is not None:
            self.daemon.stop()


class _LateApp:
    """A WSGI app whose target is set once the server's port (and so its origin) is known."""

    app: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        return self.app(environ, start_response)


class NativeEcho:
    """The bare ``websockets`` echo server (the lab's) in a thread on 127.0.0.1, a free port:
    the reference a native WebSocket talks to. ``url`` is ``ws://127.0.0.1:PORT/echo``."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.port = 0
        self._stop: asyncio.Event | None = None

        def started(port: int) -> None:
            self.port = port
            ready.set()

        async def main() -> None:
            self._stop = asyncio.Event()
            await websockets_echo("127.0.0.1", 0, started, self._stop.wait())

        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(main(),),
                                       name="native-echo", daemon=True)
        self.thread.start()
        if not ready.wait(TIMEOUT):
            raise RuntimeError("the echo server did not start")
        self.url = f"ws://127.0.0.1:{self.port}/echo"

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(TIMEOUT)


# --- requests over HTTP (httpx) ---------------------------------------------------------------


HTTP = httpx.Client(timeout=TIMEOUT)  # one client: httpx.post() costs ~80 ms to set up


def new_connection(base: str, **body: Any) -> tuple[str, str]:
    """``POST B/new``: the connection's id and token."""
    response = HTTP.post(base + "/new", json=body or None)
    response.raise_for_status()
    data = response.json()
    return data["id"], data["token"]


def stream_url(base: str, conn_id: str, token: str) -> str:
    return f"{base}/?id={conn_id}&token={token}"


Credentials = Union[Mapping[str, Any], tuple[str, str]]


def send_body(conn: Credentials, seq: int, data: Any = "x", binary: str | None = None
              ) -> dict[str, Any]:
    """A ``/send`` body of one message for ``conn`` (the answer of ``/new``, or an
    ``(id, token)`` pair): text ``data``, or ``binary`` (base64) when given."""
    conn_id, token = (conn["id"], conn["token"]) if isinstance(conn, Mapping) else conn
    body: dict[str, Any] = {"id": conn_id, "token": token, "seq": seq}
    if binary is not None:
        body["binary"] = binary
    else:
        body["data"] = data
    return body


def send(base: str, conn_id: str, token: str, seq: int, data: Any = None,
         binary: str | None = None) -> httpx.Response:
    """``POST B/send`` of one message."""
    return HTTP.post(base + "/send", json=send_body((conn_id, token), seq, data, binary))


@contextlib.contextmanager
def sse_stream(url: str, last_event_id: int | None = None,
               headers: dict[str, str] | None = None,
               timeout: float | None = None) -> Iterator[httpx.Response]:
    """``GET`` an event stream (with ``Last-Event-ID`` when given); :func:`sse_chunks`
    decodes the response as it arrives."""
    request_headers = dict(headers or {})
    if last_event_id is not None:
        request_headers["Last-Event-ID"] = str(last_event_id)
    with httpx.stream("GET", url, headers=request_headers, timeout=timeout) as response:
        yield response


def sse_chunks(response: httpx.Response, decoder: SSEDecoder | None = None
               ) -> Iterator[tuple[bytes, list[ServerSentEvent]]]:
    """Each chunk of an event stream as it arrives, with the events it completed (often
    none: a heartbeat, or part of an event)."""
    decoder = decoder if decoder is not None else SSEDecoder()
    for chunk in response.iter_raw():
        yield chunk, decoder.feed(chunk)


class Stream:
    """An SSE stream read in a thread by an independent client (httpx + SSEDecoder)."""

    def __init__(self, url: str, last_event_id: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.events: queue.Queue[ServerSentEvent] = queue.Queue()
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.raw = b""
        self.seen = 0  # for readers that count the events they took
        self.ended = threading.Event()
        self.opened = threading.Event()
        self.decoder = SSEDecoder()
        self._stop = False
        self._thread = threading.Thread(target=self._run,
                                        args=(url, last_event_id, headers), daemon=True)
        self._thread.start()
        if not self.opened.wait(TIMEOUT):
            raise RuntimeError("stream did not open")

    def _run(self, url: str, last_event_id: int | None,
             headers: dict[str, str] | None) -> None:
        try:
            with sse_stream(url, last_event_id, headers) as response:
                self.status = response.status_code
                self.headers = dict(response.headers)
                self.opened.set()
                for chunk, events in sse_chunks(response, self.decoder):
                    self.raw += chunk
                    for event in events:
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


def open_stream(base: str) -> tuple[str, str, Stream]:
    """A new connection of the app at ``base`` and its stream: ``(id, token, stream)``."""
    conn_id, token = new_connection(base)
    return conn_id, token, Stream(stream_url(base, conn_id, token))


def resume_after_a_cut(base: str, cut: Callable[[str, Stream], Any], during: int
                       ) -> tuple[str, str, Stream]:
    """The resume scenario on the echo app at ``base``: ``m1``–``m3`` are sent (each
    acknowledged) and read; ``cut(conn_id, stream)`` cuts the stream; ``during`` more are
    sent and acknowledged while it is cut; a new stream resumes with ``Last-Event-ID`` and
    gets exactly those, in order, with the ids that follow. Returns ``(id, token, the resumed
    stream)``."""
    conn_id, token, first = open_stream(base)
    for seq in range(1, 4):
        assert send(base, conn_id, token, seq, f"m{seq}").json()["ack"] == seq
    seen = first.take(3)
    cut(conn_id, first)
    last = 3 + during
    for seq in range(4, last + 1):
        assert send(base, conn_id, token, seq, f"m{seq}").json()["ack"] == seq
    first.close()
    resumed = Stream(stream_url(base, conn_id, token), last_event_id=int(seen[-1].id))
    rest = resumed.take(during)
    assert [wire.message_from_event(e) for e in seen + rest] == [
        f"m{i}" for i in range(1, last + 1)]
    assert [e.id for e in rest] == [str(i) for i in range(4, last + 1)]
    return conn_id, token, resumed


# --- requests in-process (WebTest) -------------------------------------------------------------


def make_server(data_dir: str, clock: Any = None, **settings: Any) -> AltWebSocketServer:
    """An in-process server with echo and chat on a fresh SQLite file in ``data_dir``
    (reading the time from ``clock`` if given, e.g. a :class:`FakeClock`)."""
    values: dict[str, Any] = dict(data=data_dir, stream_lifetime=5, heartbeat=1,
                                  poll_interval=0.2)
    values.update(settings)
    if clock is None:
        return AltWebSocketServer(settings=Settings(**values))
    return AltWebSocketServer(settings=Settings(**values), clock=clock)


def web_app(server: AltWebSocketServer, remote: str = "127.0.0.1") -> webtest.TestApp:
    """WebTest around the server's endpoints; requests come from ``remote``."""
    return webtest.TestApp(WSGIApp(server), extra_environ={"REMOTE_ADDR": remote})


def new(app: webtest.TestApp, name: str = "echo", status: Any = 200,
        body: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """``POST /<name>/new`` (with the JSON ``body`` when given); the JSON answer."""
    data = "" if body is None else json.dumps(body)
    return app.post(f"/{name}/new", data, status=status, **extra).json  # type: ignore


def post(app: webtest.TestApp, path: str, body: Any, status: Any = 200, **extra: Any) -> Any:
    """POST a JSON body (or bytes / text as they are); the response (``.json``,
    ``.headers``)."""
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return app.post(path, data, status=status, **extra)


def stored_events(server: AltWebSocketServer, conn_id: str, after: int = 0
                  ) -> list[tuple[int, Any]]:
    """What the stream would send after ``after``, decoded, without waiting for more."""
    stored = server.storage.events_after(conn_id, after, limit=100000)
    raw = b"".join(wire.event_for(*event[:3]).encode() for event in stored)
    return [(int(e.id), wire.message_from_event(e)) for e in SSEDecoder().feed(raw)]


def state_of(server: AltWebSocketServer, conn_id: str) -> tuple[Any, ...]:
    """The parts of a connection's row a refused request must not change."""
    record = server.storage.connection(conn_id)
    assert record is not None
    events = server.storage.events_after(conn_id, 0, limit=100000)
    return (record.state, record.last_seq, record.last_event, record.close_code, tuple(events))


class FakeClock:
    """A clock for ``AltWebSocketServer(clock=...)``: time moves only when a test says so."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
