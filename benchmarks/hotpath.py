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

from altwebsocket.server import AltWebSocketServer
from altwebsocket.transports.http.wsgi import WSGIApp

__all__ = ["main"]


class EchoPosts:
    """A server on a fresh data folder, a session with one echo connection, and its POSTs."""

    def __init__(self) -> None:
        self.server = AltWebSocketServer(data=tempfile.mkdtemp(prefix="altws-profile-"),
                                         max_rate=0)
        self.app = WSGIApp(self.server)
        self.session = self.call("/_session/new", {})
        self.seq = 0
        self.call("/_session/send", {**self.credentials(), "ops": [
            {"op": "open", "ref": "e", "app": "echo"}]})

    def credentials(self) -> dict[str, Any]:
        return {"session": self.session["session"], "secret": self.session["secret"]}

    def call(self, path: str, body: dict[str, Any]) -> Any:
        raw = json.dumps(body).encode()
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "wsgi.input": io.BytesIO(raw),
                   "CONTENT_LENGTH": str(len(raw)), "CONTENT_TYPE": "text/plain",
                   "HTTP_HOST": "127.0.0.1:8000", "SERVER_NAME": "127.0.0.1",
                   "SERVER_PORT": "8000", "wsgi.url_scheme": "http",
                   "REMOTE_ADDR": "127.0.0.1", "HTTP_ORIGIN": "http://127.0.0.1:8000"}
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hotpath",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=3000, help="POSTs per measurement")
    parser.add_argument("--cold", type=int, default=0, metavar="BYTES",
                        help="also measure with BYTES of other memory read before each POST "
                             "(8000000: more than the caches of this machine's CPUs)")
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
