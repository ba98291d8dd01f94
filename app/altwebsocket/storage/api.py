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
from .log import CLOCK, Member, counted_at, direct_key, item_key, number, uncounted
from .schema import CONNECTION_COLUMNS

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, Callable

    from .log import Key

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
_CONNECTION_COLUMNS_R = ", ".join(f"r.{name}" for name in CONNECTION_COLUMNS)
_AHEAD_AT = len(CONNECTION_COLUMNS)  # where the queue's numbers start (Transaction.connection)


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
    joined_ord: int
    counted_ord: int
    left_ord: int | None
    left_pos: int | None
    base_event: int
    base_pos: int
    base_member: str | None
    base_created: float | None


for _index, _name in enumerate(CONNECTION_COLUMNS):
    setattr(ConnectionRecord, _name, property(itemgetter(_index), doc=f"column {_name}"))


def _record(row: Sequence[Any]) -> ConnectionRecord:
    values = list(row)
    values[4] = State(values[4])
    return ConnectionRecord(*values)

_OPEN = int(State.OPEN)

# A queue's row and its members' rows with the counts that give its last event id
# (:mod:`.log`), in one statement, so in one snapshot: the app's broadcast ordinal now, and
# how many broadcasts since the member's count excluded it.
# How many broadcasts since its count excluded the connection ``m`` (one parameter:
# State.OPEN; a closed connection got none after it left)
_EXCLUDED = ("(SELECT COUNT(*) FROM aws_broadcasts b WHERE b.not_for = m.id AND b.app = m.app "
             "AND b.ordinal > m.counted_ord AND (m.state = ? OR "
             "b.ordinal <= COALESCE(m.left_ord, 0)))")

_VIEW_COLUMNS = (
    "m.id, m.app, m.state, m.joined_ord, m.counted_ord, m.left_ord, m.created, m.session_ref, "
    "m.transport, m.session_id, m.last_event, m.waker, m.sent_event, m.base_event, m.base_pos, "
    "m.base_member, m.base_created, "
    f"COALESCE((SELECT c.value FROM aws_counters c WHERE c.name = m.app), 0), {_EXCLUDED}")

# The broadcast items of a queue's members from a position on (:func:`_read`).
_ITEMS = (
    "SELECT b.pos, b.ordinal, b.kind, b.payload, m.id, m.created, m.session_ref "
    "FROM aws_broadcasts b JOIN aws_connections m ON m.app = b.app WHERE {who} "
    "AND m.transport <> 'session' AND b.pos >= ? AND b.pos <= ? AND b.ordinal > m.joined_ord "
    "AND (m.state = ? OR b.ordinal <= COALESCE(m.left_ord, 0)) "
    "AND (b.not_for IS NULL OR b.not_for <> m.id) ORDER BY b.pos LIMIT {limit}")

_READ_MOST = 2000  # rows one read of a queue's events asks for at most

# What :meth:`Transaction.enqueue` reads of a queue ``q`` before it numbers an event: the
# log's clock (``k``), the queue's row, the app's broadcast ordinal now, and (then) what the
# members of a session's queue got since their count.
_QUEUE_NUMBERS = ("k.value, q.last_event, q.waker, q.sent_event, q.counted_ord, q.state, "
                  "q.left_ord, q.transport, q.session_id, q.app, (SELECT c.value FROM "
                  "aws_counters c WHERE c.name = q.app)")

# The sum of what the members of a queue got since their count (over Transaction._members)
_UNCOUNTED = ("COALESCE(SUM(CASE WHEN u.upto > u.counted_ord + u.excluded THEN "
              "u.upto - u.counted_ord - u.excluded ELSE 0 END), 0)")


class _Queue:
    """A queue (a connection's own, or a session's) as :func:`_views` read it: its row's
    numbers and its members (:class:`~.log.Member`)."""

    __slots__ = ("id", "session", "last_event", "waker", "sent_event", "base_event",
                 "base_pos", "base_member", "base_created", "members")

    def __init__(self, row: Sequence[Any]) -> None:
        self.id: str = row[0]
        self.session = row[8] == "session"
        self.last_event = int(row[10])
        self.waker: str | None = row[11]
        self.sent_event = int(row[12])
        self.base_event = int(row[13])
        self.base_pos = int(row[14])
        self.base_member: str | None = row[15]
        self.base_created = float(row[16] or 0.0)
        self.members: list[Member] = []

    @property
    def last(self) -> int:
        """The id of its last event."""
        return self.last_event + uncounted(self.members)

    def base_key(self) -> Key:
        """The key of its checkpoint: the last event its client saw (:mod:`.log`)."""
        if self.base_member is None:
            return direct_key(self.base_pos, self.base_event)
        return item_key(self.base_pos, self.base_created, self.base_member)


if TYPE_CHECKING:
    Run = Callable[[str, Sequence[Any]], list[Any]]  # a statement's rows
    Numbered = tuple[int, Key, int, bytes, str | None, str | None, int]  # (.log.number)


def _views(run: Run, queue_ids: Sequence[str]) -> dict[str, _Queue]:
    """The queues ``queue_ids`` (those that exist) with their members (one statement per
    250 queues)."""
    out: dict[str, _Queue] = {}
    ids = list(dict.fromkeys(queue_ids))
    for start in range(0, len(ids), 250):
        part = ids[start:start + 250]
        wanted = set(part)
        marks = ", ".join("?" * len(part))
        members: list[tuple[str, Member]] = []
        for row in run(f"SELECT {_VIEW_COLUMNS} FROM aws_connections m "
                       f"WHERE m.id IN ({marks}) OR m.session_id IN ({marks})",
                       (_OPEN, *part, *part)):
            if row[0] in wanted:
                out[row[0]] = _Queue(row)
            if row[8] != "session":  # a connection: a member of its session's, or its own
                members.append((row[9] or row[0], Member(
                    row[0], row[1], int(row[2]) == _OPEN, int(row[3]), int(row[4]),
                    None if row[5] is None else int(row[5]), float(row[6]), row[7],
                    int(row[17]), int(row[18]))))
        for owner, member in members:
            queue = out.get(owner)
            if queue is not None:
                queue.members.append(member)
    return out


def _read(run: Run, known: Callable[[str, int], Key | None], queue: _Queue, after: int,
          limit: int) -> list[Numbered]:
    """Up to ``limit`` events of ``queue`` after the id ``after``, numbered (:mod:`.log`):
    from the nearest anchor at or before ``after`` — the key the storage remembers for it
    (``known``), the latest direct event, or the queue's checkpoint — the direct events and
    broadcast items after it, up to the log's clock as it stood before they were read (a
    later direct event may follow broadcasts not read yet)."""
    anchor_id, anchor_key = queue.base_event, queue.base_key()
    remembered = known(queue.id, after) if after > anchor_id else None
    if remembered is not None:
        anchor_id, anchor_key = after, remembered
    elif after > anchor_id:
        rows = run("SELECT event_id, pos FROM aws_events WHERE conn_id = ? AND event_id > ? "
                   "AND event_id <= ? ORDER BY event_id DESC LIMIT 1",
                   (queue.id, anchor_id, after))
        if rows:
            anchor_id, anchor_key = int(rows[0][0]), direct_key(int(rows[0][1]), int(rows[0][0]))
    clock_rows = run("SELECT value FROM aws_counters WHERE name = ?", (CLOCK,))
    clock = int(clock_rows[0][0]) if clock_rows else 0
    who = "m.session_id = ?" if queue.session else "m.id = ?"
    out: list[Numbered] = []
    want = min(_READ_MOST, max(0, after - anchor_id) + limit)
    while True:
        # the broadcasts from the anchor's position on (at it: to other members, after it)
        since = anchor_key[0] + (1 if anchor_key[1] == 1 else 0)
        rows = run(_ITEMS.format(who=who, limit=want), (queue.id, since, clock, _OPEN))
        cut: Key | None = None
        if len(rows) == want:  # more beyond: the last position's broadcast may be cut
            cut = (rows[-1][0], 0)
            rows = [row for row in rows if row[0] != rows[-1][0]]
        items = sorted(
            ((item_key(int(row[0]), float(row[5]), row[4]), int(row[2]), bytes(row[3]),
              row[6] if queue.session else None, row[4], int(row[1])) for row in rows),
            key=itemgetter(0))
        items = [item for item in items if item[0] > anchor_key]
        directs = [(int(row[0]), int(row[1]), bytes(row[2]), row[3], int(row[4])) for row in run(
            "SELECT event_id, kind, payload, target, pos FROM aws_events WHERE conn_id = ? "
            f"AND event_id > ? AND pos <= ? ORDER BY event_id LIMIT {want}",
            (queue.id, anchor_id, clock))]
        if len(directs) == want:
            last = direct_key(directs[-1][4], directs[-1][0])
            cut = last if cut is None or last < cut else cut
        if cut is not None:
            items = [item for item in items if item[0] < cut]
            directs = [event for event in directs if direct_key(event[4], event[0]) <= cut]
        try:
            events = number(anchor_id, directs, items)
        except ValueError as exc:  # (never seen: a damaged database) a 503, logged
            raise _unavailable(exc) from exc
        out += [event for event in events if event[0] > after]
        if len(out) >= limit or cut is None:
            return out[:limit]  # (fewer than limit: there are no more)
        if events:  # read on from the last
            anchor_id, anchor_key = events[-1][0], events[-1][1]
            after = max(after, anchor_id)
        else:  # one broadcast to more members of the session than that: all of it
            want *= 4


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
        self._clock: int | None = None  # the log's clock, once this transaction holds it
        # queue -> (id, key) of the last event this transaction queued on it (.log): the
        # storage remembers them once committed, so a stream reads on without a search
        self.keys: dict[str, tuple[int, Key]] = {}
        # SQLite: (queue id, what enqueue reads of it), read with a connection's row and
        # good until the next statement (:meth:`connection`)
        self._ahead: tuple[str, Any] | None = None
        self._serial = storage.is_sqlite  # one writer at a time: nothing changes under us

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
        self._ahead = None  # (a statement may change what it holds)
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

    def _rows(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(self._run(statement, params).fetchall())

    def _hold_clock(self) -> int:
        """The log's clock (:mod:`.log`), locked until this transaction ends: the
        transactions that queue events, open or close connections take turns here."""
        clock = self._clock
        if clock is None:
            row = self._run("SELECT value FROM aws_counters WHERE name = ?"
                            + self.storage._database.dialect.for_update, (CLOCK,)).fetchone()
            if row is None:  # (a database made without it: the first transaction adds it)
                self._run("INSERT INTO aws_counters (name, value) VALUES (?, 0)", (CLOCK,))
            clock = self._clock = 0 if row is None else int(row[0])
        return clock

    def _ordinal(self, app: str) -> int:
        """The ordinal of the last broadcast of ``app`` (0: none yet)."""
        row = self._run("SELECT value FROM aws_counters WHERE name = ?", (app,)).fetchone()
        return 0 if row is None else int(row[0])

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
        clock, ordinal = self._hold_clock(), self._ordinal(app)  # it gets what comes next
        self._run(
            "INSERT INTO aws_connections (id, app, token_hash, protocol, state, created, "
            "last_seen, last_event, last_seq, origin, transport, client_addr, sent_event, "
            "session_id, session_ref, joined_ord, counted_ord, base_event, base_pos) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0, ?, ?, ?, 0, ?, ?, ?, ?, 0, ?)",
            (conn_id, app, token_hash, protocol, int(State.OPEN), self.now, self.now,
             origin, transport, client_addr, session_id, session_ref, ordinal, ordinal,
             clock),
        )
        record = self.connection(conn_id)
        assert record is not None
        return record

    def connection(self, conn_id: str, lock: bool = False) -> ConnectionRecord | None:
        """The connection's row, or ``None``; with ``lock``, the row stays locked until the
        transaction ends (concurrent senders to one connection take turns).

        With ``lock`` on SQLite, whose write transaction is the only writer, the same
        statement reads what :meth:`enqueue` needs of the connection's queue (its own or
        its session's), so an event queued right after (an echo) costs no read of its
        own. On PostgreSQL and MySQL that read must wait for the log's clock, which this
        one does not take."""
        if lock and self._serial:
            members, params = self._members("m.session_id = r.session_id")
            row = self._run(
                f"SELECT {_CONNECTION_COLUMNS_R}, {_QUEUE_NUMBERS}, (SELECT {_UNCOUNTED} FROM "
                f"({members}) u) FROM aws_connections r LEFT JOIN aws_connections q ON q.id "
                "= COALESCE(r.session_id, r.id) LEFT JOIN aws_counters k ON k.name = ? "
                "WHERE r.id = ?", params + (CLOCK, conn_id)).fetchone()
        else:
            suffix = self.storage._database.dialect.for_update if lock else ""
            row = self._run(f"SELECT {_CONNECTION_COLUMNS} FROM aws_connections WHERE id = ?"
                            f"{suffix}", (conn_id,)).fetchone()
        if not row:
            return None
        record = _record(row[:_AHEAD_AT])
        if len(row) > _AHEAD_AT and row[_AHEAD_AT] is not None and \
                row[_AHEAD_AT + 1] is not None:  # (the clock's row and the queue's exist)
            self._ahead = (record.session_id or record.id, row[_AHEAD_AT:])
        self._routes[record.id] = (record.session_id or record.id, record.session_ref)
        return record

    def session_connection(self, session_id: str, ref: str) -> ConnectionRecord | None:
        """The connection called ``ref`` in session ``session_id``, or ``None``."""
        row = self._run(
            "SELECT id FROM aws_connections WHERE session_id = ? AND session_ref = ?",
            (session_id, ref),
        ).fetchone()
        return None if row is None else self.connection(str(row[0]), lock=True)

    def session_refs_closed(self, session_id: str, refs: Sequence[str]) -> bool:
        """Whether every connection ``refs`` names in session ``session_id`` exists and is
        closed (a ref not known yet may be one whose open is on its way)."""
        wanted = set(refs)
        for start in range(0, len(refs), 500):  # (few parameters per statement)
            part = refs[start:start + 500]
            rows = self._run(
                "SELECT session_ref FROM aws_connections WHERE session_id = ? AND state <> ? "
                f"AND session_ref IN ({', '.join('?' * len(part))})",
                (session_id, _OPEN, *part)).fetchall()
            wanted.difference_update(row[0] for row in rows)
        return not wanted

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
        """Mark the connection closed with its close code and reason (it gets no broadcast
        after this one's)."""
        clock = self._hold_clock()
        self._run(
            "UPDATE aws_connections SET state = ?, close_code = ?, close_reason = ?, "
            "closed_at = ?, left_ord = COALESCE((SELECT c.value FROM aws_counters c "
            "WHERE c.name = aws_connections.app), 0), left_pos = ? WHERE id = ?",
            (int(State.CLOSED), code, reason, self.now, clock, conn_id),
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
        no longer count as queued), and make that event the queue's checkpoint: its
        numbering goes on from there, and the broadcasts before it may be purged."""
        self.discard_many([(conn_id, upto)])

    def discard_many(self, marks: Sequence[tuple[str, int]]) -> None:
        """:meth:`discard` for each ``(conn_id, upto)``: the queues whose client has seen
        all (the common case: a stream that starts where it left off, the daemon's
        heartbeat) in one read and a few batches of writes for all of them."""
        marks = [(conn_id, upto) for conn_id, upto in marks if upto > 0]
        if not marks:
            return
        clock = self._hold_clock()
        queues = _views(self._rows, [conn_id for conn_id, _ in marks])
        seen_all: list[tuple[_Queue, int]] = []
        for conn_id, upto in marks:
            queue = queues.get(conn_id)
            if queue is None:
                continue
            if upto == queue.last and upto >= queue.base_event:
                seen_all.append((queue, upto))
            else:
                self._checkpoint(queue, upto)
        if not seen_all:
            return
        # Its count and checkpoint go to the log's clock (held: nothing comes in between),
        # so no broadcast before now is kept for it.
        greatest = self.storage._database.dialect.greatest("sent_event", "?")
        self._run_many("DELETE FROM aws_events WHERE conn_id = ? AND event_id <= ?",
                       [(queue.id, upto) for queue, upto in seen_all])
        self._run_many(f"UPDATE aws_connections SET sent_event = {greatest}, last_event = ?, "
                       "base_event = ?, base_pos = ?, base_member = NULL, base_created = NULL "
                       "WHERE id = ?",
                       [(upto, upto, upto, clock, queue.id) for queue, upto in seen_all])
        self._run_many("UPDATE aws_connections SET counted_ord = ? WHERE id = ?",
                       [(member.upto, member.id) for queue, _ in seen_all
                        for member in queue.members if member.upto > member.counted])

    def _checkpoint(self, queue: _Queue, upto: int) -> None:
        """:meth:`discard` for a queue whose client has not seen all of it."""
        conn_id = queue.id
        found = [] if upto <= queue.base_event else \
            _read(self._rows, self.storage._known, queue, upto - 1, 1)  # (before the delete)
        self._run("DELETE FROM aws_events WHERE conn_id = ? AND event_id <= ?", (conn_id, upto))
        greatest = self.storage._database.dialect.greatest("sent_event", "?")
        self._run(f"UPDATE aws_connections SET sent_event = {greatest} WHERE id = ?",
                  (upto, conn_id))
        if not found or found[0][0] != upto:
            return  # (seen before, or not an event of it: beyond its last)
        event_id, key, _, _, _, member, ordinal = found[0]
        self._run("UPDATE aws_connections SET base_event = ?, base_pos = ?, base_member = ?, "
                  "base_created = ? WHERE id = ?",
                  (event_id, key[0], member, key[2] if member is not None else None, conn_id))
        if member is None or upto <= queue.last_event:
            return
        # Its count goes through the checkpoint (the broadcasts before it may be purged):
        # each member has passed its app's broadcasts before the checkpoint's position.
        before: dict[str, int] = {}
        for app in {each.app for each in queue.members}:
            row = self._run("SELECT ordinal FROM aws_broadcasts WHERE app = ? AND pos < ? "
                            "ORDER BY pos DESC LIMIT 1", (app, key[0])).fetchone()
            if row is not None:
                before[app] = int(row[0])
        item_app = next((each.app for each in queue.members if each.id == member), "")
        moved = counted_at(queue.members, key, item_app, ordinal, before)
        self._run("UPDATE aws_connections SET last_event = ? WHERE id = ?", (upto, conn_id))
        self._run_many("UPDATE aws_connections SET counted_ord = ? WHERE id = ?",
                       [(counted, member_id) for member_id, counted in moved.items()])

    def touch_streams(self, streams: Sequence[tuple[str, str, int]]) -> None:
        """For each ``(conn_id, waker, sent)``, that the stream ``waker`` names lives and
        has written out the events up to ``sent`` — a process's heartbeat, for all its
        streams in one transaction. Only where ``waker`` still names it: the list is taken
        before this transaction, so a stream let go of meanwhile (its waker cleared) or
        replaced by a newer stream of the connection (another waker) is not brought back,
        which would send the connection's hints to a closed socket."""
        greatest = self.storage._database.dialect.greatest("sent_event", "?")
        self._run_many(
            f"UPDATE aws_connections SET last_seen = ?, sent_event = {greatest} "
            "WHERE id = ? AND waker = ?",
            [(self.now, sent, conn_id, waker) for conn_id, waker, sent in streams],
        )

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
        returns its event id: after every event its queue has, broadcasts included, whose
        count its row then takes up to now (:mod:`.log`); 0 for a connection that no longer
        exists (purged: nobody can read it)."""
        stream, target = self._route(conn_id)
        # The queue's row and the log's clock in one statement, the clock locked (the
        # first time in this transaction) — with the app's broadcast ordinal now
        # (and, for a connection of a session, what the session's connections got since);
        # on SQLite, read already with the connection's row if nothing ran since
        held = self._clock is not None
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == stream:  # read with the connection's row
            row = ahead[1]
        else:
            members, params = self._members("m.session_id = ?") if target is not None else \
                ("SELECT 0 AS upto, 0 AS counted_ord, 0 AS excluded", ())
            row = self._run(
                f"SELECT {_QUEUE_NUMBERS}, (SELECT {_UNCOUNTED} FROM ({members}) u) "
                "FROM aws_connections q, aws_counters k WHERE q.id = ? AND k.name = ?"
                + ("" if held else self.storage._database.dialect.for_update),
                params + ((stream,) if target is not None else ()) + (stream, CLOCK)
            ).fetchone()
        if row is None:
            if not held:  # no clock row (a database made without it): _hold_clock adds it
                self._hold_clock()
                return self.enqueue(conn_id, kind, payload)
            return 0  # (purged long after it closed: nobody can read it)
        clock = self._clock = int(row[0])
        if row[7] == "session":  # a session: what its connections, of any app, got since
            if target is not None:
                last, waker, sent = int(row[1]) + int(row[11]), row[2], int(row[3])
                uncounted = int(row[11]) > 0
            else:  # (its own event: its end)
                found = self._queue_last(stream)
                assert found is not None
                last, waker, sent, uncounted = found
            event_id = last + 1
            self._run("UPDATE aws_connections SET last_event = ? WHERE id = ?",
                      (event_id, stream))
            if uncounted:  # its count now takes in every broadcast so far
                self._run_many("UPDATE aws_connections SET counted_ord = ? WHERE id = ?", [
                    (upto, member_id) for member_id, counted, upto in self._rows(
                        f"SELECT m.id, m.counted_ord, {self._upto()} FROM aws_connections m "
                        "LEFT JOIN aws_counters c ON c.name = m.app WHERE m.session_id = ? "
                        "AND m.transport <> 'session'", (_OPEN, stream))
                    if int(upto) > int(counted)])
        else:  # a connection's own queue: it is its one member
            waker, sent, counted = row[2], int(row[3]), int(row[4])
            member = Member(stream, row[9], int(row[5]) == _OPEN, 0, counted,
                            None if row[6] is None else int(row[6]), 0.0, None,
                            int(row[10] or 0), 0)
            upto, excluded = member.upto, 0
            if upto > counted:  # broadcasts came since its count: those that excluded it
                excluded = int(self._run(
                    "SELECT COUNT(*) FROM aws_broadcasts WHERE not_for = ? AND app = ? AND "
                    "ordinal > ? AND ordinal <= ?", (stream, row[9], counted, upto)
                ).fetchone()[0])
            event_id = int(row[1]) + max(0, upto - counted - excluded) + 1
            self._run("UPDATE aws_connections SET last_event = ?, counted_ord = ? WHERE id = ?",
                      (event_id, max(upto, counted), stream))
        if self.max_queued and event_id - sent > self.max_queued:
            self.overflow[stream] = None
        self._run(
            "INSERT INTO aws_events (conn_id, event_id, kind, payload, created, target, pos) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (stream, event_id, kind, payload, self.now, target, clock),
        )
        self.keys[stream] = (event_id, direct_key(clock, event_id))
        if waker:
            self.woken.setdefault(waker, []).append(stream)
            self.queued.setdefault(waker, []).append((event_id, kind, payload, target))
        return event_id

    def enqueue_app(
        self, app: str, kind: int, payload: bytes, exclude: str | None = None
    ) -> int:
        """Queue one event for every open connection of ``app`` (but ``exclude``): ONE row
        of the broadcast log whatever their number (:mod:`.log`), numbered by each queue
        after its last event (in a session, for its connections of ``app`` in the order they
        were opened). Each queue's last id is read — one statement for the connections
        with a queue of their own, one for the sessions, summed by the database — to number
        the events handed to this process's streams, wake the others and check
        ``max_events_queued``. Returns how many connections get it."""
        self._hold_clock()
        before = self._ordinal(app)
        # The connections with a queue of their own: each one's last id in one statement
        # (open, so each got every broadcast of the app since its count, but those that
        # excluded it: counted only if the app has any).
        exclusions = bool(self._rows(
            "SELECT 1 FROM aws_broadcasts WHERE app = ? AND not_for IS NOT NULL LIMIT 1", (app,)))
        plain = self._rows(
            "SELECT m.id, m.waker, m.sent_event, m.last_event + ? - m.counted_ord - "
            f"{_EXCLUDED if exclusions else '0'}, m.created FROM aws_connections m "
            "WHERE m.app = ? AND m.state = ? AND m.session_id IS NULL"
            + (" AND m.id <> ?" if exclude else ""),
            (before,) + ((_OPEN,) if exclusions else ()) + (app, _OPEN)
            + ((exclude,) if exclude else ()))
        # The sessions with a connection of the app: each one's last id in one statement
        # (its count, plus what each of its connections, of any app, got since theirs),
        # and those connections, in the order they were opened.
        getting: dict[str, list[tuple[str, str | None, float]]] = {}
        for session, conn_id, ref, created in sorted(self._rows(
                "SELECT session_id, id, session_ref, created FROM aws_connections WHERE "
                "app = ? AND state = ? AND session_id IS NOT NULL"
                + (" AND id <> ?" if exclude else ""),
                (app, _OPEN) + ((exclude,) if exclude else ())), key=itemgetter(3, 1)):
            getting.setdefault(session, []).append((conn_id, ref, float(created)))
        sessions = self._session_lasts(app, exclude) if getting else []
        if not plain and not getting:
            return 0
        clock = self._clock = self._hold_clock() + 1
        self._run("UPDATE aws_counters SET value = ? WHERE name = ?", (clock, CLOCK))
        ordinal = before + 1
        if before:
            self._run("UPDATE aws_counters SET value = ? WHERE name = ?", (ordinal, app))
        else:  # the app's first broadcast
            self._run("INSERT INTO aws_counters (name, value) VALUES (?, 1)", (app,))
        self._run(
            "INSERT INTO aws_broadcasts (pos, app, ordinal, kind, payload, created, not_for) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", (clock, app, ordinal, kind, payload, self.now,
                                             exclude))
        woken, queued, keys, routes = self.woken, self.queued, self.keys, self._routes
        max_queued, overflow = self.max_queued, self.overflow
        for conn_id, waker, sent, last, created in plain:
            event_id = int(last) + 1
            routes[conn_id] = (conn_id, None)
            keys[conn_id] = (event_id, item_key(clock, float(created), conn_id))
            if waker:
                woken.setdefault(waker, []).append(conn_id)
                queued.setdefault(waker, []).append((event_id, kind, payload, None))
            if max_queued and event_id - int(sent) > max_queued:
                overflow[conn_id] = None
        count = len(plain)
        for session, waker, sent, last in sessions:
            members = getting[session]
            event_id = int(last)
            for conn_id, ref, _ in members:
                event_id += 1
                routes[conn_id] = (session, ref)
                if waker:
                    woken.setdefault(waker, []).append(session)
                    queued.setdefault(waker, []).append((event_id, kind, payload, ref))
            count += len(members)
            conn_id, _, created = members[-1]
            keys[session] = (event_id, item_key(clock, created, conn_id))
            if max_queued and event_id - int(sent) > max_queued:
                overflow[session] = None
        return count

    def _members(self, where: str, exclusions: bool = True) -> tuple[str, tuple[Any, ...]]:
        """A table of the connections ``where`` selects as members of their queue (their
        own, or their session's): ``queue``, ``counted_ord``, ``upto`` (the last broadcast
        ordinal of its app it gets so far) and ``excluded`` (the broadcasts since its count
        that excluded it; 0 without ``exclusions``: the log has none), with the parameters
        it takes before those of ``where``. :data:`_UNCOUNTED` sums it (:mod:`.log`)."""
        upto = self._upto()
        excluded = _EXCLUDED if exclusions else "0"
        return (f"SELECT COALESCE(m.session_id, m.id) AS queue, m.counted_ord, {upto} AS upto, "
                f"{excluded} AS excluded FROM aws_connections m LEFT JOIN aws_counters c "
                f"ON c.name = m.app WHERE m.transport <> 'session' AND ({where})",
                (_OPEN, _OPEN) if exclusions else (_OPEN,))

    def _upto(self) -> str:
        """The last broadcast ordinal of its app that the connection ``m`` gets so far
        (``c``: its app's row of ``aws_counters``; one parameter: State.OPEN)."""
        least = self.storage._database.dialect.least
        return (f"CASE WHEN m.state = ? THEN COALESCE(c.value, 0) ELSE "
                f"{least('COALESCE(c.value, 0)', 'COALESCE(m.left_ord, 0)')} END")

    def _queue_last(self, queue: str) -> tuple[int, str | None, int, bool] | None:
        """``(last id, waker, sent_event, whether it has broadcasts its count lacks)`` of
        ``queue``, in one statement; ``None`` if it does not exist."""
        members, params = self._members("(m.id = ? AND m.session_id IS NULL) OR "
                                        "m.session_id = ?")
        row = self._run(
            f"SELECT q.last_event, q.waker, q.sent_event, (SELECT {_UNCOUNTED} FROM "
            f"({members}) u) FROM aws_connections q WHERE q.id = ?",
            params + (queue, queue, queue)).fetchone()
        if row is None:
            return None
        return int(row[0]) + int(row[3]), row[1], int(row[2]), int(row[3]) > 0

    def _session_lasts(self, app: str, exclude: str | None) -> list[Any]:
        """``(session, waker, sent_event, last id)`` of the sessions with an open
        connection of ``app`` (but ``exclude``): :class:`_Queue.last` summed by the
        database."""
        members, params = self._members(
            "m.session_id IN (SELECT r.session_id FROM aws_connections r WHERE r.app = ? AND "
            "r.state = ? AND r.session_id IS NOT NULL" + (" AND r.id <> ?" if exclude else "")
            + ")", exclusions=bool(self._rows(
                "SELECT 1 FROM aws_broadcasts WHERE not_for IS NOT NULL LIMIT 1")))
        return self._rows(
            f"SELECT s.id, s.waker, s.sent_event, s.last_event + {_UNCOUNTED} "
            f"FROM aws_connections s JOIN ({members}) u ON u.queue = s.id "
            "GROUP BY s.id, s.waker, s.sent_event, s.last_event",
            params + (app, _OPEN) + ((exclude,) if exclude else ()))

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
        """Delete connections closed before ``closed_before`` and all their events — but
        not a connection of a session whose client has yet to read its last broadcasts
        (they are read through its row) — and the broadcasts no queue needs any more
        (before the checkpoints of all queues that may read them, and older than a minute).
        Returns how many connections."""
        gone = [row[0] for row in self._rows(
            "SELECT c.id, c.session_id, c.left_pos, s.base_pos, s.state, s.closed_at "
            "FROM aws_connections c LEFT JOIN aws_connections s ON s.id = c.session_id "
            "WHERE c.state = ? AND c.closed_at < ?", (int(State.CLOSED), closed_before))
            if row[1] is None or row[3] is None or row[2] is None or int(row[3]) > int(row[2])
            or (int(row[4]) == int(State.CLOSED) and float(row[5] or 0) < closed_before)]
        for start in range(0, len(gone), 250):
            part = tuple(gone[start:start + 250])
            marks = ", ".join("?" * len(part))
            self._run(f"DELETE FROM aws_events WHERE conn_id IN ({marks})", part)
            self._run(f"DELETE FROM aws_connections WHERE id IN ({marks})", part)
        # An app's broadcasts are needed from the oldest checkpoint among the queues of its
        # connections that may still read some: open, or closed after that checkpoint.
        needed = dict(self._rows(
            "SELECT m.app, MIN(q.base_pos) FROM aws_connections m JOIN aws_connections q "
            "ON q.id = COALESCE(m.session_id, m.id) WHERE m.transport <> 'session' "
            "AND (m.state = ? OR m.left_pos >= q.base_pos) GROUP BY m.app", (_OPEN,)))
        for (app,) in self._rows("SELECT DISTINCT app FROM aws_broadcasts"):
            since = needed.get(app)
            self._run("DELETE FROM aws_broadcasts WHERE app = ? AND pos < ? AND created < ?",
                      (app, 1 << 62 if since is None else int(since), self.now - 60.0))
        return len(gone)

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
        # queue -> {event id: key} of its last few events read or queued here (.log): a
        # stream reads on from its cursor without looking for an anchor
        self._keys: dict[str, dict[int, Key]] = {}
        self._keys_lock = allocate_lock()

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

    def _known(self, queue: str, event_id: int) -> Key | None:
        """The key of event ``event_id`` of ``queue``, if remembered (:meth:`_remember`)."""
        found = self._keys.get(queue)
        return None if found is None else found.get(event_id)

    def _remember(self, keys: dict[str, tuple[int, Key]]) -> None:
        """Remember (committed) events' keys: a few per queue, for a few thousand queues."""
        with self._keys_lock:
            known = self._keys
            if len(known) > _KEYS_KEPT:
                known.clear()
            for queue, (event_id, key) in keys.items():
                found = known.get(queue)
                if found is None:
                    found = known[queue] = {}
                found[event_id] = key
                if len(found) > 4:
                    del found[next(iter(found))]

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
            if tx.keys:
                self._remember(tx.keys)
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
        """Up to ``limit`` events of the queue ``conn_id`` (a connection's own, or a
        session's) with an id above ``after``, in order (reads outside any transaction)."""
        queue = _views(self._query, [conn_id]).get(conn_id)
        if queue is None or queue.last <= after:
            return []  # (nothing new: one statement, as a hint for events already handed)
        events = _read(self._query, self._known, queue, after, limit)
        if not events:
            return []
        self._remember({conn_id: (events[-1][0], events[-1][1])})
        return [(event[0], event[2], event[3], event[4]) for event in events]

    def last_events(self, conn_ids: Sequence[str]) -> dict[str, int]:
        """The id of the last event queued for each of the queues ``conn_ids`` (a read
        outside any transaction; one statement per 250 ids)."""
        return {queue.id: queue.last for queue in _views(self._query, conn_ids).values()}

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
        self.discard_many([(conn_id, upto)])

    def discard_many(self, marks: Sequence[tuple[str, int]]) -> None:
        """:meth:`discard_events` for each ``(conn_id, upto)``, in one transaction."""
        if any(upto > 0 for _, upto in marks):
            with self.transaction() as tx:
                tx.discard_many(marks)

    def checkpoint(self) -> None:
        """Fold the WAL back into the database file (keeps the WAL file bounded)."""
        if self.is_sqlite:
            try:
                self._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                logger("altwebsocket.storage").warning("WAL checkpoint failed: %s", exc)


_POOL_IDLE = 8  # idle connections a process keeps to PostgreSQL or MySQL
_KEYS_KEPT = 20_000  # queues whose last keys a process remembers (then it starts afresh)


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
