"""AltWebSocketServer: the apps, the storage, and the operations every transport performs.

A transport (the HTTP endpoints in :mod:`.wsgi`, the daemon in :mod:`.daemon`) parses its
input, calls one operation here — :meth:`~AltWebSocketServer.open`,
:meth:`~AltWebSocketServer.receive`, :meth:`~AltWebSocketServer.close`,
:meth:`~AltWebSocketServer.open_stream` — and writes out the result. Each operation runs the
handler callbacks inside one storage transaction, then sends wake-up hints to the streams
that got events.
"""

from __future__ import annotations

import os
import time
from _thread import allocate_lock

from ._lazy import logger

from .config import Settings, handlers_from
from .exceptions import (
    AltWebSocketError,
    ConfigError,
    Forbidden,
    Overloaded,
    RateLimited,
    StorageUnavailable,
    UnknownConnection,
)
from .handler import AltWebSocketConnection, AltWebSocketHandler
from .protocol import messages as wire
from .protocol.sse import encode_comment, encode_retry
from .protocol.state import (
    ABNORMAL,
    POLICY_VIOLATION,
    Input,
    State,
    accept_seqs,
    check_resume,
    transition,
)
from .storage import AltWebSocketStorage, ConnectionRecord, Transaction, new_token
from .wake import WakeSocket, count_streams, send_hints, wake_folder

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover  (typing costs a CGI request milliseconds)
    from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple, Union

    from typing import Protocol
else:
    Protocol = object

__all__ = ["AltWebSocketServer", "Context", "EventStream", "Opened"]


class Context:
    """What the callbacks of one operation share: its transaction and the connections seen."""

    def __init__(self, server: "AltWebSocketServer", tx: Transaction) -> None:
        self.server = server
        self.tx = tx
        tx.max_queued = server.settings.max_events_queued
        self._connections: Dict[str, AltWebSocketConnection] = {}
        self.local: List[Tuple[str, int, bytes]] = []

    def wrap(self, record: ConnectionRecord) -> AltWebSocketConnection:
        """The one connection object of this operation for ``record``."""
        conn = self._connections.get(record.id)
        if conn is None:
            conn = AltWebSocketConnection(self, record)
            self._connections[record.id] = conn
        return conn

    def enqueue(self, conn_id: str, kind: int, payload: bytes) -> bool:
        """Queue an event for one connection (in memory if this process holds it natively)."""
        sink = self.server.local_sink
        if sink is not None and kind != wire.CLOSE and sink.owns(conn_id):
            self.local.append((conn_id, kind, payload))  # delivered after the commit
        else:
            self.tx.enqueue(conn_id, kind, payload)
        return True

    def enqueue_app(self, app: str, kind: int, payload: bytes, exclude: Optional[str]) -> int:
        """Queue an event for every open connection of an app."""
        return self.tx.enqueue_app(app, kind, payload, exclude)

    def open_connections(self, app: str) -> List[AltWebSocketConnection]:
        """The open connections of ``app``."""
        out = []
        for conn_id in self.tx.open_connection_ids(app):
            conn = self._connections.get(conn_id)
            if conn is None:
                record = self.tx.connection(conn_id)
                if record is None:
                    continue
                conn = self.wrap(record)
            if conn.state == State.OPEN:
                out.append(conn)
        return out

    def close(self, conn: AltWebSocketConnection, code: int, reason: str, payload: wire.Payload
              ) -> None:
        """Close ``conn``: queue the close event, mark it closed, run ``on_close``."""
        self.tx.enqueue(conn.id, *payload)
        self.tx.set_closed(conn.id, code, reason)
        conn._mark_closed()
        self.server._call(conn, "on_close", code, reason)

    def close_overflowing(self) -> int:
        """Close (1008) the open connections that now hold more than ``max_events_queued``
        events their client has not read: a client that never reads must not fill the disk.
        Their ``on_close`` may queue more events, so this repeats until none is left."""
        closed = 0
        overflow = self.tx.overflow
        while overflow:
            conn_id = next(iter(overflow))
            del overflow[conn_id]
            conn = self._connections.get(conn_id)
            if conn is None:
                record = self.tx.connection(conn_id)
                if record is None or record.state != State.OPEN:
                    continue
                conn = self.wrap(record)
            if conn.state != State.OPEN:
                continue
            logger("altwebsocket.server").warning(
                "closing %s/%s: over %d undelivered events", conn.app, conn.id,
                self.tx.max_queued)
            reason = "too many undelivered events"
            self.close(conn, POLICY_VIOLATION, reason, wire.close_payload(POLICY_VIOLATION,
                                                                           reason))
            closed += 1
        return closed


class LocalSink(Protocol):
    """A transport that holds some connections in this process (the native daemon).

    Events for those connections skip the storage: they are handed to :meth:`deliver` after
    the transaction commits, in order. Close events always go through the storage.
    """

    def owns(self, conn_id: str) -> bool:
        """Whether this process holds ``conn_id`` live."""

    def deliver(self, events: List[Tuple[str, int, bytes]]) -> None:
        """Send these ``(conn_id, kind, payload)`` events, committed just now."""


class Opened:
    """The result of ``/new``: the connection's id, its secret token, the chosen protocol."""

    def __init__(self, conn_id: str, token: str, protocol: str) -> None:
        self.id = conn_id
        self.token = token
        self.protocol = protocol

    def to_json(self) -> Dict[str, Any]:
        """The ``/new`` response body."""
        return {"id": self.id, "token": self.token, "protocol": self.protocol, "extensions": ""}


class AltWebSocketServer:
    """The server: named apps (handlers) over one storage.

    Args:
        apps: app name to handler instance (or ``module:Class`` string).
        storage: an :class:`AltWebSocketStorage` or an SQLAlchemy URL; default: an SQLite file
            in ``settings.data``.
        settings: limits and timings (:class:`~altwebsocket.config.Settings`); keyword arguments
            given here override its fields.
    """

    def __init__(
        self,
        apps: Optional[Mapping[str, Union[AltWebSocketHandler, str]]] = None,
        storage: Union[AltWebSocketStorage, str, None] = None,
        settings: Optional[Settings] = None,
        **options: Any,
    ) -> None:
        self.settings = (settings or Settings()).replace(**options).validate()
        if apps is None:
            apps = dict(self.settings.apps)
        handlers: Dict[str, Any] = handlers_from(
            {name: spec for name, spec in apps.items() if isinstance(spec, str)}
        )
        for name, handler in apps.items():
            if not isinstance(handler, str):
                handlers[name] = handler
        for name, handler in handlers.items():
            if not isinstance(handler, AltWebSocketHandler):
                raise ConfigError(f"app {name!r} is not an AltWebSocketHandler")
        self.handlers: Dict[str, AltWebSocketHandler] = handlers
        if isinstance(storage, AltWebSocketStorage):
            self.storage = storage
        else:
            if storage is None and not self.settings.storage:
                try:
                    os.makedirs(self.settings.data, exist_ok=True)
                except OSError as exc:  # every request will answer 503 until it exists
                    logger("altwebsocket.server").error(
                        "cannot create the data folder %s: %s", self.settings.data, exc)
            self.storage = AltWebSocketStorage(
                storage or self.settings.storage_url(),
                busy_timeout=self.settings.busy_timeout,
                journal_mode=self.settings.journal_mode,
            )
        self._wake_dir: Optional[str] = None
        self._wsgi: Any = None
        self.local_sink: Optional[LocalSink] = None
        self.stopping = False  # set by shutdown(): streams of this process end
        self.active_streams = 0  # streams of this process being served now

    # --- plumbing ----------------------------------------------------------------------

    def shutdown(self, timeout: float = 2.0) -> None:
        """End every open stream of this process (their clients resume with
        ``Last-Event-ID``) and wait up to ``timeout`` s for them to let go of the storage."""
        self.stopping = True
        deadline = time.monotonic() + timeout
        while self.active_streams and time.monotonic() < deadline:
            time.sleep(0.02)

    @property
    def wake_dir(self) -> str:
        """The folder of the wake-up sockets (created on first use)."""
        if self._wake_dir is None:
            self._wake_dir = wake_folder(self.settings.data)
        return self._wake_dir

    @property
    def wsgi_app(self) -> Callable[..., Any]:
        """The HTTP endpoints of every app, as a WSGI application (``/<app>/...``)."""
        if self._wsgi is None:
            from .wsgi import WSGIApp

            self._wsgi = WSGIApp(self)
        return self._wsgi

    def handler(self, app: str) -> AltWebSocketHandler:
        """The handler of ``app`` or :class:`UnknownConnection` (404)."""
        try:
            return self.handlers[app]
        except KeyError:
            raise UnknownConnection(f"no app named {app!r}") from None

    def _call(self, conn: AltWebSocketConnection, callback: str, *args: Any) -> None:
        handler = self.handlers.get(conn.app)
        if handler is None:
            return
        try:
            getattr(handler, callback)(conn, *args)
        except StorageUnavailable:
            raise  # not the handler's bug: the whole operation fails with a 503
        except Exception as exc:  # the handler's bug must not break the protocol
            if conn._ctx.tx.failed is not None:
                raise StorageUnavailable("the storage is unavailable") from exc
            if callback == "on_error":
                logger("altwebsocket.server").exception("on_error of %s raised", conn.app)
                return
            try:
                handler.on_error(conn, exc)
            except Exception:
                logger("altwebsocket.server").exception("on_error of %s raised", conn.app)

    def run(self, operation: Callable[[Context], Any]) -> Any:
        """Run ``operation`` in one transaction, then wake the streams that got events."""
        with self.storage.transaction() as tx:
            ctx = Context(self, tx)
            result = operation(ctx)
            if tx.overflow:
                ctx.close_overflowing()
        if tx.woken:
            send_hints(tx.woken)
        if ctx.local and self.local_sink is not None:
            self.local_sink.deliver(ctx.local)
        return result

    def _owned(self, tx: Transaction, app: str, conn_id: str, token: str) -> ConnectionRecord:
        record = tx.connection(conn_id)
        if record is None or record.app != app:
            raise UnknownConnection("no such connection")
        if not record.token_matches(token):
            raise Forbidden("wrong token for this connection")
        return record

    # --- operations --------------------------------------------------------------------

    def open(
        self,
        app: str,
        request: wire.NewRequest = wire.NewRequest(),
        origin: Optional[str] = None,
        transport: str = "emulation",
        client_addr: Optional[str] = None,
    ) -> Opened:
        """``/new``: create a connection and run ``on_open``.

        ``client_addr`` is the client's address: over ``max_connections_per_ip`` open
        connections from it, :class:`RateLimited` (429).
        """
        handler = self.handler(app)
        self.maybe_sweep()
        token = new_token()
        limit = self.settings.max_connections_per_ip

        def operation(ctx: Context) -> Opened:
            if limit and client_addr and ctx.tx.count_open_from(client_addr) >= limit:
                raise RateLimited(f"too many open connections from your address (limit "
                                  f"{limit})", retry_after=10)
            protocol = handler.select_protocol(request.protocols)
            record = ctx.tx.insert_connection(app, token, protocol, origin, transport,
                                              client_addr)
            conn = ctx.wrap(record)
            self._call(conn, "on_open")
            return Opened(record.id, token, protocol)

        return self.run(operation)  # type: ignore[no-any-return]

    def receive(self, app: str, request: wire.SendRequest) -> int:
        """``/send``: deliver new messages to ``on_message`` in seq order; returns the ack."""
        self.handler(app)

        def operation(ctx: Context) -> int:
            record = self._owned(ctx.tx, app, request.id, request.token)
            transition(record.state, Input.MESSAGE)
            decision = accept_seqs(record.last_seq, [m.seq for m in request.messages])
            new = request.messages[decision.deliver_from :]
            bucket = self._take_tokens(record, len(new), ctx.tx.now) if new else None
            conn = ctx.wrap(record)
            for message in new:
                if conn.state != State.OPEN:
                    break  # closed by the handler: later messages are dropped, as after a close
                self._call(conn, "on_message", message.data)
            ctx.tx.set_last_seq(record.id, decision.ack, bucket)
            return decision.ack

        return self.run(operation)  # type: ignore[no-any-return]

    def _take_tokens(self, record: ConnectionRecord, count: int, now: float
                     ) -> Optional[Tuple[float, float]]:
        """The token bucket of ``max_rate`` after ``count`` new messages, or
        :class:`RateLimited` (429) when the connection has no token left.

        The bucket holds up to ``rate_burst`` tokens (default: two seconds' worth) and
        refills at ``max_rate`` per second. A request is accepted while the bucket holds at
        least one token, and takes one per new message even below zero, so a batch larger
        than the burst passes once and the connection then waits its debt off. Retries of
        seqs already accepted take none.
        """
        rate = self.settings.max_rate
        if rate <= 0:
            return None
        burst = self.settings.rate_burst or 2 * rate
        tokens = burst if record.rate_tokens is None else float(record.rate_tokens)
        if record.rate_at is not None:
            tokens = min(burst, tokens + max(0.0, now - float(record.rate_at)) * rate)
        if tokens < 1:
            raise RateLimited(f"over {rate:g} messages per second on this connection",
                              retry_after=(1 - tokens) / rate)
        return tokens - count, now

    def close(self, app: str, request: wire.CloseRequest) -> bool:
        """``/close``: close the connection, echo the close event, run ``on_close``.

        Returns ``False`` when it was already closed (a retried ``/close`` is harmless).
        """
        self.handler(app)

        def operation(ctx: Context) -> bool:
            record = self._owned(ctx.tx, app, request.id, request.token)
            if record.state != State.OPEN:
                return False
            transition(record.state, Input.CLIENT_CLOSE)
            conn = ctx.wrap(record)
            ctx.close(conn, request.code, request.reason,
                      wire.close_payload(request.code, request.reason))
            return True

        return self.run(operation)  # type: ignore[no-any-return]

    def disconnect(self, app: str, conn_id: str, code: int = ABNORMAL, reason: str = "") -> bool:
        """Close a connection whose transport ended (1006 when the client vanished, 1001
        when the server goes away); runs ``on_close``. ``False`` if it was already closed."""
        self.handler(app)

        def operation(ctx: Context) -> bool:
            record = ctx.tx.connection(conn_id)
            if record is None or record.app != app or record.state != State.OPEN:
                return False
            ctx.close(ctx.wrap(record), code, reason, wire.close_payload(code, reason))
            return True

        return self.run(operation)  # type: ignore[no-any-return]

    def open_stream(
        self, app: str, conn_id: str, token: str, last_event_id: int
    ) -> Optional["EventStream"]:
        """The event stream of a connection, or ``None`` when there is nothing more to send
        (closed, and the client saw the close event: answered 204)."""
        self.handler(app)
        record = self.storage.connection(conn_id)
        if record is None or record.app != app:
            raise UnknownConnection("no such connection")
        if not record.token_matches(token):
            raise Forbidden("wrong token for this connection")
        transition(record.state, Input.STREAM)
        after = check_resume(last_event_id, record.last_event)
        if record.state == State.CLOSED and after >= record.last_event:
            return None
        if count_streams(self.wake_dir) >= self.settings.max_streams:
            if count_streams(self.wake_dir, clean=True) >= self.settings.max_streams:
                raise Overloaded("too many open streams, retry later", retry_after=2)
        return EventStream(self, record, after)

    def push(self, app: str, message: wire.Message) -> int:
        """Send ``message`` to every open connection of ``app`` from outside any callback
        (a cron job, another web page); returns how many connections got it."""
        self.handler(app)
        kind, payload = wire.payload_for(message)
        return self.run(lambda ctx: ctx.enqueue_app(app, kind, payload, None))  # type: ignore

    # --- housekeeping ------------------------------------------------------------------

    def maybe_sweep(self) -> None:
        """Run :meth:`sweep` if no process did in the last ``sweep_interval`` seconds."""
        now = time.time()
        if now - getattr(self, "_last_sweep_check", 0.0) < self.settings.sweep_interval / 2:
            return
        self._last_sweep_check = now
        self.sweep(force=False)

    def sweep(self, force: bool = True) -> Tuple[int, int]:
        """Close connections whose client is gone (1006) and purge old closed ones.

        Returns ``(closed, purged)``. Runs ``on_close`` for each gone connection of the apps
        this server serves.
        """
        settings = self.settings

        def operation(ctx: Context) -> Tuple[int, int]:
            now = ctx.tx.now
            if not force:
                last = float(ctx.tx.meta_get("last_sweep") or 0)
                if now - last < settings.sweep_interval:
                    return (0, 0)
            ctx.tx.meta_set("last_sweep", repr(now))
            closed = 0
            stale = now - max(3 * settings.heartbeat, settings.gone_timeout)
            for conn_id in ctx.tx.gone_connections(now - settings.gone_timeout, stale):
                record = ctx.tx.connection(conn_id)
                if record is None or record.app not in self.handlers:
                    continue
                conn = ctx.wrap(record)
                ctx.close(conn, ABNORMAL, "", wire.close_payload(ABNORMAL, ""))
                closed += 1
            purged = ctx.tx.purge_closed(now - settings.keep_closed)
            return closed, purged

        result: Tuple[int, int] = self.run(operation)
        if result[1]:
            self.storage.checkpoint()
        return result


_count_lock = allocate_lock()


class EventStream:
    """The SSE body of ``GET B/?id=…``: an iterator of byte chunks, one per write.

    :meth:`start` registers the stream in the storage (so a storage failure is still a clean
    503 before any byte is sent); iterating starts it if needed. The body starts with a
    ``retry:`` line and a comment (so proxies and ``wsgiref`` send the headers at once),
    sends the events after the resume point as they are queued, a comment every
    ``heartbeat`` seconds, and ends after the close event, after ``stream_lifetime``, or
    when the storage fails (the client resumes with ``Last-Event-ID``).
    """

    def __init__(self, server: AltWebSocketServer, record: ConnectionRecord, after: int) -> None:
        self.server = server
        self.record = record
        self.cursor = after
        self.closed = False
        self._wake: Optional[WakeSocket] = None
        self._iterating = False

    def start(self) -> None:
        """Bind the wake-up socket, record it as the connection's waker, and discard the
        events the client has seen (raises :class:`StorageUnavailable` on failure)."""
        if self._wake is not None:
            return
        server = self.server
        wake = WakeSocket(server.wake_dir)
        try:
            with server.storage.transaction() as tx:
                tx.set_waker(self.record.id, wake.path, self.cursor)
            server.storage.discard_events(self.record.id, self.cursor)
        except BaseException:
            wake.close()
            raise
        self._wake = wake
        with _count_lock:
            server.active_streams += 1

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
            logger("altwebsocket.server").warning(
                "stream of %s ended early: %s", self.record.id, exc.message)
        finally:
            self._release(wake)

    def _events(self, wake: WakeSocket) -> Iterator[bytes]:
        server, settings, storage = self.server, self.server.settings, self.server.storage
        conn_id = self.record.id
        # record how far the stream got every so many events, so a reading client never
        # counts as one that does not read (max_events_queued)
        report_every = max(1, settings.max_events_queued // 4)
        reported = self.cursor
        yield encode_retry(settings.retry_ms) + encode_comment("altws")
        start = time.monotonic()
        deadline = start + settings.stream_lifetime
        next_beat = start + settings.heartbeat
        version = storage.data_version()
        check = True
        while True:
            if check:
                while True:
                    events = storage.events_after(conn_id, self.cursor)
                    if events:
                        chunk = b"".join(wire.event_for(*event).encode() for event in events)
                        self.cursor = events[-1][0]
                        if self.cursor - reported >= report_every:  # (a write stuck below
                            with storage.transaction() as tx:       # holds one chunk only)
                                tx.set_waker(conn_id, wake.path, self.cursor)
                            reported = self.cursor
                        yield chunk
                        if any(kind == wire.CLOSE for _, kind, _ in events):
                            self.closed = True
                            return
                    if len(events) < 200:
                        break
            now = time.monotonic()
            if now >= deadline or server.stopping:
                return
            if now >= next_beat:
                yield encode_comment()
                next_beat = now + settings.heartbeat
                with storage.transaction() as tx:
                    tx.set_waker(conn_id, wake.path, self.cursor)
                reported = self.cursor
                server.maybe_sweep()
                check = True
                continue
            timeout = min(deadline, next_beat, now + settings.poll_interval) - now
            check = bool(wake.wait(min(timeout, 0.25) if server.stopping else timeout))
            if not check:
                current = storage.data_version()
                check = current is None or current != version
                version = current

    def _release(self, wake: WakeSocket) -> None:
        try:
            with self.server.storage.transaction() as tx:
                record = tx.connection(self.record.id)
                if record is not None and record.waker == wake.path:
                    tx.set_waker(self.record.id, None, self.cursor)
        except Exception as exc:  # the process may be going down; the sweep will notice
            logger("altwebsocket.server").debug(
                "could not release the stream of %s: %s", self.record.id, exc)
        finally:
            wake.close()
            with _count_lock:
                self.server.active_streams -= 1
