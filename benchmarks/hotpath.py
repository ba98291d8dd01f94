"""``python -m benchmarks.hotpath``: where the time of one emulated echo POST goes, in-process.

No HTTP server and no browser: a fresh SQLite data folder, the WSGI endpoints called
directly with a version-2 ``S/send`` of one 4-byte message to the echo app, as the browser's
hub sends it. It prints

- the median time of one POST when one thread sends them all, and when 50 threads take
  turns (as a WSGI server's threads do: waitress hands each request to the thread that
  waited longest), side by side;
- with ``--cold BYTES``, the same with that much other memory read before each POST (not
  timed): the cold caches a POST finds when a browser on the same CPUs ran between two
  echoes (what ``altws bench --local`` measures in the server, docs/performance.md);
- with ``--stages``, how the time of one POST divides among its stages (reading the body,
  the transaction's statements, the handler, the write to the stream…), warm and cold in
  turns, with the session's stream held in the process as ``altws serve`` holds it (each
  stage timed by a timer wrapped around its function: they add a little);
- with ``--cprofile``, the functions of the POST path by cumulative time (``cProfile``).

What it found, and what changed because of it, is in ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import io
import json
import queue
import sys
import tempfile
import threading
import time
from typing import Any

from altwebsocket.protocol import session as v2
from altwebsocket.server import AltWebSocketServer
from altwebsocket.storage.api import Transaction
from altwebsocket.storage.engine import Database
from altwebsocket.transports.http.session import SessionEndpoints
from altwebsocket.transports.http.stream import EventStream
from altwebsocket.transports.http.wsgi import WSGIApp

__all__ = ["main"]


def _environ(method: str, path: str, body: bytes, **more: str) -> dict[str, Any]:
    """The WSGI environ of a browser's request to the site on 127.0.0.1:8000."""
    return {"REQUEST_METHOD": method, "PATH_INFO": path, "wsgi.input": io.BytesIO(body),
            "HTTP_HOST": "127.0.0.1:8000", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000",
            "wsgi.url_scheme": "http", "REMOTE_ADDR": "127.0.0.1",
            "HTTP_ORIGIN": "http://127.0.0.1:8000", **more}


class EchoPosts:
    """A server on a fresh data folder, a session with one echo connection, and its POSTs."""

    def __init__(self, stream: bool = False) -> None:
        self.server = AltWebSocketServer(data=tempfile.mkdtemp(prefix="altws-profile-"),
                                         max_rate=0)
        self.app = WSGIApp(self.server, direct_writes=stream)
        self.session = self.call("/_session/new", {})
        self.seq = 0
        self.call("/_session/send", {**self.credentials(), "ops": [
            {"op": "open", "ref": "e", "app": "echo"}]})
        self.received = 0  # bytes the held stream wrote (``stream``)
        if stream:
            self._hold_stream()

    def _hold_stream(self) -> None:
        """Hold the session's stream here, as ``altws serve`` does while a browser reads
        it: each POST then writes its echo (and the copy of its answer) to it."""
        environ = _environ("GET", "/_session/", b"",
                           HTTP_X_ALTWS_SESSION=self.session["session"],
                           HTTP_X_ALTWS_SECRET=self.session["secret"])

        def count(chunk: bytes) -> None:
            self.received += len(chunk)

        body = self.app(environ, lambda line, headers, exc=None: count)
        threading.Thread(target=lambda: [count(chunk) for chunk in body], daemon=True).start()
        deadline = time.monotonic() + 10
        while not self.received:  # its first bytes (retry:, a comment): it is writing
            if time.monotonic() > deadline:
                raise RuntimeError("the session's stream wrote nothing")
            time.sleep(0.01)

    def credentials(self) -> dict[str, Any]:
        return {"session": self.session["session"], "secret": self.session["secret"]}

    def call(self, path: str, body: dict[str, Any]) -> Any:
        raw = json.dumps(body).encode()
        environ = _environ("POST", path, raw, CONTENT_LENGTH=str(len(raw)),
                           CONTENT_TYPE="text/plain")
        status: list[str] = []
        answer = b"".join(self.app(environ, lambda line, headers, exc=None: status.append(line)))
        if not status or not status[0].startswith("200"):
            raise RuntimeError(f"{path}: {status} {answer!r}")
        return json.loads(answer)

    def post(self) -> None:
        """One echo: ``S/send`` with the next seq (the result must be an ack)."""
        self.seq += 1
        answer = self.call("/_session/send", {**self.credentials(), "rid": self.seq, "ops": [
            {"op": "send", "ref": "e", "messages": [{"seq": self.seq, "data": "abcd"}]}]})
        if answer["results"][0].get("ack") != self.seq:
            raise RuntimeError(f"not acknowledged: {answer}")
        if self.seq % 500 == 0:  # as a reading stream would (no 1008 for a deaf client)
            record = self.server.storage.connection(self.session["session"])
            if record is not None:
                self.server.storage.discard_events(record.id, record.last_event)


def median_us(posts: EchoPosts, threads: int, count: int, cold: int = 0) -> float:
    """The median µs of one POST when ``threads`` threads take turns, one POST at a time;
    ``cold``: bytes of other memory the thread reads before each POST (not timed)."""
    inboxes: list[queue.Queue[bool]] = [queue.Queue() for _ in range(threads)]
    done: queue.Queue[float] = queue.Queue()
    other = bytearray(cold)

    def work(inbox: queue.Queue[bool]) -> None:
        while inbox.get():
            if cold:
                other.count(1)  # reads every byte: the caches now hold this, not the POST's
            started = time.perf_counter()
            posts.post()
            done.put(time.perf_counter() - started)

    workers = [threading.Thread(target=work, args=(inbox,), daemon=True) for inbox in inboxes]
    for worker in workers:
        worker.start()
    times = []
    for n in range(count):
        inboxes[n % threads].put(True)
        times.append(done.get(timeout=30))
    for inbox in inboxes:
        inbox.put(False)
    times.sort()
    return times[len(times) // 2] * 1e6


# The stages of one S/send (see --stages): label, and the function timed for it. The handler
# runs the echo's send: the INSERT of its event and the UPDATE of the session's queue.
STAGES: tuple[tuple[str, Any, str], ...] = (
    ("read the body, parse its JSON", WSGIApp, "_body"),
    ("check the operations", v2, "parse_session_request"),
    ("check the session and find its stream", SessionEndpoints, "_stream_of"),
    ("BEGIN IMMEDIATE", Database, "begin_write"),
    ("SELECT the connection and its queue", Transaction, "connection"),
    ("on_message: INSERT the echo, UPDATE the queue", AltWebSocketServer, "_call"),
    ("UPDATE the connection's seq", Transaction, "set_last_seq"),
    ("COMMIT", Database, "commit"),
    ("hand the event to the stream", AltWebSocketServer, "_committed"),
    ("copy of the answer, one write to the stream", EventStream, "say"),
    ("the answer's JSON and headers", WSGIApp, "_json"),
)
TOTAL = "the whole WSGI call"


class StageTimers:
    """While entered, every function of :data:`STAGES` (and the WSGI call) adds the time it
    takes to :attr:`spent`, by label; on exit the functions are put back."""

    def __init__(self) -> None:
        self.spent: dict[str, int] = {}
        self._saved: list[tuple[Any, str, Any]] = []

    def _timed(self, label: str, function: Any) -> Any:
        spent, clock = self.spent, time.perf_counter_ns

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = clock()
            try:
                return function(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0) + clock() - started

        return timed

    def __enter__(self) -> StageTimers:
        for label, owner, name in (*STAGES, (TOTAL, WSGIApp, "__call__")):
            raw = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
            self._saved.append((owner, name, raw))
            if isinstance(raw, staticmethod):
                setattr(owner, name, staticmethod(self._timed(label, raw.__func__)))
            else:
                setattr(owner, name, self._timed(label, raw))
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, raw in reversed(self._saved):
            setattr(owner, name, raw)
        self._saved.clear()


def stage_medians(posts: EchoPosts, count: int, cold: int) -> tuple[dict[str, float],
                                                                     dict[str, float]]:
    """Median µs per stage of ``count`` warm POSTs and ``count`` cold ones (``cold`` bytes
    read before each), taking turns."""
    other = bytearray(cold)
    samples: tuple[dict[str, list[int]], dict[str, list[int]]] = ({}, {})
    with StageTimers() as timers:
        for n in range(2 * count):
            is_cold = n % 2 == 1
            if is_cold:
                other.count(1)
            timers.spent.clear()
            posts.post()
            for label, spent in timers.spent.items():
                samples[is_cold].setdefault(label, []).append(spent)
    return tuple(  # type: ignore[return-value]
        {label: sorted(values)[len(values) // 2] / 1000 for label, values in one.items()}
        for one in samples)


def format_stages(warm: dict[str, float], cold: dict[str, float], cold_bytes: int) -> str:
    """The table of :func:`stage_medians`: a row per stage, the rest, the whole call."""
    lines = [f"  {'stage of one S/send (median µs)':50} {'warm':>7} {'cold':>7}"]
    for label, _, _ in STAGES:
        lines.append(f"  {label:50} {warm.get(label, 0):7.1f} {cold.get(label, 0):7.1f}")
    rest = [one[TOTAL] - sum(one.get(label, 0) for label, _, _ in STAGES)
            for one in (warm, cold)]
    lines.append(f"  {'the rest (routing, glue between the stages)':50} {rest[0]:7.1f} "
                 f"{rest[1]:7.1f}")
    lines.append(f"  {TOTAL:50} {warm[TOTAL]:7.1f} {cold[TOTAL]:7.1f}")
    lines.append(f"  (cold: {cold_bytes:,} bytes of other memory read before each POST; "
                 "a stage's median and the whole call's are of separate samples)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hotpath",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=3000, help="POSTs per measurement")
    parser.add_argument("--cold", type=int, default=0, metavar="BYTES",
                        help="also measure with BYTES of other memory read before each POST "
                             "(8000000: more than the caches of this machine's CPUs)")
    parser.add_argument("--stages", action="store_true",
                        help="also time each stage of the POST, warm and cold (--cold, "
                             "8000000 if not given), with the session's stream held here")
    parser.add_argument("--cprofile", action="store_true",
                        help="also profile the POST path with cProfile")
    args = parser.parse_args(argv)
    if args.posts < 1:
        parser.error("--posts must be at least 1")
    if args.cold < 0:
        parser.error("--cold must be at least 0")
    posts = EchoPosts()
    for _ in range(300):  # warm up
        posts.post()
    for threads in (1, 50, 1, 50):
        print(f"{threads:>3} thread(s) taking turns: {median_us(posts, threads, args.posts):6.1f}"
              " µs per S/send (median)", flush=True)
    for _ in range(2 if args.cold else 0):  # in turns: a moment of load falls on both
        warm = median_us(posts, 1, args.posts)
        cold = median_us(posts, 1, args.posts, args.cold)
        print(f"  1 thread, warm caches: {warm:6.1f} µs; with {args.cold:,} bytes read before "
              f"each POST: {cold:6.1f} µs per S/send (median)", flush=True)
    if args.stages:
        held = EchoPosts(stream=True)
        for _ in range(300):
            held.post()
        cold_bytes = args.cold or 8_000_000
        before = held.received
        warm, cold = stage_medians(held, args.posts, cold_bytes)
        if held.received - before < 2 * args.posts * len(b"data: "):
            raise RuntimeError("the held stream did not get an echo for each POST")
        print(format_stages(warm, cold, cold_bytes), flush=True)
    if args.cprofile:
        import cProfile
        import pstats

        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.posts):
            posts.post()
        profile.disable()
        pstats.Stats(profile, stream=sys.stdout).sort_stats("cumulative").print_stats(30)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
