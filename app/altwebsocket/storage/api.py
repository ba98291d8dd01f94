"""AltWebSocketStorage: the one storage API under every transport.

It keeps connections, the events queued for them, and application data (a log and a
key-value table per app). Every transport — the WSGI/CGI endpoints and the native daemon —
reads and writes only through it, so they share state across processes.

The storage takes a database URL (:mod:`.engine`): SQLite (``sqlite:///path``, the embedded
default), PostgreSQL or MySQL/MariaDB, each driven through its DB-API driver directly, so a
request never imports SQLAlchemy (~0.3 s under CGI, see ``docs/performance.md``). Every
statement is written once; what differs per engine is in :mod:`.dialect`.

SQLite rules kept here: writes start with ``BEGIN IMMEDIATE`` and wait ``busy_timeout`` for the
lock; readers never hold a transaction open (so WAL checkpoints run); WAL is used only on a
local filesystem, a rollback journal elsewhere (WAL must not be used over NFS).
"""

from __future__ import annotations

# the C module: sqlite3's Python part imports datetime and registers adapters we never use
import _sqlite3 as sqlite3
import binascii
import os
import time
from _operator import itemgetter
from _thread import _local, allocate_lock

from .._lazy import TYPE_CHECKING, logger
from ..exceptions import ConfigError, StorageUnavailable
from ..protocol.state import State
from .engine import Database, filesystem_type
from .schema import CONNECTION_COLUMNS

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, Callable

__all__ = [
    "AltWebSocketStorage",
    "Transaction",
    "ConnectionRecord",
    "EVENT_PAGE",
    "random_name",
    "filesystem_type",
]

EVENT_PAGE = 200
"""How many events one read returns at most (streams and the daemon read page by page)."""

if TYPE_CHECKING:  # a name for annotations only (not exported: it does not exist at run time)
    StoredEvent = tuple[int, int, bytes, str | None]
    """An event as stored: ``(event_id, kind, payload, target)``; ``target`` is the ref of
    the connection it is for when it is queued on a session, else ``None``."""

_URLSAFE = bytes.maketrans(b"+/", b"-_")


def random_name(nbytes: int) -> str:
    """``nbytes`` random bytes from the OS as URL-safe base64 without padding
    (what ``secrets.token_urlsafe`` does, without its import cost)."""
    raw = binascii.b2a_base64(os.urandom(nbytes), newline=False)
    return raw.translate(_URLSAFE).rstrip(b"=").decode("ascii")


_CONNECTION_COLUMNS = ", ".join(CONNECTION_COLUMNS)


class ConnectionRecord(tuple):  # type: ignore[type-arg]
    """One row of the connections table (the columns of ``aws_connections`` in
    :mod:`.schema`; ``state`` as a :class:`~altwebsocket.protocol.state.State`): a tuple
    whose fields are read by name, like a ``namedtuple`` (not one: ``collections`` and the
    class it builds cost a CGI request ~1 ms).

    ``token_hash`` is whatever the transport that made the connection stored to recognise
    its client (the HTTP transport: the SHA-256 of the secret token; native: empty)."""

    __slots__ = ()
    _fields = CONNECTION_COLUMNS

    def __new__(cls, *values: Any) -> ConnectionRecord:
        if len(values) != len(CONNECTION_COLUMNS):
            raise TypeError(f"a connection record has {len(CONNECTION_COLUMNS)} fields, "
                            f"not {len(values)}")
        return tuple.__new__(cls, values)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in zip(self._fields, self))
        return f"ConnectionRecord({fields})"

    # The fields' types, for type checkers: the fields themselves are CONNECTION_COLUMNS
    # (tests/test_storage.py checks that these names are the same, in the same order).
    id: str
    app: str
    token_hash: str
    protocol: str
    state: State
    created: float
    last_seen: float
    last_event: int
    last_seq: int
    close_code: int | None
    close_reason: str | None
    closed_at: float | None
    waker: str | None
    origin: str | None
    transport: str
    client_addr: str | None
    sent_event: int
    rate_tokens: float | None
    rate_at: float | None
    session_id: str | None
    session_ref: str | None


for _index, _name in enumerate(CONNECTION_COLUMNS):
    setattr(ConnectionRecord, _name, property(itemgetter(_index), doc=f"column {_name}"))


def _record(row: Sequence[Any]) -> ConnectionRecord:
    values = list(row)
    values[4] = State(values[4])
    return ConnectionRecord(*values)


class Transaction:
    """A write transaction: every change a request or callback makes, committed at once.

    Connections that got events are collected in :attr:`woken` so the caller can send
    wake-up hints to their streams after the commit, and the events themselves in
    :attr:`queued` (a stream of this process is handed them: no read of its own).
    """

    def __init__(self, storage: AltWebSocketStorage, db: Any, now: float) -> None:
        self.storage = storage
        self._db = db
        self._cursor = db.cursor()
        self.now = now  # one time for every row this transaction writes
        self.woken: dict[str, list[str]] = {}  # waker path -> connection ids
        self.queued: dict[str, list[StoredEvent]] = {}  # waker path -> its events, in order
        # max_events_queued: connections with more events beyond their sent_event are
        # collected in ``overflow`` (the server closes them with 1008); 0 = no check.
        self.max_queued = 0
        self.overflow: dict[str, None] = {}
        # The first database error of this transaction: it is rolled back even if a
        # handler caught the exception.
        self.failed: BaseException | None = None
        # connection id -> (id of the row whose queue its events go to, its session ref)
        self._routes: dict[str, tuple[str, str | None]] = {}

    def unavailable(self) -> StorageUnavailable:
        """The 503 for the database error this transaction met (:attr:`failed`)."""
        assert self.failed is not None
        return _unavailable(self.failed, log=False)

    def _run(self, statement: str, params: Sequence[Any] = ()) -> Any:
        self._call(self._cursor.execute, statement, tuple(params))
        return self._cursor

    def _run_many(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        """:meth:`_run` once per row of parameters, in one call to the driver."""
        if rows:
            self._call(self._cursor.executemany, statement, [tuple(row) for row in rows])

    def _call(self, method: Any, statement: str, params: Any) -> None:
        database = self.storage._database
        if self.failed is not None:
            # SQLite may have rolled the transaction back itself (SQLITE_FULL, SQLITE_IOERR):
            # a further statement would run, and commit, on its own. Nothing more runs.
            raise _unavailable(self.failed, log=False)
        try:
            method(database.sql(statement), params)
        except database.errors as exc:
            if self.failed is None:
                self.failed = exc
            raise _unavailable(exc) from exc

    # --- connections -------------------------------------------------------------------

    def insert_connection(
        self,
        app: str,
        token_hash: str,
        protocol: str,
        origin: str | None,
        transport: str = "emulation",
        client_addr: str | None = None,
        session_id: str | None = None,
        session_ref: str | None = None,
    ) -> ConnectionRecord:
        """Create an open connection (``token_hash``: what its transport will recognise its
        client by; never the secret itself), in session ``session_id`` as ``session_ref``
        if given."""
        conn_id = random_name(12)
        self._run(
            "INSERT INTO aws_connections (id, app, token_hash, protocol, state, created, "
            "last_seen, last_event, last_seq, origin, transport, client_addr, sent_event, "
            "session_id, session_ref) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0, ?, ?, ?, 0, ?, ?)",
            (conn_id, app, token_hash, protocol, int(State.OPEN), self.now, self.now,
             origin, transport, client_addr, session_id, session_ref),
        )
        record = self.connection(conn_id)
        assert record is not None
        return record

    def connection(self, conn_id: str, lock: bool = False) -> ConnectionRecord | None:
        """The connection's row, or ``None``; with ``lock``, the row stays locked until the
        transaction ends (concurrent senders to one connection take turns)."""
        suffix = self.storage._database.dialect.for_update if lock else ""
        row = self._run(
            f"SELECT {_CONNECTION_COLUMNS} FROM aws_connections WHERE id = ?{suffix}", (conn_id,)
        ).fetchone()
        if not row:
            return None
        record = _record(row)
        self._routes[record.id] = (record.session_id or record.id, record.session_ref)
        return record

    def session_connection(self, session_id: str, ref: str) -> ConnectionRecord | None:
        """The connection called ``ref`` in session ``session_id``, or ``None``."""
        row = self._run(
            "SELECT id FROM aws_connections WHERE session_id = ? AND session_ref = ?",
            (session_id, ref),
        ).fetchone()
        return None if row is None else self.connection(str(row[0]), lock=True)

    def session_connection_ids(self, session_id: str) -> list[str]:
        """The ids of the open connections of a session, oldest first."""
        rows = self._run(
            "SELECT id FROM aws_connections WHERE session_id = ? AND state = ? "
            "ORDER BY created, id", (session_id, int(State.OPEN)),
        ).fetchall()
        return [row[0] for row in rows]

    def open_connection_ids(self, app: str) -> list[str]:
        """The ids of the app's open connections, oldest first."""
        rows = self._run(
            "SELECT id FROM aws_connections WHERE app = ? AND state = ? ORDER BY created, id",
            (app, int(State.OPEN)),
        ).fetchall()
        return [row[0] for row in rows]

    def count_open_from(self, client_addr: str) -> int:
        """How many open connections the client address ``client_addr`` holds."""
        row = self._run(
            "SELECT COUNT(*) FROM aws_connections WHERE client_addr = ? AND state = ?",
            (client_addr, int(State.OPEN)),
        ).fetchone()
        return int(row[0])

    def set_last_seq(self, conn_id: str, seq: int,
                     rate: tuple[float, float] | None = None) -> None:
        """Record the highest client seq accepted, and that the client was seen; with
        ``rate``, also the token bucket ``(tokens, at)`` of the connection."""
        if rate is None:
            self._run(
                "UPDATE aws_connections SET last_seq = ?, last_seen = ? WHERE id = ?",
                (seq, self.now, conn_id),
            )
        else:
            self._run(
                "UPDATE aws_connections SET last_seq = ?, last_seen = ?, rate_tokens = ?, "
                "rate_at = ? WHERE id = ?",
                (seq, self.now, rate[0], rate[1], conn_id),
            )

    def set_closed(self, conn_id: str, code: int, reason: str) -> None:
        """Mark the connection closed with its close code and reason."""
        self._run(
            "UPDATE aws_connections SET state = ?, close_code = ?, close_reason = ?, "
            "closed_at = ? WHERE id = ?",
            (int(State.CLOSED), code, reason, self.now, conn_id),
        )

    def set_waker(self, conn_id: str, waker: str | None, sent: int = 0) -> None:
        """Record which wake-up socket (if any) waits for this connection's events, and
        that its stream has written out the events up to ``sent``."""
        greatest = self.storage._database.dialect.greatest("sent_event", "?")
        self._run(
            f"UPDATE aws_connections SET waker = ?, last_seen = ?, sent_event = {greatest} "
            "WHERE id = ?",
            (waker, self.now, sent, conn_id),
        )

    def discard(self, conn_id: str, upto: int) -> None:
        """Delete the connection's events up to ``upto`` (its client has seen them: they
        no longer count as queued)."""
        if upto <= 0:
            return
        self._run("DELETE FROM aws_events WHERE conn_id = ? AND event_id <= ?", (conn_id, upto))
        greatest = self.storage._database.dialect.greatest("sent_event", "?")
        self._run(f"UPDATE aws_connections SET sent_event = {greatest} WHERE id = ?",
                  (upto, conn_id))

    def touch_streams(self, streams: Sequence[tuple[str, str, int]]) -> None:
        """For each ``(conn_id, waker, sent)`` what :meth:`set_waker` records — the stream
        of a process's heartbeat, for all its streams in one transaction."""
        for conn_id, waker, sent in streams:
            self.set_waker(conn_id, waker, sent)

    def touch_waker(self, waker: str) -> int:
        """Mark every connection waited on by ``waker`` as seen now (a process heartbeat)."""
        cursor = self._run(
            "UPDATE aws_connections SET last_seen = ? WHERE waker = ?", (self.now, waker)
        )
        return int(cursor.rowcount)

    # --- events ------------------------------------------------------------------------

    def _route(self, conn_id: str) -> tuple[str, str | None]:
        """Where the events of ``conn_id`` are queued: its own row, or its session's."""
        route = self._routes.get(conn_id)
        if route is None:
            row = self._run("SELECT session_id, session_ref FROM aws_connections WHERE id = ?",
                            (conn_id,)).fetchone()
            route = (row[0] or conn_id, row[1]) if row else (conn_id, None)
            self._routes[conn_id] = route
        return route

    def stream_of(self, conn_id: str) -> str:
        """The id of the row whose queue (and stream) the events of ``conn_id`` go to."""
        return self._route(conn_id)[0]

    def enqueue(self, conn_id: str, kind: int, payload: bytes) -> int:
        """Queue one event for one connection (on its session's queue if it has one);
        returns its event id."""
        stream, target = self._route(conn_id)
        self._run(
            "UPDATE aws_connections SET last_event = last_event + 1 WHERE id = ?", (stream,)
        )
        row = self._run(
            "SELECT last_event, waker, sent_event FROM aws_connections WHERE id = ?", (stream,)
        ).fetchone()
        event_id, waker = int(row[0]), row[1]
        if self.max_queued and event_id - int(row[2]) > self.max_queued:
            self.overflow[stream] = None
        self._run(
            "INSERT INTO aws_events (conn_id, event_id, kind, payload, created, target) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (stream, event_id, kind, payload, self.now, target),
        )
        if waker:
            self.woken.setdefault(waker, []).append(stream)
            self.queued.setdefault(waker, []).append((event_id, kind, payload, target))
        return event_id

    def enqueue_app(
        self, app: str, kind: int, payload: bytes, exclude: str | None = None
    ) -> int:
        """Queue one event for every open connection of ``app`` (but ``exclude``), in a
        fixed number of statements: at once for those with a queue of their own, and for
        those in a session with one read of their sessions' counters (locked) and one
        batch of writes."""
        in_sessions = self._enqueue_sessions(app, kind, payload, exclude)
        where = "app = ? AND state = ? AND session_id IS NULL" + (
            " AND id <> ?" if exclude else "")
        params: tuple[Any, ...] = (app, int(State.OPEN)) + ((exclude,) if exclude else ())
        self._run(f"UPDATE aws_connections SET last_event = last_event + 1 WHERE {where}", params)
        cursor = self._run(
            "INSERT INTO aws_events (conn_id, event_id, kind, payload, created) "
            f"SELECT id, last_event, ?, ?, ? FROM aws_connections WHERE {where}",
            (kind, payload, self.now) + params,
        )
        count = cursor.rowcount
        for conn_id, waker, event_id in self._run(
            f"SELECT id, waker, last_event FROM aws_connections WHERE {where} "
            "AND waker IS NOT NULL", params
        ).fetchall():
            self.woken.setdefault(waker, []).append(conn_id)
            self.queued.setdefault(waker, []).append((int(event_id), kind, payload, None))
        if self.max_queued:
            for (conn_id,) in self._run(
                f"SELECT id FROM aws_connections WHERE {where} "
                "AND last_event - sent_event > ?", params + (self.max_queued,)
            ).fetchall():
                self.overflow[conn_id] = None
        return int(count) + in_sessions

    def _enqueue_sessions(self, app: str, kind: int, payload: bytes, exclude: str | None
                          ) -> int:
        """:meth:`enqueue_app`'s part for the connections of ``app`` in sessions: each
        event on its session's queue, numbered after the session's last (in the order of
        the connections' creation, as one :meth:`enqueue` each would). Returns how many."""
        members = self._run(
            "SELECT m.id, m.session_ref, s.id, s.last_event, s.waker, s.sent_event "
            "FROM aws_connections m JOIN aws_connections s ON s.id = m.session_id "
            "WHERE m.app = ? AND m.state = ?" + (" AND m.id <> ?" if exclude else "")
            + " ORDER BY m.created, m.id" + self.storage._database.dialect.for_update,
            (app, int(State.OPEN)) + ((exclude,) if exclude else ())).fetchall()
        if not members:
            return 0
        last: dict[str, int] = {}  # session -> its last event id, as numbered here
        events = []
        for conn_id, ref, session, last_event, waker, sent in members:
            event_id = last[session] = last.get(session, int(last_event)) + 1
            events.append((session, event_id, kind, payload, self.now, ref))
            self._routes[conn_id] = (session, ref)
            if waker:
                self.woken.setdefault(waker, []).append(session)
                self.queued.setdefault(waker, []).append((event_id, kind, payload, ref))
            if self.max_queued and event_id - int(sent) > self.max_queued:
                self.overflow[session] = None
        self._run_many("UPDATE aws_connections SET last_event = ? WHERE id = ?",
                       [(event_id, session) for session, event_id in last.items()])
        self._run_many(
            "INSERT INTO aws_events (conn_id, event_id, kind, payload, created, target) "
            "VALUES (?, ?, ?, ?, ?, ?)", events)
        return len(members)

    # --- application data --------------------------------------------------------------

    def log_append(self, app: str, key: str, value: str, keep: int | None = None) -> None:
        """Append ``value`` to the app's log ``key``, keeping only the last ``keep`` entries."""
        self._run(
            "INSERT INTO aws_log (app, \"key\", value, created) VALUES (?, ?, ?, ?)",
            (app, key, value, self.now),
        )
        if keep is not None:
            row = self._run(
                "SELECT id FROM aws_log WHERE app = ? AND \"key\" = ? ORDER BY id DESC "
                f"LIMIT 1 OFFSET {int(keep)}",
                (app, key),
            ).fetchone()
            if row:
                self._run(
                    "DELETE FROM aws_log WHERE app = ? AND \"key\" = ? AND id <= ?",
                    (app, key, row[0]),
                )

    def log_recent(self, app: str, key: str, count: int) -> list[str]:
        """The last ``count`` entries of the app's log ``key``, oldest first."""
        rows = self._run(
            f"SELECT value FROM aws_log WHERE app = ? AND \"key\" = ? ORDER BY id DESC "
            f"LIMIT {int(count)}",
            (app, key),
        ).fetchall()
        return [row[0] for row in reversed(rows)]

    def kv_get(self, app: str, key: str) -> str | None:
        """The app's value for ``key``, or ``None``."""
        row = self._run(
            "SELECT value FROM aws_kv WHERE app = ? AND \"key\" = ?", (app, key)
        ).fetchone()
        return None if row is None else str(row[0])

    def kv_set(self, app: str, key: str, value: str | None) -> None:
        """Set (or with ``None`` delete) the app's value for ``key``."""
        self._run("DELETE FROM aws_kv WHERE app = ? AND \"key\" = ?", (app, key))
        if value is not None:
            self._run("INSERT INTO aws_kv (app, \"key\", value) VALUES (?, ?, ?)",
                      (app, key, value))

    # --- housekeeping ------------------------------------------------------------------

    def gone_connections(self, idle_before: float, stream_stale_before: float) -> list[str]:
        """Open connections (and sessions) whose client is gone: no stream and idle, or a
        stream gone silent; a connection in a session lives as long as its session."""
        gone = ("(({t}.waker IS NULL AND {t}.last_seen < ?) OR "
                "({t}.waker IS NOT NULL AND {t}.last_seen < ?))")
        rows = self._run(
            "SELECT c.id FROM aws_connections c LEFT JOIN aws_connections s "
            "ON s.id = c.session_id WHERE c.state = ? AND "
            f"((c.session_id IS NULL AND {gone.format(t='c')}) OR (c.session_id IS NOT NULL "
            f"AND (s.id IS NULL OR s.state <> ? OR {gone.format(t='s')})))",
            (int(State.OPEN), idle_before, stream_stale_before, int(State.OPEN), idle_before,
             stream_stale_before),
        ).fetchall()
        return [row[0] for row in rows]

    def purge_closed(self, closed_before: float) -> int:
        """Delete connections closed before ``closed_before`` and all their events."""
        self._run(
            "DELETE FROM aws_events WHERE conn_id IN (SELECT id FROM aws_connections "
            "WHERE state = ? AND closed_at < ?)",
            (int(State.CLOSED), closed_before),
        )
        cursor = self._run(
            "DELETE FROM aws_connections WHERE state = ? AND closed_at < ?",
            (int(State.CLOSED), closed_before),
        )
        return int(cursor.rowcount)

    def meta_get(self, name: str) -> str | None:
        """A value of the storage's own bookkeeping."""
        row = self._run("SELECT value FROM aws_meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def meta_set(self, name: str, value: str) -> None:
        """Set a value of the storage's own bookkeeping."""
        self._run("DELETE FROM aws_meta WHERE name = ?", (name,))
        self._run("INSERT INTO aws_meta (name, value) VALUES (?, ?)", (name, value))


class AltWebSocketStorage:
    """The storage of connections, their events and application data.

    Args:
        url: an SQLAlchemy URL; ``sqlite:///path/to/file.db`` by default.
        busy_timeout: seconds a writer waits for the database lock before a 503.
        journal_mode: ``"auto"`` (WAL on a local filesystem, a rollback journal on a network
            one), ``"wal"``, ``"delete"`` or ``"truncate"`` (SQLite only).
    """

    def __init__(self, url: str, busy_timeout: float = 10.0, journal_mode: str = "auto",
                 clock: Callable[[], float] = time.time) -> None:
        if journal_mode not in ("auto", "wal", "delete", "truncate"):
            raise ConfigError("journal_mode is auto, wal, delete or truncate")
        self.url = url
        self.clock = clock
        self._database = Database(url, busy_timeout, journal_mode)
        self._local = _local()  # SQLite: a connection per thread for data_version()
        self._idle: list[Any] = []  # a small pool shared by the threads, last used first
        self._pool_lock = allocate_lock()
        self._listener: Any = None
        self._ready = False

    @property
    def is_sqlite(self) -> bool:
        """Whether this storage is an SQLite file."""
        return self._database.is_sqlite

    def ensure_schema(self) -> None:
        """Create the tables if this database has none yet (cheap when it has)."""
        if self._ready:
            return
        try:
            if not self._database.schema_ready():
                self._database.create_schema()
        except self._database.errors as exc:
            raise _unavailable(exc) from exc
        except OSError as exc:  # the data folder vanished or cannot be read
            raise _unavailable(exc) from exc
        self._ready = True

    def _connection(self) -> Any:
        db = getattr(self._local, "db", None)
        if db is None:
            self.ensure_schema()
            try:
                db = self._database.connect()
            except self._database.errors as exc:
                raise _unavailable(exc) from exc
            self._local.db = db
        return db

    def close(self) -> None:
        """Close this thread's database connection (SQLite) or the idle pooled ones."""
        db = getattr(self._local, "db", None)
        if db is not None:
            self._local.db = None
            db.close()
        with self._pool_lock:
            idle, self._idle = self._idle, []
        for db in idle:
            _close_quietly(db)

    def _acquire(self) -> Any:
        """A connection for one transaction or read, from the pool: the one used last, so
        a thousand idle stream threads do not hold a thousand server connections
        (PostgreSQL allows 100 by default), and, for SQLite, a request finds its pages in
        that connection's cache (a server's threads take turns: a connection per thread
        would mostly be cold, ~25 µs more per request measured)."""
        self.ensure_schema()
        with self._pool_lock:
            db = self._idle.pop() if self._idle else None
        if db is None:
            try:
                db = self._database.connect()
            except self._database.errors as exc:
                raise _unavailable(exc) from exc
        return db

    def _release(self, db: Any, broken: bool = False) -> None:
        """Give back what :meth:`_acquire` gave; a broken connection is closed (the next
        one reconnects: the file or the server may have been fixed)."""
        if broken and self.is_sqlite:
            self.close()  # this thread's too: the file may have been replaced
        if not broken:
            with self._pool_lock:
                if len(self._idle) < _POOL_IDLE:
                    self._idle.append(db)
                    return
        _close_quietly(db)

    def transaction(self) -> _Scope:
        """A write transaction (``with storage.transaction() as tx:``); commits on
        success, rolls back on any exception. Its :attr:`~Transaction.now` is read from
        :attr:`clock` once."""
        return _Scope(self)

    def begin(self) -> Transaction:
        """Start a write transaction; :meth:`end` ends it (what ``with``
        :meth:`transaction` does, for a caller that starts one only when it needs it)."""
        db = self._acquire()
        try:
            self._database.begin_write(db)
        except self._database.errors as exc:
            self._release(db, broken=True)
            raise _unavailable(exc) from exc
        return Transaction(self, db, self.clock())

    def end(self, tx: Transaction, exc: BaseException | None) -> None:
        """Commit ``tx``, or roll it back when ``exc`` ended its block (raised again, a
        database error as :class:`StorageUnavailable`)."""
        db, errors = tx._db, self._database.errors
        if exc is None and tx.failed is not None:  # a handler swallowed a database error
            exc = _unavailable(tx.failed, log=False)
        if exc is not None:
            broken = tx.failed is not None or isinstance(exc, errors)
            try:
                self._database.rollback(db)
            except Exception:  # the connection may be broken; drop it
                broken = True
            self._release(db, broken)
            if isinstance(exc, errors):
                raise _unavailable(exc) from exc
            raise exc
        try:
            if tx.woken and self._database.engine_name == "postgresql":
                self._notify(db, tx.woken)  # delivered to other hosts when this commits
            self._database.commit(db)
        except errors as failure:
            try:
                self._database.rollback(db)
            except Exception:
                pass
            self._release(db, broken=True)
            raise _unavailable(failure) from failure
        self._release(db)

    def _notify(self, db: Any, woken: dict[str, list[str]]) -> None:
        from .notify import CHANNEL, payloads

        cursor = db.cursor()
        for payload in payloads(woken):
            cursor.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))

    def listen(self) -> None:
        """Start, once per process, what forwards other hosts' wake-up hints to this host's
        waiting streams (PostgreSQL ``LISTEN``; nothing for the other engines)."""
        if self._database.engine_name != "postgresql" or self._database._engine is not None:
            return
        with self._pool_lock:
            if self._listener is not None:
                return
            from .notify import Listener

            self._listener = Listener(self._database.connect)

    # --- reads: one statement each, never a transaction left open ------------------------

    def _query(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        db = self._acquire()
        try:
            cursor = db.cursor()
            cursor.execute(self._database.sql(statement), tuple(params))
            rows: list[Any] = cursor.fetchall()  # a DB-API cursor: rows of any driver
            if not self.is_sqlite:
                db.commit()
        except self._database.errors as exc:
            self._release(db, broken=True)
            raise _unavailable(exc) from exc
        self._release(db)
        return list(rows)

    def connection(self, conn_id: str) -> ConnectionRecord | None:
        """The connection's row, or ``None`` (a read outside any transaction)."""
        rows = self._query(
            f"SELECT {_CONNECTION_COLUMNS} FROM aws_connections WHERE id = ?", (conn_id,)
        )
        return _record(rows[0]) if rows else None

    def session_connection(self, session_id: str, ref: str) -> ConnectionRecord | None:
        """The connection called ``ref`` in a session, or ``None`` (a read outside any
        transaction)."""
        rows = self._query(
            f"SELECT {_CONNECTION_COLUMNS} FROM aws_connections WHERE session_id = ? "
            "AND session_ref = ?", (session_id, ref))
        return _record(rows[0]) if rows else None

    def events_after(self, conn_id: str, after: int, limit: int = EVENT_PAGE
                     ) -> list[StoredEvent]:
        """Up to ``limit`` events of the connection with an id above ``after``, in order."""
        rows = self._query(
            "SELECT event_id, kind, payload, target FROM aws_events WHERE conn_id = ? "
            f"AND event_id > ? ORDER BY event_id LIMIT {int(limit)}",
            (conn_id, after),
        )
        return [(int(row[0]), int(row[1]), bytes(row[2]), row[3]) for row in rows]

    def last_events(self, conn_ids: Sequence[str]) -> dict[str, int]:
        """The id of the last event queued for each of ``conn_ids`` (a read outside any
        transaction; one statement per 500 ids)."""
        found: dict[str, int] = {}
        for start in range(0, len(conn_ids), 500):
            part = tuple(conn_ids[start:start + 500])
            marks = ", ".join("?" * len(part))
            for conn_id, last in self._query(
                    f"SELECT id, last_event FROM aws_connections WHERE id IN ({marks})", part):
                found[str(conn_id)] = int(last)
        return found

    def data_version(self) -> int | None:
        """SQLite's ``PRAGMA data_version`` on this thread's connection (changes on commits
        by other connections); ``None`` for databases without it."""
        if not self.is_sqlite:
            return None
        try:
            return int(self._connection().execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error as exc:
            raise _unavailable(exc) from exc

    def discard_events(self, conn_id: str, upto: int) -> None:
        """Delete the connection's events up to ``upto``: the client has seen them (so they
        also no longer count as queued)."""
        if upto <= 0:
            return
        with self.transaction() as tx:
            tx.discard(conn_id, upto)

    def checkpoint(self) -> None:
        """Fold the WAL back into the database file (keeps the WAL file bounded)."""
        if self.is_sqlite:
            try:
                self._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                logger("altwebsocket.storage").warning("WAL checkpoint failed: %s", exc)


_POOL_IDLE = 8  # idle connections a process keeps to PostgreSQL or MySQL


def _close_quietly(db: Any) -> None:
    try:
        db.close()
    except Exception:  # already broken
        pass


# (words in the driver's message, what the client is told, Retry-After in seconds)
_FAULTS = (
    # SQLite: "database is locked"; PostgreSQL: "canceling statement due to lock timeout";
    # MySQL/MariaDB: "Lock wait timeout exceeded"
    (("locked", "busy", "lock timeout", "lock wait timeout"), "the database is busy, retry "
     "shortly", 1),
    (("readonly", "read-only"), "the storage is read-only", 5),
    (("full",), "the storage is full", 5),
    (("not a database", "malformed", "corrupt"), "the database file is damaged", 10),
    (("unable to open",), "the database file cannot be opened", 5),
)


def _unavailable(exc: BaseException, log: bool = True) -> StorageUnavailable:
    """The 503 for a database error; the details go to the log only, never to the client."""
    text = str(exc)
    lowered = text.lower()
    message, retry_after = "the storage is unavailable", 5
    for words, said, seconds in _FAULTS:
        if any(word in lowered for word in words):
            message, retry_after = said, seconds
            break
    # PostgreSQL: "deadlock detected"; MySQL/MariaDB: "Deadlock found when trying to get lock"
    deadlock = "deadlock" in lowered
    if deadlock:
        message, retry_after = "the database is busy, retry shortly", 1
    if log:
        logger("altwebsocket.storage").log(
            30 if deadlock else 40, "storage error (%s): %s", message, text)
    error = StorageUnavailable(message, retry_after=retry_after)
    error.deadlock = deadlock
    return error


class _Scope:
    """What :meth:`AltWebSocketStorage.transaction` returns: ``with`` it, a transaction (a
    class rather than ``contextlib.contextmanager``, which a CGI request would import)."""

    __slots__ = ("_storage", "_tx")

    def __init__(self, storage: AltWebSocketStorage) -> None:
        self._storage = storage
        self._tx: Transaction | None = None

    def __enter__(self) -> Transaction:
        self._tx = self._storage.begin()
        return self._tx

    def __exit__(self, kind: object, exc: BaseException | None, trace: object) -> None:
        tx, self._tx = self._tx, None
        if tx is None:
            return
        try:
            self._storage.end(tx, exc)
        except BaseException as raised:
            if raised is not exc:  # (the block's own exception goes on as it was)
                raise
