"""The emulated transport: Server-Sent Events down, HTTP POST up (``docs/protocol.md``).

Only the standard library is used (:mod:`http.client`). Two threads per connection:

- the **stream** thread reads ``GET B/?id=…&token=…`` with the pure
  :class:`~altwebsocket.protocol.sse.SSEDecoder`; when the stream ends (``stream_lifetime``)
  or drops, it reconnects with ``Last-Event-ID`` so nothing is lost; an event whose id was
  already seen is dropped; a 503/429 is retried after ``Retry-After`` (or a backoff); a 204
  or the ``close`` event ends the connection;
- the **sender** thread posts queued messages to ``B/send``: every message has a ``seq``
  (1, 2, 3…); the messages queued while a request is in flight go together in the next one
  (up to ``max_batch``); after a network error the same seqs are sent again (the server
  acknowledges them without delivering them twice); a 409 ``seq_gap`` resumes from the
  ``expected`` seq; ``close()`` is posted after the messages queued before it.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from .. import __version__
from ..protocol.close import CloseCode
from ..protocol.messages import InboundMessage, batch, message_from_event
from ..protocol.sse import ServerSentEvent, SSEDecoder
from .errors import Closed, ConnectFailed
from .transport import Debug, Message, Sink, Transport

__all__ = ["EmulatedTransport", "HttpError", "http_request", "fetch_info"]

_NETWORK_ERRORS = (OSError, http.client.HTTPException)
_RETRYABLE = (429, 503)
# What a web server or proxy answers when the process behind it died mid-request (Apache
# says 500 when a CGI process is killed, proxies 502/504): retried like a network error,
# with the same seqs (the server de-duplicates), for at most reconnect_timeout.
_GATEWAY_ERRORS = (500, 502, 504)
_MAX_BACKOFF = 10.0


class HttpError(Exception):
    """A non-2xx answer: its status, the ``error`` code and message of its JSON body."""

    def __init__(self, status: int, error: str, message: str,
                 body: dict[str, Any] | None = None, retry_after: float | None = None
                 ) -> None:
        super().__init__(f"HTTP {status} {error}: {message}" if error != "http"
                         else f"HTTP {status} {message}")
        self.status = status
        self.error = error
        self.message = message
        self.body = body or {}
        self.retry_after = retry_after


def _open_http(url: str, timeout: float | None) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    if parts.scheme == "https":
        return http.client.HTTPSConnection(parts.netloc, timeout=timeout)
    return http.client.HTTPConnection(parts.netloc, timeout=timeout)


def _decode_answer(status: int, headers: Mapping[str, str], data: bytes
                   ) -> dict[str, Any]:
    """The JSON body of an answer; raise :class:`HttpError` for a non-2xx status."""
    try:
        body = json.loads(data.decode("utf-8")) if data.strip() else {}
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = None
    if 200 <= status < 300:
        if body is None:
            raise HttpError(status, "bad_answer", "the answer is not a JSON object")
        return body
    retry_after: float | None = None
    if headers.get("Retry-After", "").strip().isdigit():
        retry_after = float(headers["Retry-After"].strip())
    if body is None:
        raise HttpError(status, "http", http.client.responses.get(status, "error"),
                        retry_after=retry_after)
    return _raise(status, body, retry_after)


def _raise(status: int, body: dict[str, Any], retry_after: float | None) -> dict[str, Any]:
    raise HttpError(status, str(body.get("error", "http")), str(body.get("message", "")),
                    body, retry_after)


def http_request(conn: http.client.HTTPConnection, method: str, path: str,
                 body: dict[str, Any] | None = None
                 ) -> tuple[int, dict[str, str], dict[str, Any]]:
    """One request on ``conn``; return status, headers and the JSON body.

    Raises :class:`HttpError` for a non-2xx status, ``OSError`` or
    :class:`http.client.HTTPException` for a network error.
    """
    headers = {"User-Agent": f"altwebsocket-client/{__version__}", "Accept": "application/json"}
    payload: bytes | None = None
    if body is not None:
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=payload, headers=headers)
    response = conn.getresponse()
    data = response.read()
    answer_headers = {name.title(): value for name, value in response.getheaders()}
    if response.will_close:
        conn.close()
    return response.status, answer_headers, _decode_answer(response.status, answer_headers,
                                                           data)


def fetch_info(base: str, timeout: float, debug: Debug = None) -> dict[str, Any]:
    """``GET B/info`` (see ``docs/protocol.md``); raise :class:`ConnectFailed` on failure."""
    path = urlsplit(base).path.rstrip("/") + "/info"
    conn = _open_http(base, timeout)
    try:
        if debug:
            debug(f"> GET {path}")
        status, _, info = http_request(conn, "GET", path)
        if debug:
            debug(f"< {status} {json.dumps(info)}")
        return info
    except HttpError as exc:
        if debug:
            debug(f"< {exc.status} {exc.error}: {exc.message}")
        raise ConnectFailed(f"GET {path}: {exc}", exc.status) from None
    except _NETWORK_ERRORS as exc:
        raise ConnectFailed(f"cannot reach {urlsplit(base).netloc}: {_describe(exc)}") from None
    finally:
        conn.close()


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.timeout):
        return "timed out"
    return text


def _backoff(failures: int, retry_after: float | None = None) -> float:
    if retry_after is not None:
        return retry_after
    delay: float = min(_MAX_BACKOFF, 0.25 * 2 ** min(failures, 8))  # to mypy int ** int is Any
    return delay * (0.75 + random.random() / 2)


class EmulatedTransport(Transport):
    """A WebSocket connection emulated with SSE + POST against an app's base URL ``B``.

    Args:
        base: the app's base URL, e.g. ``http://127.0.0.1:8000/echo``.
        protocols: subprotocols offered, in order of preference.
        debug: called with one line per request, status and event.
        info: the answer of ``B/info`` when known (``max_batch``, ``heartbeat``).
        timeout: seconds for one HTTP request (and for opening).
        reconnect_timeout: give up (close 1006) after this long without reaching the server.
    """

    name = "emulation"

    def __init__(self, base: str, protocols: tuple[str, ...] = (), debug: Debug = None,
                 info: dict[str, Any] | None = None, timeout: float = 10.0,
                 reconnect_timeout: float = 60.0) -> None:
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not an http(s) URL: {base!r}")
        self.base = base.rstrip("/")
        self.path = parts.path.rstrip("/")
        self.protocols = tuple(protocols)
        self.debug = debug
        info = info or {}
        self.max_batch = int(info.get("max_batch") or 1000)
        self.max_message = int(info.get("max_message") or 1024 * 1024)
        heartbeat = float(info.get("heartbeat") or 15.0)
        self.idle_timeout = heartbeat * 2 + 5  # no byte for this long: the stream is dead
        self.timeout = timeout
        self.reconnect_timeout = reconnect_timeout
        self.protocol = ""
        self.id = ""
        self.token = ""
        self.last_event_id = 0
        self.retry_ms = 1000
        self._sink: Sink | None = None
        self._cond = threading.Condition()
        self._pending: deque[InboundMessage] = deque()
        self._next_seq = 1
        self._acked = 0
        self._close_request: tuple[int | None, str] | None = None
        self._closed = False
        self._stream_conn: http.client.HTTPConnection | None = None
        self._post_conn: http.client.HTTPConnection | None = None
        self._threads: list[threading.Thread] = []

    # -- the Transport interface -------------------------------------------------------

    def open(self, sink: Sink) -> None:
        """``POST B/new``, then start the stream and sender threads."""
        body: dict[str, Any] | None = {"protocols": list(self.protocols)} if self.protocols \
            else None
        self._log(f"> POST {self.path}/new" + (f" {json.dumps(body)}" if body else ""))
        try:
            status, _, answer = self._post("/new", body)
        except HttpError as exc:
            self._log(f"< {exc.status} {exc.error}: {exc.message}")
            raise ConnectFailed(f"the server refused the connection: {exc}", exc.status) \
                from None
        except _NETWORK_ERRORS as exc:
            raise ConnectFailed(f"cannot reach {urlsplit(self.base).netloc}: "
                                f"{_describe(exc)}") from None
        try:
            self.id, self.token = str(answer["id"]), str(answer["token"])
        except KeyError:
            raise ConnectFailed("POST /new: the answer has no id or token") from None
        self.protocol = str(answer.get("protocol") or "")
        self._log(f"< {status} id={self.id} token={self.token[:4]}… "
                  f"protocol={self.protocol!r} extensions={answer.get('extensions', '')!r}")
        if self.protocols and not self.protocol:
            self._closed = True
            self._best_effort_close()
            raise ConnectFailed("the server chose none of the offered subprotocols")
        self._sink = sink
        for target, label in ((self._stream_loop, "stream"), (self._send_loop, "sender")):
            thread = threading.Thread(target=target, name=f"altws-{label}-{self.id}",
                                      daemon=True)
            self._threads.append(thread)
            thread.start()

    def send(self, message: Message) -> None:
        """Queue ``message`` with the next seq; the sender thread posts it."""
        with self._cond:
            if self._closed or self._close_request is not None:
                raise Closed(CloseCode.ABNORMAL, "the connection is closing or closed")
            self._pending.append(InboundMessage(self._next_seq, message))
            self._next_seq += 1
            self._cond.notify_all()

    def close(self, code: int | None, reason: str) -> None:
        """Queue the ``POST B/close`` after the messages already queued."""
        with self._cond:
            if self._closed or self._close_request is not None:
                return
            self._close_request = (code, reason)
            self._cond.notify_all()

    def flush(self, timeout: float | None) -> bool:
        """Wait until the server acknowledged every queued message."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending and not self._closed:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            return not self._pending

    def abort(self) -> None:
        """Stop both threads and drop the stream; the server will see the client as gone."""
        self._finish(None)

    @property
    def buffered_amount(self) -> int:
        """UTF-8 bytes of the messages not yet acknowledged."""
        with self._cond:
            return sum(len(m.data.encode("utf-8")) if isinstance(m.data, str) else len(m.data)
                       for m in self._pending)

    # -- internals ----------------------------------------------------------------------

    def _log(self, line: str) -> None:
        if self.debug is not None:
            self.debug(line)

    def _post(self, endpoint: str, body: dict[str, Any] | None
              ) -> tuple[int, dict[str, str], dict[str, Any]]:
        """POST on the sender's keep-alive connection (reopened after an error)."""
        reused = self._post_conn is not None
        for attempt in (1, 2):
            if self._post_conn is None:
                self._post_conn = _open_http(self.base, self.timeout)
            try:
                return http_request(self._post_conn, "POST", self.path + endpoint, body)
            except _NETWORK_ERRORS as exc:
                self._post_conn.close()
                self._post_conn = None
                # A kept-alive connection the server has since closed: retry once, at once.
                stale = isinstance(exc, (http.client.RemoteDisconnected, BrokenPipeError,
                                         ConnectionResetError))
                if not (reused and stale and attempt == 1):
                    raise
                self._log(f"! POST {endpoint} failed on a kept-alive connection "
                          f"({_describe(exc)}); reopening and resending it")
        raise AssertionError("unreachable")

    def _best_effort_close(self) -> None:
        try:
            self._post("/close", {"id": self.id, "token": self.token})
        except (HttpError, *_NETWORK_ERRORS):
            pass

    def _finish(self, close: tuple[int, str] | None) -> None:
        """End the connection once: stop the threads, report ``close`` to the sink."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
            stream = self._stream_conn
        if stream is not None and threading.current_thread().name != \
                f"altws-stream-{self.id}":
            try:
                if stream.sock is not None:
                    stream.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if close is not None and self._sink is not None:
            self._sink.on_close(*close)

    # -- the stream thread ----------------------------------------------------------------

    def _stream_loop(self) -> None:
        failures = 0
        lost_since: float | None = None
        while not self._closed:
            started = time.monotonic()
            delay: float | None = None
            try:
                outcome = self._stream_once()
            except HttpError as exc:
                self._log(f"< stream {exc.status} {exc.error}: {exc.message}")
                if exc.status in _GATEWAY_ERRORS:
                    lost_since = lost_since or started
                if exc.status not in _RETRYABLE + _GATEWAY_ERRORS:
                    self._finish((CloseCode.ABNORMAL, f"stream refused: {exc.status} {exc.error}"))
                    return
                failures += 1
                delay = _backoff(failures, exc.retry_after)
                outcome = "retry"
            except _NETWORK_ERRORS as exc:
                if self._closed:
                    return
                self._log(f"! stream dropped: {_describe(exc)}")
                failures += 1
                lost_since = lost_since or started
                delay = _backoff(failures)
                outcome = "retry"
            if outcome == "closed":
                return
            if outcome == "ended":
                failures, lost_since = 0, None
                # A stream that ended at once with nothing new: wait as EventSource would.
                if time.monotonic() - started < 1.0:
                    delay = self.retry_ms / 1000
            if lost_since is not None and time.monotonic() - lost_since > self.reconnect_timeout:
                self._finish((CloseCode.ABNORMAL, "connection lost"))
                return
            if delay:
                self._log(f"  reconnecting in {delay:.2f} s")
                with self._cond:
                    self._cond.wait_for(lambda: self._closed, delay)

    def _stream_once(self) -> str:
        """Read one stream to its end: ``"ended"`` (resume), ``"closed"`` (done)."""
        conn = _open_http(self.base, self.idle_timeout)
        with self._cond:
            if self._closed:
                return "closed"
            self._stream_conn = conn
        try:
            path = f"{self.path}/?id={quote(self.id)}&token={quote(self.token)}"
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache",
                       "User-Agent": f"altwebsocket-client/{__version__}"}
            resume = ""
            if self.last_event_id:
                headers["Last-Event-ID"] = str(self.last_event_id)
                resume = f" Last-Event-ID: {self.last_event_id}"
            self._log(f"> GET {self.path}/?id={self.id}&token={self.token[:4]}…{resume}")
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            if response.status == 204:
                self._log("< stream 204 (no more events: closed)")
                self._finish((CloseCode.ABNORMAL, "closed"))
                return "closed"
            if response.status != 200:
                data = response.read()
                _decode_answer(response.status, {k.title(): v for k, v in
                                                 response.getheaders()}, data)
                raise HttpError(response.status, "http", "unexpected status")
            self._log(f"< stream 200 {response.getheader('Content-Type', '')}")
            decoder = SSEDecoder()
            while not self._closed:
                chunk = response.read1(65536)
                if not chunk:
                    if self._closed:
                        return "closed"
                    self._log(f"  stream ended by the server (last event id "
                              f"{self.last_event_id})")
                    return "ended"
                comments = decoder.comments
                events = decoder.feed(chunk)
                if decoder.comments > comments:
                    self._log(f"< : comment (heartbeat) x{decoder.comments - comments}")
                if decoder.retry is not None and decoder.retry != self.retry_ms:
                    self.retry_ms = decoder.retry
                    self._log(f"< retry: {self.retry_ms}")
                for event in events:
                    if self._on_event(event):
                        return "closed"
            return "closed"
        finally:
            conn.close()

    def _on_event(self, event: ServerSentEvent) -> bool:
        """Deliver one event; True when it was the close event."""
        kind = event.event or "message"
        if event.id is None or not event.id.isdigit():
            self._log(f"! event without a numeric id ({kind}), ignored")
            return False
        event_id = int(event.id)
        if event_id <= self.last_event_id:
            self._log(f"< event id={event_id} {kind}: duplicate, dropped")
            return False
        if event_id != self.last_event_id + 1:
            self._log(f"! event ids jump from {self.last_event_id} to {event_id}")
        try:
            value = message_from_event(event)
        except Exception as exc:  # a malformed event: the connection cannot be trusted
            self._log(f"! bad event id={event_id}: {exc}")
            self._finish((CloseCode.ABNORMAL, "malformed event"))
            return True
        self.last_event_id = event_id
        if isinstance(value, tuple):
            code, reason = value
            self._log(f"< event id={event_id} close code={code} reason={reason!r}")
            if self._close_request is not None and len(self._threads) > 1:
                self._threads[1].join(1.0)  # let the answer to our /close be seen (debug)
            self._finish((code, reason))
            return True
        size = len(value) if isinstance(value, bytes) else len(value.encode("utf-8"))
        self._log(f"< event id={event_id} {kind} {size} bytes")
        assert self._sink is not None
        self._sink.on_message(value)
        return False

    # -- the sender thread ----------------------------------------------------------------

    def _send_loop(self) -> None:
        failures = 0
        lost_since: float | None = None
        while True:
            with self._cond:
                while not self._closed and not self._pending and self._close_request is None:
                    self._cond.wait()
                if self._closed:
                    return
                chunk = self._take_batch()
                close_request = self._close_request if not chunk else None
            delay: float | None = None
            try:
                if chunk:
                    self._post_send(chunk)
                else:
                    assert close_request is not None
                    self._post_close(*close_request)
                    return
                failures, lost_since = 0, None
            except HttpError as exc:
                self._log(f"< {exc.status} {exc.error}: {exc.message}")
                if exc.status in _GATEWAY_ERRORS:
                    failures += 1
                    lost_since = lost_since or time.monotonic()
                    if time.monotonic() - lost_since > self.reconnect_timeout:
                        self._finish((CloseCode.ABNORMAL, f"server error {exc.status}"))
                        return
                    delay = _backoff(failures)
                elif exc.status in _RETRYABLE:
                    failures += 1
                    delay = _backoff(failures, exc.retry_after)
                elif exc.status == 409 and isinstance(exc.body.get("expected"), int):
                    self._resume_from(int(exc.body["expected"]))
                elif exc.status in (404, 410) and not chunk:
                    return  # already closed or purged: the stream reports the close
                elif exc.status == 410:
                    with self._cond:
                        self._pending.clear()
                        self._cond.notify_all()
                    return  # closed by the server: the stream brings the close event
                else:
                    what = "send" if chunk else "close"
                    self._best_effort_close()
                    self._finish((CloseCode.ABNORMAL, f"{what} refused: {exc.status} {exc.error}: "
                                            f"{exc.message}"))
                    return
            except _NETWORK_ERRORS as exc:
                self._log(f"! POST failed: {_describe(exc)}; will resend the same seqs")
                failures += 1
                lost_since = lost_since or time.monotonic()
                if time.monotonic() - lost_since > self.reconnect_timeout:
                    self._finish((CloseCode.ABNORMAL, "connection lost"))
                    return
                delay = _backoff(failures)
            if delay:
                with self._cond:
                    self._cond.wait_for(lambda: self._closed, delay)

    def _take_batch(self) -> list[InboundMessage]:
        """The oldest unacknowledged messages, at most ``max_batch`` and about 3 MiB."""
        taken: list[InboundMessage] = []
        size = 0
        budget = 3 * self.max_message
        for message in self._pending:
            length = len(message.data) * (4 if isinstance(message.data, str) else 4 / 3)
            if taken and (len(taken) >= self.max_batch or size + length > budget):
                break
            taken.append(message)
            size += int(length)
        return taken

    def _post_send(self, chunk: list[InboundMessage]) -> None:
        body: dict[str, Any] = {"id": self.id, "token": self.token}
        items = batch(chunk)
        if len(items) == 1:
            body.update(items[0])
            seqs = f"seq={chunk[0].seq}"
        else:
            body["messages"] = items
            seqs = f"seq={chunk[0].seq}..{chunk[-1].seq} ({len(chunk)} messages)"
        self._log(f"> POST {self.path}/send {seqs}")
        status, _, answer = self._post("/send", body)
        ack = answer.get("ack")
        self._log(f"< {status} ack={ack}")
        if isinstance(ack, int):
            with self._cond:
                self._acked = max(self._acked, ack)
                while self._pending and self._pending[0].seq <= ack:
                    self._pending.popleft()
                self._cond.notify_all()

    def _resume_from(self, expected: int) -> None:
        """After a 409: the server has every seq before ``expected``; resend from there."""
        with self._cond:
            while self._pending and self._pending[0].seq < expected:
                self._pending.popleft()
            first = self._pending[0].seq if self._pending else self._next_seq
            self._cond.notify_all()
        self._log(f"  seq gap: the server expects {expected}; resending from {first}")
        if first > expected:
            self._finish((CloseCode.ABNORMAL, f"seq {expected} was lost"))

    def _post_close(self, code: int | None, reason: str) -> None:
        body: dict[str, Any] = {"id": self.id, "token": self.token}
        if code is not None:
            body["code"] = code
            body["reason"] = reason
        shown = "no status" if code is None else f"code={code} reason={reason!r}"
        self._log(f"> POST {self.path}/close {shown}")
        status, _, answer = self._post("/close", body)
        extra = " already_closed" if answer.get("already_closed") else ""
        self._log(f"< {status} ok{extra}")
