"""Many clients from one process: chat fan-out and held connections, emulated and native.

The Python client (:mod:`altwebsocket.client`) spends two threads per emulated connection;
hundreds of them would measure the client's GIL, not the server. So the load generator here
speaks the wire protocol (``docs/protocol.md``) directly on one asyncio event loop: a small
HTTP/1.1 client (keep-alive, ``Content-Length`` or chunked bodies), one SSE stream per
connection decoded by :class:`~altwebsocket.protocol.sse.SSEDecoder`, and a pool of
keep-alive connections for the POSTs. Native clients use ``websockets``' asyncio client.

Every figure is a dict ready for JSON: latencies in ms, counts of lost messages and errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, Callable
from urllib.parse import quote, urlsplit

from altwebsocket.bench.procedure import summary
from altwebsocket.protocol.sse import SSEDecoder

__all__ = ["HttpConnection", "HttpPool", "SessionPeer", "fanout_emulated", "hold_emulated",
           "fanout_native", "crowd_emulated"]

Headers = dict[str, str]
HELD_P99_MS = 1000.0
"""A load is *held* when nothing is lost or refused and the echo p99 stays under this."""


class HttpConnection:
    """One keep-alive HTTP/1.1 connection (plain ``http://`` only)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _ensure(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self._reader, self._writer

    def close(self) -> None:
        """Drop the connection."""
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def stream_with_headers(self, path: str, headers: Headers | None = None
                                  ) -> tuple[int, Headers, AsyncIterator[bytes]]:
        """:meth:`stream`, with the answer's headers (names in lower case)."""
        reader, _ = await self._send_head("GET", path, b"", headers or {})
        status, answer_headers = await self._read_head(reader)
        return status, answer_headers, self._body(reader, answer_headers)

    async def _send_head(self, method: str, path: str, body: bytes, headers: Headers
                         ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await self._ensure()
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                 "User-Agent: altws-bench"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        return reader, writer

    @staticmethod
    async def _read_head(reader: asyncio.StreamReader) -> tuple[int, Headers]:
        status_line = await reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split()[1])
        headers: Headers = {}
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: Headers | None = None) -> tuple[int, Headers, bytes]:
        """Send one request and read the whole answer; reconnects once if the kept-alive
        connection was closed by the server."""
        for attempt in (1, 2):
            try:
                reader, _ = await self._send_head(method, path, body, headers or {})
                status, answer_headers = await self._read_head(reader)
                data = b"".join([chunk async for chunk in self._body(reader, answer_headers)])
                if answer_headers.get("connection", "").lower() == "close":
                    self.close()
                return status, answer_headers, data
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def stream(self, path: str, headers: Headers | None = None
                     ) -> tuple[int, AsyncIterator[bytes]]:
        """Open a streamed GET; return its status and an iterator over the body's pieces."""
        reader, _ = await self._send_head("GET", path, b"", headers or {})
        status, answer_headers = await self._read_head(reader)
        return status, self._body(reader, answer_headers)

    @staticmethod
    async def _body(reader: asyncio.StreamReader, headers: Headers) -> AsyncIterator[bytes]:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size_line = await reader.readline()
                if not size_line:
                    return
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    await reader.readline()
                    return
                data = await reader.readexactly(size)
                await reader.readexactly(2)
                yield data
        elif "content-length" in headers:
            length = int(headers["content-length"])
            if length:
                yield await reader.readexactly(length)
        else:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                yield data


class HttpPool:
    """Up to ``size`` keep-alive connections shared by many tasks."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self._free: asyncio.Queue[HttpConnection] = asyncio.Queue()
        self._all = [HttpConnection(host, port) for _ in range(size)]
        for conn in self._all:
            self._free.put_nowait(conn)

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST ``body`` as JSON; return the status and the JSON answer."""
        conn = await self._free.get()
        try:
            status, _, data = await conn.request(
                "POST", path, json.dumps(body).encode(), {"Content-Type": "application/json"})
        finally:
            self._free.put_nowait(conn)
        try:
            answer = json.loads(data or b"{}")
        except ValueError:
            answer = {}
        return status, answer if isinstance(answer, dict) else {}

    def close(self) -> None:
        """Close every connection."""
        for conn in self._all:
            conn.close()


class EmulatedPeer:
    """One emulated connection: its id, token, next seq and SSE stream task."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.id = ""
        self.token = ""
        self.seq = 0
        self.opened = asyncio.Event()
        self.ended = asyncio.Event()
        self.stream_status = 0
        self.task: asyncio.Task[None] | None = None

    async def open(self, pool: HttpPool, path: str) -> None:
        """``POST B/new``."""
        status, answer = await pool.post(path + "/new", {})
        if status != 200:
            raise ConnectionError(f"POST /new: HTTP {status} {answer}")
        self.id, self.token = str(answer["id"]), str(answer["token"])

    def start_stream(self, host: str, port: int, path: str,
                     on_text: Callable[[EmulatedPeer, str], None]) -> None:
        """Read ``GET B/?id&token`` in a task, calling ``on_text`` for each text message."""
        self.task = asyncio.ensure_future(self._stream(host, port, path, on_text))

    def _stream_request(self, path: str) -> tuple[str, Headers]:
        """The stream's path and headers."""
        return (f"{path}/?id={quote(self.id)}&token={quote(self.token)}",
                {"Accept": "text/event-stream"})

    def _text_of(self, data: str) -> str | None:
        """The text message an event's ``data`` carries, if it is one."""
        return json.loads(data) if data.startswith('"') else None

    def _close_request(self, path: str) -> tuple[str, dict[str, Any]]:
        """The close request's path and body."""
        return path + "/close", {"id": self.id, "token": self.token, "code": 1000}

    async def _stream(self, host: str, port: int, path: str,
                      on_text: Callable[[EmulatedPeer, str], None]) -> None:
        conn = HttpConnection(host, port)
        try:
            status, body = await conn.stream(*self._stream_request(path))
            self.stream_status = status
            self.opened.set()
            if status != 200:
                return
            decoder = SSEDecoder()
            async for chunk in body:
                for event in decoder.feed(chunk):
                    if event.event is None:
                        text = self._text_of(event.data)
                        if text is not None:
                            on_text(self, text)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            self.opened.set()
            self.ended.set()
            conn.close()

    async def send(self, pool: HttpPool, path: str, text: str) -> int:
        """``POST B/send`` one text message with the next seq; return the status."""
        self.seq += 1
        status, _ = await pool.post(path + "/send", {"id": self.id, "token": self.token,
                                                      "seq": self.seq, "data": text})
        return status

    async def close(self, pool: HttpPool, path: str) -> None:
        """``POST B/close`` (best effort), then stop reading."""
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, ValueError):
            await pool.post(*self._close_request(path))
        if self.task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self.ended.wait()), 2.0)
            self.task.cancel()


class SessionPeer(EmulatedPeer):
    """One browser on version 2 (``docs/protocol.md``): a session of its own with one
    connection (ref ``c``) of the app, as the browser client opens them — so N peers are N
    session streams, each event naming the connection."""

    REF = "c"

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.secret = ""

    @staticmethod
    def _session_base(path: str) -> tuple[str, str]:
        """``S`` (the app's base with its last segment replaced by ``_session``), the app."""
        head, _, app = path.rpartition("/")
        return head + "/_session", app

    async def _ops(self, pool: HttpPool, path: str, ops: list[dict[str, Any]]) -> int:
        session_base, _ = self._session_base(path)
        status, answer = await pool.post(session_base + "/send", {
            "session": self.id, "secret": self.secret, "ops": ops})
        if status == 200 and not all(result.get("ok") for result in answer["results"]):
            return int(answer["results"][0].get("status", 500))
        return status

    async def open(self, pool: HttpPool, path: str) -> None:
        """``POST S/new``, then the ``open`` op of the app's connection."""
        session_base, app = self._session_base(path)
        status, answer = await pool.post(session_base + "/new", {})
        if status != 200:
            raise ConnectionError(f"POST S/new: HTTP {status} {answer}")
        self.id, self.secret = str(answer["session"]), str(answer["secret"])
        status = await self._ops(pool, path, [{"op": "open", "ref": self.REF, "app": app}])
        if status != 200:
            raise ConnectionError(f"open op: {status}")

    def _stream_request(self, path: str) -> tuple[str, Headers]:
        return self._session_base(path)[0] + "/", {
            "Accept": "text/event-stream", "X-AltWS-Session": self.id,
            "X-AltWS-Secret": self.secret}

    def _text_of(self, data: str) -> str | None:
        text = json.loads(data).get("data") if data.startswith("{") else None
        return text if isinstance(text, str) else None

    def _close_request(self, path: str) -> tuple[str, dict[str, Any]]:
        return self._session_base(path)[0] + "/close", {"session": self.id,
                                                        "secret": self.secret}

    async def send(self, pool: HttpPool, path: str, text: str) -> int:
        """One text message in a ``send`` op, with the next seq; the op's status."""
        self.seq += 1
        return await self._ops(pool, path, [{"op": "send", "ref": self.REF, "messages": [
            {"seq": self.seq, "data": text}]}])


def _split(base: str) -> tuple[str, int, str]:
    parts = urlsplit(base)
    return parts.hostname or "127.0.0.1", parts.port or 80, parts.path.rstrip("/")


async def _open_peers(base: str, count: int, pool: HttpPool,
                      on_text: Callable[[EmulatedPeer, str], None], timeout: float,
                      first: int = 0, kind: type[EmulatedPeer] = EmulatedPeer
                      ) -> tuple[list[EmulatedPeer], int]:
    """``count`` connections (numbered from ``first``; ``kind``: of version 1, or each in
    a session of its own, :class:`SessionPeer`) with their streams open; return them and
    the failures."""
    host, port, path = _split(base)
    peers = [kind(first + index) for index in range(count)]
    results = await asyncio.gather(*(peer.open(pool, path) for peer in peers),
                                   return_exceptions=True)
    opened = [peer for peer, result in zip(peers, results) if not isinstance(result, Exception)]
    for peer in opened:
        peer.start_stream(host, port, path, on_text)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(peer.opened.wait() for peer in opened)),
                               timeout)
    good = [peer for peer in opened if peer.stream_status == 200]
    return good, count - len(good)


async def _close_peers(peers: Sequence[EmulatedPeer], pool: HttpPool, path: str) -> None:
    await asyncio.gather(*(peer.close(pool, path) for peer in peers),
                         return_exceptions=True)


async def fanout_emulated(base: str, clients: int, messages: int, timeout: float = 10.0,
                          after_open: Callable[[], dict[str, Any]] | None = None,
                          sessions: bool = False) -> dict[str, Any]:
    """Chat fan-out: ``clients`` emulated connections to a chat app at ``base`` (with
    ``sessions``, each in a session of its own, as browsers open them: wire version 2); one
    of them posts ``messages`` messages, one at a time; each is timed from the POST to its
    arrival on every stream. ``after_open`` is called once all streams are open (to read
    memory)."""
    host, port, path = _split(base)
    run = os.urandom(4).hex()
    pool = HttpPool(host, port, min(16, clients))
    arrived: dict[int, float] = {}
    expected = {"text": ""}
    complete = asyncio.Event()
    peers: list[EmulatedPeer] = []

    def on_text(peer: EmulatedPeer, text: str) -> None:
        if text == expected["text"] and peer.index not in arrived:
            arrived[peer.index] = time.perf_counter()
            if len(arrived) >= len(peers):
                complete.set()

    peers, result = await _open_measured(base, clients, pool, on_text, timeout, after_open,
                                         SessionPeer if sessions else EmulatedPeer)
    result["wire"] = 2 if sessions else 1
    samples: list[float] = []
    lost = 0
    try:
        if not peers:
            raise ConnectionError("no stream opened")
        await asyncio.sleep(0.2)  # the chat history each new stream replays has arrived
        for number in range(messages):
            arrived.clear()
            complete.clear()
            expected["text"] = f"fanout {run} {number}"
            sent = time.perf_counter()
            status = await peers[0].send(pool, path, expected["text"])
            if status != 200:
                raise ConnectionError(f"POST /send: HTTP {status}")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(complete.wait(), timeout)
            lost += len(peers) - len(arrived)
            samples.extend((when - sent) * 1000.0 for when in arrived.values())
            await asyncio.sleep(0.05)
        # (a stream that ended — a poll, say, past max_streams — misses what follows)
        result["streams_ended"] = sum(1 for peer in peers if peer.ended.is_set())
    finally:
        await _close_peers(peers, pool, path)
        pool.close()
    result.update({"messages": messages, "lost": lost, "latency_ms": _stats(samples)})
    return result


async def _open_measured(base: str, clients: int, pool: HttpPool,
                         on_text: Callable[[EmulatedPeer, str], None], timeout: float,
                         after_open: Callable[[], dict[str, Any]] | None,
                         kind: type[EmulatedPeer] = EmulatedPeer
                         ) -> tuple[list[EmulatedPeer], dict[str, Any]]:
    """Open ``clients`` emulated peers; the start of a result: how many connected, how long
    it took, and what ``after_open`` measures once they are open (memory, say)."""
    started = time.perf_counter()
    peers, failed = await _open_peers(base, clients, pool, on_text, timeout, kind=kind)
    result: dict[str, Any] = {"clients": clients, "connected": len(peers),
                              "connect_failed": failed,
                              "open_s": round(time.perf_counter() - started, 3)}
    if after_open is not None:
        result.update(after_open())
    return peers, result


async def hold_emulated(base: str, clients: int, seconds: float, timeout: float = 10.0,
                        after_open: Callable[[], dict[str, Any]] | None = None
                        ) -> dict[str, Any]:
    """``clients`` emulated connections to an echo app, each sending one message a second
    (spread evenly over the second) for ``seconds``; echo latency, lost messages, errors."""
    host, port, path = _split(base)
    pool = HttpPool(host, port, min(32, clients))
    sent_at: dict[tuple[int, int], float] = {}
    samples: list[float] = []
    errors = {"http": 0}

    def on_text(peer: EmulatedPeer, text: str) -> None:
        key = tuple(int(part) for part in text.split()[:2])
        when = sent_at.pop(key, None)  # type: ignore[arg-type]
        if when is not None:
            samples.append((time.perf_counter() - when) * 1000.0)

    peers, result = await _open_measured(base, clients, pool, on_text, timeout, after_open)
    total = 0

    async def talk(peer: EmulatedPeer, begin: float) -> None:
        nonlocal total
        for number in range(int(seconds)):
            delay = begin + number + peer.index / max(1, len(peers)) - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent_at[(peer.index, number)] = time.perf_counter()
            total += 1
            try:
                status = await peer.send(pool, path, f"{peer.index} {number}")
            except (OSError, asyncio.IncompleteReadError):
                status = 0
            if status != 200:
                errors["http"] += 1

    try:
        begin = time.perf_counter() + 0.2
        await asyncio.gather(*(talk(peer, begin) for peer in peers))
        deadline = time.perf_counter() + timeout
        while sent_at and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        streams_lost = sum(1 for peer in peers if peer.ended.is_set())
    finally:
        await _close_peers(peers, pool, path)
        pool.close()
    latency = _stats(samples)
    result.update({"seconds": seconds, "sent": total, "lost": len(sent_at),
                   "http_errors": errors["http"], "streams_dropped": streams_lost,
                   "latency_ms": latency,
                   # held: every client connected, nothing lost or refused, p99 under 1 s
                   "held": bool(len(peers) == clients and not sent_at and not errors["http"]
                                and latency.get("p99", HELD_P99_MS) < HELD_P99_MS)})
    return result


async def idle_emulated(base: str, clients: int, seconds: float, timeout: float = 60.0,
                        after_open: Callable[[], dict[str, Any]] | None = None,
                        wave: int = 250) -> dict[str, Any]:
    """``clients`` emulated connections to an echo app, opened and then left idle for
    ``seconds`` (their streams carry only heartbeats); then each sends one message, which
    must come back on its own stream. Reports how many streams the server dropped meanwhile
    and how many answered at the end (``after_open`` reads the memory once all are open)."""
    host, port, path = _split(base)
    pool = HttpPool(host, port, min(32, clients))
    answered: set[int] = set()
    done = asyncio.Event()
    peers: list[EmulatedPeer] = []

    def on_text(peer: EmulatedPeer, text: str) -> None:
        if text == f"idle {peer.index}":
            answered.add(peer.index)
            if len(answered) >= len(peers):
                done.set()

    # opened in waves of ``wave`` (visitors arrive over time, not 5,000 in one instant)
    started = time.perf_counter()
    for first in range(0, clients, wave):
        opened, _ = await _open_peers(base, min(wave, clients - first), pool, on_text,
                                      timeout, first)
        peers.extend(opened)
    result: dict[str, Any] = {"clients": clients, "connected": len(peers),
                              "connect_failed": clients - len(peers),
                              "open_s": round(time.perf_counter() - started, 3)}
    if after_open is not None:
        result.update(after_open())
    errors = dropped = 0
    try:
        await asyncio.sleep(seconds)
        dropped = sum(1 for peer in peers if peer.ended.is_set())
        statuses = await asyncio.gather(*(peer.send(pool, path, f"idle {peer.index}")
                                          for peer in peers if not peer.ended.is_set()),
                                        return_exceptions=True)
        errors = sum(1 for status in statuses if status != 200)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(done.wait(), timeout)
    finally:
        await _close_peers(peers, pool, path)
        pool.close()
    result.update({"seconds": seconds, "streams_dropped": dropped, "http_errors": errors,
                   "answered": len(answered),
                   # held: all connected, none dropped, every one answered at the end
                   "held": bool(len(peers) == clients and not dropped
                                and len(answered) == clients)})
    return result


async def fanout_native(url: str, clients: int, messages: int, timeout: float = 10.0,
                        after_open: Callable[[], dict[str, Any]] | None = None
                        ) -> dict[str, Any]:
    """Chat fan-out over native WebSocket: ``clients`` connections to the daemon's chat app
    at ``url`` (``ws://…/chat``); one sends ``messages`` messages, one at a time."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    run = os.urandom(4).hex()
    arrived: dict[int, float] = {}
    expected = {"text": ""}
    complete = asyncio.Event()
    limit = asyncio.Semaphore(50)
    sockets: list[Any] = []

    async def open_one() -> Any:
        async with limit:
            return await connect(url, open_timeout=timeout, compression=None,
                                 max_queue=None)

    async def read(index: int, ws: Any) -> None:
        try:
            async for message in ws:
                if message == expected["text"] and index not in arrived:
                    arrived[index] = time.perf_counter()
                    if len(arrived) >= len(sockets):
                        complete.set()
        except ConnectionClosed:
            pass

    started = time.perf_counter()
    results = await asyncio.gather(*(open_one() for _ in range(clients)),
                                   return_exceptions=True)
    sockets = [ws for ws in results if not isinstance(ws, BaseException)]
    readers = [asyncio.ensure_future(read(index, ws)) for index, ws in enumerate(sockets)]
    result: dict[str, Any] = {"clients": clients, "connected": len(sockets),
                              "connect_failed": clients - len(sockets),
                              "open_s": round(time.perf_counter() - started, 3)}
    await asyncio.sleep(0.2)
    if after_open is not None:
        result.update(after_open())
    samples: list[float] = []
    lost = 0
    try:
        for number in range(messages if sockets else 0):
            arrived.clear()
            complete.clear()
            expected["text"] = f"fanout {run} {number}"
            sent = time.perf_counter()
            await sockets[0].send(expected["text"])
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(complete.wait(), timeout)
            lost += len(sockets) - len(arrived)
            samples.extend((when - sent) * 1000.0 for when in arrived.values())
            await asyncio.sleep(0.05)
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        for reader in readers:
            reader.cancel()
    result.update({"messages": messages, "lost": lost, "latency_ms": _stats(samples)})
    return result


class CrowdPeer(EmulatedPeer):
    """An emulated connection whose stream behaves like the browser's ``EventSource``: when
    an answer ends it comes back after the last ``retry:`` it was told (after
    ``Retry-After`` on a 503), with ``Last-Event-ID``, until stopped. It records every
    wait it was told and how each answer went (held open, or a poll)."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.last_id = ""
        self.told_ms: list[int] = []  # each wait the server asked for
        self.answers: dict[str, int] = {"held": 0, "poll": 0, "refused": 0, "failed": 0}

    async def follow(self, host: str, port: int, path: str,
                     on_text: Callable[[EmulatedPeer, str], None], stop: asyncio.Event
                     ) -> None:
        retry_ms = 3000  # EventSource's own default until a retry: says otherwise
        while not stop.is_set():
            conn = HttpConnection(host, port)
            headers = {"Accept": "text/event-stream"}
            if self.last_id:
                headers["Last-Event-ID"] = self.last_id
            wait_ms = retry_ms
            try:
                status, answer, body = await conn.stream_with_headers(
                    f"{path}/?id={quote(self.id)}&token={quote(self.token)}", headers)
                if status == 200:
                    self.opened.set()
                    decoder, polled = SSEDecoder(), False
                    async for chunk in body:
                        polled = polled or b": altws poll" in chunk
                        for event in decoder.feed(chunk):
                            if event.id:
                                self.last_id = event.id
                            if event.event is None and event.data.startswith('"'):
                                on_text(self, json.loads(event.data))
                        if stop.is_set():
                            break
                    self.answers["poll" if polled else "held"] += 1
                    if decoder.retry is not None:
                        retry_ms = decoder.retry
                    wait_ms = retry_ms
                elif status == 204:
                    return
                elif status == 503:
                    self.answers["refused"] += 1
                    wait_ms = int(float(answer.get("retry-after", "3")) * 1000)
                else:
                    self.answers["failed"] += 1
                self.told_ms.append(wait_ms)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                self.answers["failed"] += 1
            finally:
                conn.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), wait_ms / 1000)


async def crowd_emulated(base: str, clients: int, messages: int, interval: float = 0.5,
                         timeout: float = 15.0) -> dict[str, Any]:
    """A crowd larger than the host's stream slots: ``clients`` chat connections whose
    streams behave like ``EventSource`` (:class:`CrowdPeer`); the first posts ``messages``
    messages ``interval`` s apart, and each is timed from its POST to its arrival on every
    client. Reports what was lost, the delivery latency, the longest wait a client was
    told, and how the answers went (held, polls, refused)."""
    host, port, path = _split(base)
    run = os.urandom(4).hex()
    pool = HttpPool(host, port, 4)
    peers = [CrowdPeer(index) for index in range(clients)]
    sent_at: dict[str, float] = {}
    arrived: dict[str, dict[int, float]] = {}
    stop = asyncio.Event()

    def on_text(peer: EmulatedPeer, text: str) -> None:
        if text in sent_at:
            arrived[text].setdefault(peer.index, time.perf_counter())

    tasks: list[asyncio.Task[None]] = []
    try:
        for peer in peers:  # one at a time: a CGI host starts one process per request
            await peer.open(pool, path)
        tasks = [asyncio.ensure_future(peer.follow(host, port, path, on_text, stop))
                 for peer in peers]
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(peer.opened.wait() for peer in peers)),
                                   timeout)
        await asyncio.sleep(interval)
        for number in range(messages):
            text = f"crowd {run} {number}"
            sent_at[text], arrived[text] = time.perf_counter(), {}
            status = await peers[0].send(pool, path, text)
            if status != 200:
                raise ConnectionError(f"POST /send: HTTP {status}")
            await asyncio.sleep(interval)
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline and \
                any(len(got) < clients for got in arrived.values()):
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await _close_peers(peers, pool, path)
        pool.close()
    samples = [(when - sent_at[text]) * 1000.0 for text, got in arrived.items()
               for when in got.values()]
    answers = {name: sum(peer.answers[name] for peer in peers) for name in peers[0].answers}
    told = [ms for peer in peers for ms in peer.told_ms]
    return {"clients": clients, "messages": messages,
            "lost": clients * messages - len(samples), "latency_ms": _stats(samples),
            "max_told_ms": max(told, default=0), "answers": answers}


def _stats(samples: list[float]) -> dict[str, float]:
    return {name: (value if name == "count" else round(value, 3))
            for name, value in summary(samples).items()}
