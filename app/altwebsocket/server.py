"""AltWebSocketServer: the apps, the storage, and the operations every transport performs.

A transport (the HTTP endpoints in :mod:`.transports.http`, the daemon in
:mod:`.transports.websocket`) parses its input, authenticates its client, calls one operation
here by connection id — :meth:`~AltWebSocketServer.open`, :meth:`~AltWebSocketServer.receive`,
:meth:`~AltWebSocketServer.close`, :meth:`~AltWebSocketServer.disconnect` — and writes out
the result. Each operation runs the handler callbacks inside one storage transaction (a
:class:`Context`, the :class:`~altwebsocket.handler.UnitOfWork` of the handler API), then
sends wake-up hints to the processes waiting for the connections that got events.

Nothing here speaks HTTP or WebSocket: no request objects, no secrets, no streams. A
transport that holds connections in this process (the daemon) registers as the
:class:`LocalSink`, and events for those connections skip the storage. A stream held by this
process (an SSE body of the HTTP transport) registers as a :class:`LocalStream` under its
waker address: the events an operation queued for it are stored as always, and handed to it
straight after the commit, before the operation returns (its client gets the event before
the answer to its POST; the stream does not read back what was just written).
"""

from __future__ import annotations

import os
import time

from ._lazy import TYPE_CHECKING, logger
from .config import Settings, handlers_from
from .exceptions import (
    ConfigError,
    ConnectionClosed,
    RateLimited,
    StorageUnavailable,
    UnknownConnection,
)
from .handler import AltWebSocketConnection, AltWebSocketHandler, UnitOfWork
from .protocol import messages as wire
from .protocol.close import CloseCode
from .protocol.rate import take_tokens
from .protocol.session import SESSION_APP
from .protocol.state import Input, State, accept_seqs, transition
from .storage import AltWebSocketStorage, ConnectionRecord, Transaction
from .storage.wake import send_hints, wake_folder

if TYPE_CHECKING:
    from _thread import LockType
    from collections.abc import Mapping, Sequence
    from typing import Any, Callable, TypeVar

    from .protocol.messages import InboundMessage, Message

    Authorize = Callable[[ConnectionRecord], None]
    T = TypeVar("T")

    from .storage.api import StoredEvent

__all__ = ["AltWebSocketServer", "Context", "LocalSink", "LocalStream", "Opened"]

DEADLOCK_RETRIES = 2
"""How many times an operation is run again when the database aborts it as a deadlock."""

HANDOFF_WAIT = 0.002
"""Seconds an operation waits, in all, for the streams of this process it handed events to
to write them out before it returns (so the POST's own answer follows its echo)."""


class LocalSink:
    """A transport that holds some connections in this process (the native daemon).

    Events for those connections skip the storage: they are handed to :meth:`deliver` after
    the transaction commits, in order. Close events always go through the storage.
    """

    def owns(self, conn_id: str) -> bool:
        """Whether this process holds ``conn_id`` live."""
        raise NotImplementedError

    def deliver(self, events: list[tuple[str, int, bytes]]) -> None:
        """Send these ``(conn_id, kind, payload)`` events, committed just now."""
        raise NotImplementedError


class LocalStream:
    """A stream held by this process, registered under its waker address with
    :meth:`AltWebSocketServer.hold_stream`: it is handed the events committed for it."""

    def offer(self, events: list[StoredEvent], own: bool = False,
              queues: Sequence[str] = ()) -> LockType | bool:
        """Take these events (committed just now, in order). Returns a held lock that is
        released once they are written out, ``True`` if they are written already, or
        ``False`` if not taken (then the caller sends a hint: the stream reads them).
        ``own``: the operation serves this stream's client (it may write them itself).
        ``queues``: for each event, the queue it is on (the stream's own; a transport that
        holds many connections under one waker, the daemon, tells them apart by it)."""
        raise NotImplementedError


class Context(UnitOfWork):
    """One operation: its transaction, the connections it has seen and their states.

    Given ``begin`` instead of a transaction, the transaction starts only when something
    needs the storage (:attr:`tx`): an operation whose handler only sends to connections
    held in this process (:class:`LocalSink`) runs without one (the daemon's hot path,
    :meth:`AltWebSocketServer.receive_held`)."""

    def __init__(self, server: AltWebSocketServer, tx: Transaction | None = None,
                 begin: Callable[[], Transaction] | None = None) -> None:
        self.server = server
        self._tx = tx
        self._begin = begin
        if tx is not None:
            tx.max_queued = server.settings.max_events_queued
        self.begin_error: BaseException | None = None  # what a lazy start raised
        self._connections: dict[str, AltWebSocketConnection] = {}
        self._states: dict[str, State] = {}
        self.local: list[tuple[str, int, bytes]] = []

    @property
    def tx(self) -> Transaction:
        """The operation's transaction (started now if it has none yet)."""
        tx = self._tx
        if tx is None:
            assert self._begin is not None
            try:
                tx = self._begin()
            except BaseException as exc:
                self.begin_error = exc  # not the handler's error: the operation's
                raise
            tx.max_queued = self.server.settings.max_events_queued
            self._tx = tx
        return tx

    @property
    def began(self) -> Transaction | None:
        """The transaction, if one was started."""
        return self._tx

    def wrap(self, record: ConnectionRecord) -> AltWebSocketConnection:
        """The one connection object of this operation for ``record``."""
        conn = self._connections.get(record.id)
        if conn is None:
            conn = AltWebSocketConnection(self, record.id, record.app, record.protocol,
                                          record.transport)
            self._connections[record.id] = conn
            self._states[record.id] = record.state
        return conn

    def _wrap_id(self, conn_id: str) -> AltWebSocketConnection | None:
        conn = self._connections.get(conn_id)
        if conn is None:
            record = self.tx.connection(conn_id)
            if record is None:
                return None
            conn = self.wrap(record)
        return conn

    # --- UnitOfWork --------------------------------------------------------------------

    def state_of(self, conn_id: str) -> State:
        """The state of a connection this operation has seen."""
        return self._states.get(conn_id, State.CLOSED)

    def send(self, conn_id: str, kind: int, payload: bytes) -> bool:
        """Queue an event for one connection (in memory if this process holds it natively)."""
        sink = self.server.local_sink
        if sink is not None and kind != wire.CLOSE and sink.owns(conn_id):
            self.local.append((conn_id, kind, payload))  # delivered after the commit
        else:
            self.tx.enqueue(conn_id, kind, payload)
        return True

    def broadcast(self, app: str, kind: int, payload: bytes, exclude: str | None) -> int:
        """Queue an event for every open connection of an app."""
        return self.tx.enqueue_app(app, kind, payload, exclude)

    def open_connections(self, app: str) -> list[AltWebSocketConnection]:
        """The open connections of ``app``."""
        out = []
        for conn_id in self.tx.open_connection_ids(app):
            conn = self._wrap_id(conn_id)
            if conn is not None and self.state_of(conn_id) == State.OPEN:
                out.append(conn)
        return out

    def close(self, conn: AltWebSocketConnection, code: int, reason: str) -> None:
        """Close ``conn``: queue the close event, mark it closed, run ``on_close``."""
        if conn.transport == SESSION:
            self.close_session(conn.id, code, reason)
            return
        code = int(code)
        self._store_local(conn.id)  # what it was sent in memory must not overtake its close
        self.tx.enqueue(conn.id, *wire.close_payload(code, reason))
        self.tx.set_closed(conn.id, code, reason)
        self._states[conn.id] = State.CLOSED
        self.server._call(self, conn, "on_close", code, reason)

    def _store_local(self, conn_id: str) -> None:
        """Queue in the storage, in order, the in-memory events of this operation for
        ``conn_id`` (its close goes through the storage: both then arrive in the order the
        app made them)."""
        if any(event[0] == conn_id for event in self.local):
            for event in self.local:
                if event[0] == conn_id:
                    self.tx.enqueue(*event)
            self.local = [event for event in self.local if event[0] != conn_id]

    def close_session(self, session_id: str, code: int, reason: str) -> None:
        """Close every open connection of a session with ``code``, then the session: its
        own last event (``event: end``) ends its stream."""
        for conn_id in self.tx.session_connection_ids(session_id):
            conn = self._wrap_id(conn_id)
            if conn is not None and self.state_of(conn_id) == State.OPEN:
                self.close(conn, code, reason)
        self.tx.enqueue(session_id, *wire.close_payload(int(code), reason))
        self.tx.set_closed(session_id, int(code), reason)
        self._states[session_id] = State.CLOSED

    def log_append(self, app: str, key: str, value: str, keep: int | None) -> None:
        """Append to an app's log."""
        self.tx.log_append(app, key, value, keep)

    def log_recent(self, app: str, key: str, count: int) -> list[str]:
        """The end of an app's log."""
        return self.tx.log_recent(app, key, count)

    def kv_get(self, app: str, key: str) -> str | None:
        """An app's value."""
        return self.tx.kv_get(app, key)

    def kv_set(self, app: str, key: str, value: str | None) -> None:
        """Set an app's value."""
        self.tx.kv_set(app, key, value)

    # --- limits ------------------------------------------------------------------------

    def close_overflowing(self) -> int:
        """Close (1008) the open connections that now hold more than ``max_events_queued``
        events their client has not read: a client that never reads must not fill the disk.
        Their ``on_close`` may queue more events, so this repeats until none is left."""
        closed = 0
        overflow = self.tx.overflow
        while overflow:
            conn_id = next(iter(overflow))
            del overflow[conn_id]
            conn = self._wrap_id(conn_id)
            if conn is None or self.state_of(conn_id) != State.OPEN:
                continue
            logger("altwebsocket.server").warning(
                "closing %s/%s: over %d undelivered events", conn.app, conn.id,
                self.tx.max_queued)
            self.close(conn, CloseCode.POLICY_VIOLATION, "too many undelivered events")
            closed += 1
        return closed


SESSION = "session"
"""The ``transport`` of a session's row (wire protocol version 2: one per browser)."""


class Opened:
    """The result of :meth:`AltWebSocketServer.open`: the new connection's id and the chosen
    subprotocol."""

    __slots__ = ("id", "protocol")

    def __init__(self, conn_id: str, protocol: str) -> None:
        self.id = conn_id
        self.protocol = protocol


class AltWebSocketServer:
    """The server: named apps (handlers) over one storage.

    Args:
        apps: app name to handler instance (or ``module:Class`` string).
        storage: an :class:`AltWebSocketStorage` or an SQLAlchemy URL; default: an SQLite file
            in ``settings.data``.
        settings: limits and timings (:class:`~altwebsocket.config.Settings`); keyword arguments
            given here override its fields.
        clock: the time in seconds, read once per operation (tests pass a fake one).
    """

    def __init__(
        self,
        apps: Mapping[str, AltWebSocketHandler | str] | None = None,
        storage: AltWebSocketStorage | str | None = None,
        settings: Settings | None = None,
        clock: Callable[[], float] = time.time,
        **options: Any,
    ) -> None:
        self.settings = (settings or Settings()).replace(**options).validate()
        self.clock = clock
        if apps is None:
            apps = dict(self.settings.apps)
        handlers: dict[str, Any] = handlers_from(
            {name: spec for name, spec in apps.items() if isinstance(spec, str)}
        )
        for name, handler in apps.items():
            if not isinstance(handler, str):
                handlers[name] = handler
        for name, handler in handlers.items():
            if not isinstance(handler, AltWebSocketHandler):
                raise ConfigError(f"app {name!r} is not an AltWebSocketHandler")
        self.handlers: dict[str, AltWebSocketHandler] = handlers
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
                clock=clock,
            )
        self._wake_dir: str | None = None
        self._last_sweep_check = 0.0
        self.local_sink: LocalSink | None = None
        self._streams_here: dict[str, LocalStream] = {}  # waker address -> stream

    # --- plumbing ----------------------------------------------------------------------

    @property
    def wake_dir(self) -> str:
        """The folder of the wake-up sockets of this host (created on first use)."""
        if self._wake_dir is None:
            self._wake_dir = wake_folder(self.settings.data)
        return self._wake_dir

    def handler(self, app: str) -> AltWebSocketHandler:
        """The handler of ``app`` or :class:`UnknownConnection` (404)."""
        try:
            return self.handlers[app]
        except KeyError:
            raise UnknownConnection(f"no app named {app!r}") from None

    def _call(self, ctx: Context, conn: AltWebSocketConnection, callback: str,
              *args: Any) -> None:
        handler = self.handlers.get(conn.app)
        if handler is None:
            return
        try:
            getattr(handler, callback)(conn, *args)
        except StorageUnavailable:
            raise  # not the handler's bug: the whole operation fails with a 503
        except Exception as exc:  # the handler's bug must not break the protocol
            if exc is ctx.begin_error:
                raise  # the operation's own transaction could not start: not the handler's
            tx = ctx.began
            if tx is not None and tx.failed is not None:  # the storage failed under it
                raise tx.unavailable() from exc
            if callback == "on_error":
                logger("altwebsocket.server").exception("on_error of %s raised", conn.app)
                return
            try:
                handler.on_error(conn, exc)
            except Exception:
                logger("altwebsocket.server").exception("on_error of %s raised", conn.app)

    def hold_stream(self, address: str, stream: LocalStream | None) -> None:
        """Register (or with ``None`` forget) a stream of this process waiting on the waker
        ``address``: events committed for it here are handed to it."""
        if stream is None:
            self._streams_here.pop(address, None)
        else:
            self._streams_here[address] = stream

    def stream_here(self, address: str) -> LocalStream | None:
        """The stream of this process waiting on the waker ``address``, if any."""
        return self._streams_here.get(address)

    def run(self, operation: Callable[[Context], T], client: str | None = None) -> T:
        """Run ``operation`` in one transaction, then wake the streams that got events.
        ``client``: the connection whose client asked for it (its own stream's events may
        be written by this thread). A transaction the database aborted to break a deadlock
        is run once more (its callbacks too: nothing of the first run was kept)."""
        for attempt in range(DEADLOCK_RETRIES + 1):
            try:
                with self.storage.transaction() as tx:
                    ctx = Context(self, tx)
                    result = operation(ctx)
                    if tx.overflow:
                        ctx.close_overflowing()
                    own = tx.stream_of(client) if client is not None and tx.woken else None
                break
            except StorageUnavailable as exc:
                if not exc.deadlock or attempt == DEADLOCK_RETRIES:
                    raise
        self._committed(ctx, own)
        return result

    def _committed(self, ctx: Context, own: str | None = None) -> None:
        """After an operation's commit: hand its events to this process's streams, hint the
        others', deliver its in-memory ones (:class:`LocalSink`)."""
        tx = ctx.began
        if tx is not None and tx.woken:
            self._wake(tx, own)
        if ctx.local and self.local_sink is not None:
            self.local_sink.deliver(ctx.local)

    def _wake(self, tx: Transaction, own: str | None = None) -> None:
        """Hand the committed events to this process's streams (``own``: the row id of the
        stream of the client this operation serves); hint the others."""
        here = self._streams_here
        if not here:
            send_hints(tx.woken)
            return
        hints: dict[str, list[str]] = {}
        written: list[LockType] = []
        for address, ids in tx.woken.items():
            stream = here.get(address)
            taken = False if stream is None else \
                stream.offer(tx.queued[address], own in ids, ids)
            if taken is False:  # another process's, or not taking more: it reads the storage
                hints[address] = ids
            elif taken is not True:
                written.append(taken)
        if hints:
            send_hints(hints)
        if written:
            deadline = time.monotonic() + HANDOFF_WAIT
            for lock in written:
                left = deadline - time.monotonic()
                if left <= 0 or not lock.acquire(timeout=left):
                    break

    @staticmethod
    def _record(ctx: Context, app: str, conn_id: str, authorize: Authorize | None
                ) -> ConnectionRecord:
        record = ctx.tx.connection(conn_id, lock=True)
        if record is None or record.app != app:
            raise UnknownConnection("no such connection" if app != SESSION_APP
                                    else "no such session")
        if authorize is not None:
            authorize(record)
        return record

    # --- operations --------------------------------------------------------------------

    def open(
        self,
        app: str,
        protocols: Sequence[str] = (),
        origin: str | None = None,
        transport: str = "emulation",
        client_addr: str | None = None,
        token_hash: str = "",
        session: tuple[str, str, Authorize | None] | None = None,
    ) -> Opened:
        """Create a connection and run ``on_open``.

        Args:
            app: the app's name (404 if there is none).
            protocols: the subprotocols the client offers, in its order of preference.
            origin: the page's origin, recorded with the connection.
            transport: ``"emulation"`` or ``"websocket"``.
            client_addr: the client's address: over ``max_connections_per_ip`` open
                connections from it, :class:`RateLimited` (429).
            token_hash: what the transport will recognise the client by (stored as is).
            session: ``(session_id, ref, authorize)`` to open the connection in a session
                (version 2) under the name ``ref``; ``authorize`` checks the session's
                record. Opening a ref the session already has returns that connection and
                runs nothing (a retried open is harmless).
        """
        handler = self.handler(app)
        self.maybe_sweep()
        limit = self.settings.max_connections_per_ip

        def operation(ctx: Context) -> Opened:
            session_id = ref = None
            if session is not None:
                session_id, ref, check = session
                owner = self._record(ctx, SESSION_APP, session_id, check)
                if owner.state != State.OPEN:
                    raise ConnectionClosed("the session is closed")
                existing = ctx.tx.session_connection(session_id, ref)
                if existing is not None:
                    if existing.app != app:
                        raise UnknownConnection(f"ref {ref!r} names a connection of another "
                                                "app in this session")
                    return Opened(existing.id, existing.protocol)
            if limit and client_addr and ctx.tx.count_open_from(client_addr) >= limit:
                raise RateLimited(f"too many open connections from your address (limit "
                                  f"{limit})", retry_after=10)
            protocol = handler.select_protocol(protocols)
            record = ctx.tx.insert_connection(app, token_hash, protocol, origin, transport,
                                              client_addr, session_id, ref)
            self._call(ctx, ctx.wrap(record), "on_open")
            return Opened(record.id, protocol)

        return self.run(operation)

    def open_session(self, token_hash: str, origin: str | None = None,
                     client_addr: str | None = None) -> str:
        """Create a session (wire protocol version 2: one per browser, its one stream carrying
        the events of many connections); returns its id. It counts as one connection of
        ``client_addr`` for ``max_connections_per_ip``."""
        self.maybe_sweep()
        limit = self.settings.max_connections_per_ip

        def operation(ctx: Context) -> str:
            if limit and client_addr and ctx.tx.count_open_from(client_addr) >= limit:
                raise RateLimited(f"too many open connections from your address (limit "
                                  f"{limit})", retry_after=10)
            return ctx.tx.insert_connection(SESSION_APP, token_hash, "", origin, SESSION,
                                            client_addr).id

        return self.run(operation)

    def close_session(self, session_id: str, code: int = CloseCode.GOING_AWAY,
                      reason: str = "", authorize: Authorize | None = None,
                      unless_open: Sequence[str] = ()) -> str:
        """Close a session and every open connection in it (``code``, 1001 by default: the
        browser went away): ``"closed"``, or ``"already_closed"``.

        With ``unless_open`` (refs of the session's connections), the session is kept open
        (``"kept"``) if any of them is open, or not known yet (its ``open`` may be on its
        way): the goodbye of a tab that is not sure it is the last."""

        def operation(ctx: Context) -> str:
            record = self._record(ctx, SESSION_APP, session_id, authorize)
            if record.state != State.OPEN:
                return "already_closed"
            if unless_open and not ctx.tx.session_refs_closed(session_id, unless_open):
                return "kept"
            ctx.wrap(record)
            ctx.close_session(session_id, code, reason)
            return "closed"

        return self.run(operation)

    def receive(self, app: str, conn_id: str, messages: Sequence[InboundMessage],
                authorize: Authorize | None = None) -> int:
        """Deliver new messages to ``on_message`` in seq order; returns the ack.

        ``authorize`` is the transport's check of its client, called with the connection's
        record inside the transaction (it raises to refuse).
        """
        self.handler(app)

        def operation(ctx: Context) -> int:
            record = self._record(ctx, app, conn_id, authorize)
            transition(record.state, Input.MESSAGE)
            decision = accept_seqs(record.last_seq, [m.seq for m in messages])
            new = messages[decision.deliver_from :]
            bucket = self._take_tokens(record, len(new), ctx.tx.now) if new else None
            conn = ctx.wrap(record)
            for message in new:
                if ctx.state_of(conn.id) != State.OPEN:
                    break  # closed by the handler: later messages are dropped, as after a close
                self._call(ctx, conn, "on_message", message.data)
            ctx.tx.set_last_seq(record.id, decision.ack, bucket)
            return decision.ack

        return self.run(operation, client=conn_id)

    def receive_held(self, app: str, conn_id: str, protocol: str, message: Message,
                     bucket: tuple[float, float] | None = None) -> tuple[float, float] | None:
        """A message from a native connection this process holds (its :class:`LocalSink`,
        the daemon): the hot path. The connection's seq and rate bucket live in the
        transport's memory (a native socket has no retries to deduplicate, and no other
        process receives its messages); ``on_message`` runs without a transaction as long as
        the handler only sends to connections held here (those events skip the storage
        anyway). The first thing that needs the storage starts one, which first checks,
        under the row's lock, that the connection is still open (:class:`ConnectionClosed`
        if another process closed it); everything then commits together, as in
        :meth:`receive`. Returns the new bucket (:class:`RateLimited` when empty)."""
        self.handler(app)
        rate = self.settings.max_rate
        if rate > 0:
            tokens, at = bucket if bucket is not None else (None, None)
            bucket = take_tokens(tokens, at, 1, self.clock(), rate, self.settings.rate_burst)
        storage = self.storage
        for attempt in range(DEADLOCK_RETRIES + 1):
            started: list[Transaction] = []

            def begin(started: list[Transaction] = started) -> Transaction:
                tx = storage.begin()
                started.append(tx)  # (ended below, whatever happens next)
                record = tx.connection(conn_id, lock=True)
                if record is None or record.app != app:
                    raise UnknownConnection("no such connection")
                transition(record.state, Input.MESSAGE)
                return tx

            ctx = Context(self, begin=begin)
            conn = AltWebSocketConnection(ctx, conn_id, app, protocol, "websocket")
            ctx._connections[conn_id] = conn
            ctx._states[conn_id] = State.OPEN
            try:
                try:
                    self._call(ctx, conn, "on_message", message)
                    if ctx.begin_error is not None:  # (a handler that swallowed it)
                        raise ctx.begin_error
                    if started and started[0].overflow:
                        ctx.close_overflowing()
                except BaseException as exc:
                    if started:
                        storage.end(started[0], exc)  # rolls back; raises exc (or a 503)
                    raise
                if started:
                    storage.end(started[0], None)
                break
            except StorageUnavailable as exc:
                if not exc.deadlock or attempt == DEADLOCK_RETRIES:
                    raise
        self._committed(ctx)
        return bucket

    def _take_tokens(self, record: ConnectionRecord, count: int, now: float
                     ) -> tuple[float, float] | None:
        """The connection's token bucket after ``count`` new messages (see
        :mod:`~altwebsocket.protocol.rate`), or ``None`` without ``max_rate``."""
        rate = self.settings.max_rate
        if rate <= 0:
            return None
        return take_tokens(record.rate_tokens, record.rate_at, count, now, rate,
                           self.settings.rate_burst)

    def close(self, app: str, conn_id: str, code: int = CloseCode.NO_STATUS, reason: str = "",
              authorize: Authorize | None = None) -> bool:
        """The client closes: record the close, echo the close event, run ``on_close``.

        Returns ``False`` when it was already closed (a retried close is harmless).
        """
        self.handler(app)

        def operation(ctx: Context) -> bool:
            record = self._record(ctx, app, conn_id, authorize)
            if record.state != State.OPEN:
                return False
            transition(record.state, Input.CLIENT_CLOSE)
            ctx.close(ctx.wrap(record), code, reason)
            return True

        return self.run(operation)

    def disconnect(self, app: str, conn_id: str, code: int = CloseCode.ABNORMAL,
                   reason: str = "") -> bool:
        """Close a connection whose transport ended (1006 when the client vanished, 1001
        when the server goes away); runs ``on_close``. ``False`` if it was already closed."""
        self.handler(app)

        def operation(ctx: Context) -> bool:
            record = ctx.tx.connection(conn_id, lock=True)
            if record is None or record.app != app or record.state != State.OPEN:
                return False
            ctx.close(ctx.wrap(record), code, reason)
            return True

        return self.run(operation)

    def push(self, app: str, message: Message) -> int:
        """Send ``message`` to every open connection of ``app`` from outside any callback
        (a cron job, another web page); returns how many connections got it."""
        self.handler(app)
        kind, payload = wire.payload_for(message)
        return self.run(lambda ctx: ctx.broadcast(app, kind, payload, None))

    # --- housekeeping ------------------------------------------------------------------

    def maybe_sweep(self) -> None:
        """Run :meth:`sweep` if no process did in the last ``sweep_interval`` seconds."""
        now = self.clock()
        if now - self._last_sweep_check < self.settings.sweep_interval / 2:
            return
        self._last_sweep_check = now
        self.sweep(force=False)

    def sweep(self, force: bool = True) -> tuple[int, int]:
        """Close connections whose client is gone (1006) and purge old closed ones.

        Returns ``(closed, purged)``. Runs ``on_close`` for each gone connection of the apps
        this server serves.
        """
        settings = self.settings

        def operation(ctx: Context) -> tuple[int, int]:
            now = ctx.tx.now
            if not force:
                last = float(ctx.tx.meta_get("last_sweep") or 0)
                if now - last < settings.sweep_interval:
                    return (0, 0)
            ctx.tx.meta_set("last_sweep", repr(now))
            closed = 0
            stale = now - max(3 * settings.heartbeat, settings.gone_timeout)
            for conn_id in ctx.tx.gone_connections(now - settings.gone_timeout, stale):
                record = ctx.tx.connection(conn_id)  # (closed already with its session?)
                if record is None or record.state != State.OPEN or (
                        record.transport != SESSION and record.app not in self.handlers):
                    continue
                ctx.close(ctx.wrap(record), CloseCode.ABNORMAL, "")
                closed += 1
            purged = ctx.tx.purge_closed(now - settings.keep_closed)
            return closed, purged

        result: tuple[int, int] = self.run(operation)
        if result[1]:
            self.storage.checkpoint()
        return result
