"""The SSE body of ``GET B/?id=…&token=…`` (one connection's events, wire version 1) and of
``GET S/`` (a session's events, version 2), as they are queued.

:func:`open_stream` and :func:`open_session_stream` check the request (the secret, the resume
point, the host's stream slots) and return an :class:`EventStream`; :class:`Streams` counts
this process's streams so a server shutting down can end them. The loop's deadlines come
from the pure :class:`~altwebsocket.protocol.schedule.StreamSchedule`, fed by an injected
monotonic clock.
"""

from __future__ import annotations

import time
from _thread import allocate_lock

from ..._lazy import TYPE_CHECKING, logger
from ...exceptions import AltWebSocketError, Forbidden, Overloaded, UnknownConnection
from ...protocol import messages as wire
from ...protocol.schedule import BEAT, END, StreamSchedule
from ...protocol.session import SESSION_APP, session_event_for
from ...protocol.sse import encode_comment, encode_retry
from ...protocol.state import Input, State, check_resume, transition
from ...storage import EVENT_PAGE
from ...storage.wake import WakeSocket, count_streams
from .auth import token_matches

if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Callable

    from ...protocol.sse import ServerSentEvent
    from ...server import AltWebSocketServer
    from ...storage import ConnectionRecord
    from ...storage.api import StoredEvent

__all__ = ["Streams", "EventStream", "open_stream", "open_session_stream"]


def _v1_event(event: StoredEvent) -> ServerSentEvent:
    return wire.event_for(event[0], event[1], event[2])


def _v1_final(event: StoredEvent) -> bool:
    return event[1] == wire.CLOSE


def _v2_event(event: StoredEvent) -> ServerSentEvent:
    return session_event_for(*event)


def _v2_final(event: StoredEvent) -> bool:
    return event[1] == wire.CLOSE and event[3] is None  # the session's own end


class Streams:
    """The streams this process serves: how many, and whether they should end now."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.active = 0
        self.stopping = False
        self._lock = allocate_lock()

    def add(self, delta: int) -> None:
        """Count a stream in (``+1``) or out (``-1``)."""
        with self._lock:
            self.active += delta

    def shutdown(self, timeout: float = 2.0) -> None:
        """End every open stream of this process (their clients resume with
        ``Last-Event-ID``) and wait up to ``timeout`` s for them to let go of the storage."""
        self.stopping = True
        deadline = time.monotonic() + timeout
        while self.active and time.monotonic() < deadline:
            time.sleep(0.02)


def open_stream(server: AltWebSocketServer, streams: Streams, app: str, conn_id: str,
                token: str, last_event_id: int) -> EventStream | None:
    """The event stream of a connection, or ``None`` when there is nothing more to send
    (closed, and the client saw the close event: answered 204)."""
    server.handler(app)
    return _open(server, streams, app, conn_id, token, last_event_id, "connection")


def open_session_stream(server: AltWebSocketServer, streams: Streams, session_id: str,
                        secret: str, last_event_id: int) -> EventStream | None:
    """The event stream of a session (version 2), or ``None`` when the session is over and
    the client saw its last event (answered 204)."""
    return _open(server, streams, SESSION_APP, session_id, secret, last_event_id, "session")


def _open(server: AltWebSocketServer, streams: Streams, app: str, conn_id: str, token: str,
          last_event_id: int, what: str) -> EventStream | None:
    record = server.storage.connection(conn_id)
    if record is None or record.app != app:
        raise UnknownConnection(f"no such {what}")
    if not token_matches(record, token):
        raise Forbidden(f"wrong token for this {what}")
    transition(record.state, Input.STREAM)
    after = check_resume(last_event_id, record.last_event)
    if record.state == State.CLOSED and after >= record.last_event:
        return None
    limit = server.settings.max_streams
    if count_streams(server.wake_dir) >= limit:
        if count_streams(server.wake_dir, clean=True) >= limit:
            raise Overloaded("too many open streams, retry later", retry_after=2)
    if app == SESSION_APP:
        return EventStream(server, streams, record, after, _v2_event, _v2_final)
    return EventStream(server, streams, record, after)


class EventStream:
    """The SSE body of one connection: an iterator of byte chunks, one per write.

    :meth:`start` registers the stream in the storage (so a storage failure is still a clean
    503 before any byte is sent); iterating starts it if needed. The body starts with a
    ``retry:`` line and a comment (so proxies and ``wsgiref`` send the headers at once),
    sends the events after the resume point as they are queued, a comment every
    ``heartbeat`` seconds, and ends after the close event, after ``stream_lifetime``, or
    when the storage fails (the client resumes with ``Last-Event-ID``).
    """

    def __init__(self, server: AltWebSocketServer, streams: Streams, record: ConnectionRecord,
                 after: int, encode: Callable[[StoredEvent], ServerSentEvent] = _v1_event,
                 final: Callable[[StoredEvent], bool] = _v1_final) -> None:
        self.server = server
        self.encode = encode  # a stored event as the SSE event of this wire version
        self.final = final  # whether an event is the stream's last (its owner closed)
        self.streams = streams
        self.record = record
        self.cursor = after
        self.closed = False
        self._wake: WakeSocket | None = None
        self._iterating = False

    def start(self) -> None:
        """Bind the wake-up socket, record it as the connection's waker, and discard the
        events the client has seen (raises :class:`StorageUnavailable` on failure)."""
        if self._wake is not None:
            return
        storage = self.server.storage
        storage.listen()  # hints from other hosts too (PostgreSQL)
        wake = WakeSocket(self.server.wake_dir)
        try:
            with storage.transaction() as tx:
                tx.set_waker(self.record.id, wake.address, self.cursor)
            storage.discard_events(self.record.id, self.cursor)
        except BaseException:
            wake.close()
            raise
        self._wake = wake
        self.streams.add(1)

    def abandon(self) -> None:
        """Undo :meth:`start` for a stream whose body was never iterated."""
        wake, self._wake = self._wake, None
        if wake is not None and not self._iterating:
            self._release(wake)

    def __iter__(self) -> Iterator[bytes]:
        self.start()
        self._iterating = True
        wake = self._wake
        assert wake is not None
        try:
            yield from self._events(wake)
        except AltWebSocketError as exc:  # the storage failed: end; the client resumes
            logger("altwebsocket.stream").warning(
                "stream of %s ended early: %s", self.record.id, exc.message)
        finally:
            self._release(wake)

    def _pending(self, wake: WakeSocket, report_every: int) -> Iterator[bytes]:
        """The events queued since the cursor, one chunk per page; records every
        ``report_every`` events how far the stream got (so a reading client never counts
        as one that does not read, ``max_events_queued``)."""
        storage, conn_id = self.server.storage, self.record.id
        while True:
            events = storage.events_after(conn_id, self.cursor)
            if events:
                reported = self.cursor
                self.cursor = events[-1][0]
                if self.cursor // report_every != reported // report_every:
                    with storage.transaction() as tx:  # (a write stuck below holds one chunk)
                        tx.set_waker(conn_id, wake.address, self.cursor)
                yield b"".join(self.encode(event).encode() for event in events)
                if any(self.final(event) for event in events):
                    self.closed = True
                    return
            if len(events) < EVENT_PAGE:
                return

    def _events(self, wake: WakeSocket) -> Iterator[bytes]:
        server, settings, storage = self.server, self.server.settings, self.server.storage
        streams = self.streams
        report_every = max(1, settings.max_events_queued // 4)
        yield encode_retry(settings.retry_ms) + encode_comment("altws")
        schedule = StreamSchedule(streams.clock(), settings.stream_lifetime,
                                  settings.heartbeat, settings.poll_interval)
        version = storage.data_version()
        check = True
        while True:
            if check:
                yield from self._pending(wake, report_every)
                if self.closed:
                    return
            action, timeout = schedule.next(streams.clock(), streams.stopping)
            if action == END:
                return
            if action == BEAT:
                yield encode_comment()
                with storage.transaction() as tx:
                    tx.set_waker(self.record.id, wake.address, self.cursor)
                server.maybe_sweep()
                check = True
                continue
            check = bool(wake.wait(timeout))
            if not check:
                current = storage.data_version()
                check = current is None or current != version
                version = current

    def _release(self, wake: WakeSocket) -> None:
        try:
            with self.server.storage.transaction() as tx:
                record = tx.connection(self.record.id)
                if record is not None and record.waker == wake.address:
                    tx.set_waker(self.record.id, None, self.cursor)
        except Exception as exc:  # the process may be going down; the sweep will notice
            logger("altwebsocket.stream").debug(
                "could not release the stream of %s: %s", self.record.id, exc)
        finally:
            wake.close()
            self.streams.add(-1)
