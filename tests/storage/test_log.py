"""The broadcast log (``storage/log.py``) on every engine: a broadcast writes the same few
rows whatever the number of its recipients, and every queue still numbers its events 1, 2,
3… without gaps — direct events and broadcasts interleaved, sessions with connections of
several apps, exclusions, connections that open and close, checkpoints and the log's purge
— read from any resume point by a process that remembers nothing."""

from __future__ import annotations

import random
from typing import Any

import pytest

from altwebsocket.protocol.session import SESSION_APP
from altwebsocket.protocol.state import State
from altwebsocket.storage import AltWebSocketStorage
from altwebsocket.storage.api import Transaction


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


def _storage(url: str, clock: Clock | None = None) -> AltWebSocketStorage:
    storage = AltWebSocketStorage(url, clock=clock or Clock())
    storage.ensure_schema()
    return storage


def _open(storage: AltWebSocketStorage, app: str, session: str | None = None,
          ref: str | None = None) -> str:
    with storage.transaction() as tx:
        transport = "session" if app == SESSION_APP else "emulation"
        return tx.insert_connection(app, "hash", "", None, transport=transport,
                                    session_id=session, session_ref=ref).id


def _written(monkeypatch: pytest.MonkeyPatch, action: Any) -> int:
    """How many rows ``action`` inserts, updates or deletes."""
    rows = [0]
    run, run_many = Transaction._run, Transaction._run_many

    def counting_run(self: Transaction, statement: str, params: Any = ()) -> Any:
        cursor = run(self, statement, params)
        if statement.split(None, 1)[0] in ("INSERT", "UPDATE", "DELETE"):
            rows[0] += max(0, cursor.rowcount)
        return cursor

    def counting_run_many(self: Transaction, statement: str, many: Any) -> None:
        rows[0] += len(many)
        run_many(self, statement, many)

    with monkeypatch.context() as patch:
        patch.setattr(Transaction, "_run", counting_run)
        patch.setattr(Transaction, "_run_many", counting_run_many)
        action()
    return rows[0]


def test_a_broadcast_writes_as_many_rows_for_sixty_connections_as_for_six(
        database_url, monkeypatch) -> None:
    storage = _storage(database_url)
    written = {}
    for crowd in (6, 60):
        app = f"room{crowd}"
        plain = [_open(storage, app) for _ in range(crowd // 2)]
        sessions = [_open(storage, SESSION_APP) for _ in range(crowd // 2)]
        members = [_open(storage, app, session, "c") for session in sessions]
        with storage.transaction() as tx:  # (the app's first broadcast adds its counter)
            tx.enqueue_app(app, 1, b"first")

        def broadcast() -> None:
            with storage.transaction() as tx:
                assert tx.enqueue_app(app, 1, b"to all") == crowd  # noqa: B023
        written[crowd] = _written(monkeypatch, broadcast)
        for queue in plain + sessions:
            assert [(event[0], event[2]) for event in storage.events_after(queue, 0)] == \
                [(1, b"first"), (2, b"to all")]
        assert len(members) == crowd // 2
    assert written[6] == written[60] == 3  # the log's clock, the app's ordinal, the row


class Model:
    """What every queue must hold, kept beside the storage by the test."""

    def __init__(self, storage: AltWebSocketStorage) -> None:
        self.storage = storage
        self.queues: dict[str, list[tuple[str | None, bytes]]] = {}  # queue -> its events
        self.base: dict[str, int] = {}  # queue -> its checkpoint
        self.conns: dict[str, tuple[str, str, str | None]] = {}  # conn -> (app, queue, ref)
        self.open: list[str] = []
        self.order: dict[str, tuple[float, str]] = {}  # conn -> its place in a session

    def open_conn(self, app: str, session: str | None) -> None:
        ref = None if session is None else f"r{len(self.conns)}"
        conn = _open(self.storage, app, session, ref)
        queue = session or conn
        self.queues.setdefault(queue, [])
        self.base.setdefault(queue, 0)
        self.conns[conn] = (app, queue, ref)
        self.open.append(conn)
        record = self.storage.connection(conn)
        assert record is not None
        self.order[conn] = (record.created, conn)

    def direct(self, conn: str, payload: bytes, as_a_receive: bool = False) -> None:
        """One event for ``conn``; ``as_a_receive``: after reading its row locked, as the
        server's receive does (on SQLite that read brings its queue's numbers)."""
        _, queue, ref = self.conns[conn]
        with self.storage.transaction() as tx:
            if as_a_receive:
                assert tx.connection(conn, lock=True) is not None
            event_id = tx.enqueue(conn, 1, payload)
        self.queues[queue].append((ref, payload))
        assert event_id == len(self.queues[queue])

    def broadcast(self, app: str, payload: bytes, exclude: str | None) -> None:
        with self.storage.transaction() as tx:
            count = tx.enqueue_app(app, 1, payload, exclude)
            numbered = {queue: event_id for queue, (event_id, _) in tx.keys.items()}
        got = sorted((conn for conn in self.open
                      if self.conns[conn][0] == app and conn != exclude),
                     key=lambda conn: self.order[conn])
        assert count == len(got)
        for conn in got:
            _, queue, ref = self.conns[conn]
            self.queues[queue].append((ref, payload))
        # the ids the broadcast numbered its events with (those handed to the streams of
        # this process) are the ids a read gives them
        assert numbered == {self.conns[conn][1]: len(self.queues[self.conns[conn][1]])
                            for conn in got}

    def close(self, conn: str) -> None:
        with self.storage.transaction() as tx:
            tx.set_closed(conn, 1000, "")
        self.open.remove(conn)

    def discard(self, queue: str, upto: int) -> None:
        with self.storage.transaction() as tx:
            tx.discard(queue, upto)
        self.base[queue] = max(self.base[queue], upto)

    def check(self, url: str, resume_points: int = 3, rng: random.Random | None = None
              ) -> None:
        """Every queue, read from its checkpoint and from a few resume points, by this
        process and by a storage that remembers nothing."""
        fresh = _storage(url)
        try:
            for queue, events in self.queues.items():
                base = self.base[queue]
                whole = [(n + 1, ref, payload) for n, (ref, payload) in enumerate(events)]
                assert self.storage.last_events([queue]) == {queue: len(events)}
                points = [0, base] + [(rng or random).randint(base, len(events))
                                      for _ in range(resume_points)]
                for storage in (self.storage, fresh):
                    for after in points:
                        read = [(event[0], event[3], event[2])
                                for event in _read_all(storage, queue, after)]
                        assert read == whole[max(after, base):], (queue, after)
        finally:
            fresh.close()


def _read_all(storage: AltWebSocketStorage, queue: str, after: int) -> list[Any]:
    out: list[Any] = []
    for _ in range(1000):
        page = storage.events_after(queue, out[-1][0] if out else after, limit=7)
        out += page
        if len(page) < 7:
            return out
    raise AssertionError("no end to the events")


def test_every_queue_numbers_its_events_without_gaps_whatever_the_mix(database_url) -> None:
    rng = random.Random(14)
    clock = Clock()
    storage = _storage(database_url, clock)
    model = Model(storage)
    sessions = [_open(storage, SESSION_APP) for _ in range(3)]
    for session in sessions:
        model.queues[session] = []
        model.base[session] = 0
    for _ in range(4):
        model.open_conn("a", None)
    for session in sessions:
        model.open_conn("a", session)
        model.open_conn("b", session)
    for step in range(160):
        payload = b"op%d" % step
        roll = rng.random()
        if roll < 0.35:
            exclude = rng.choice(model.open) if model.open and rng.random() < 0.3 else None
            model.broadcast(rng.choice("ab"), payload, exclude)
        elif roll < 0.6 and model.open:
            model.direct(rng.choice(model.open), payload, rng.random() < 0.5)
        elif roll < 0.7:
            model.open_conn(rng.choice("ab"), rng.choice([None, *sessions]))
        elif roll < 0.77 and len(model.open) > 3:
            model.close(rng.choice(model.open))
        elif roll < 0.92:
            queue = rng.choice(list(model.queues))
            model.discard(queue, rng.randint(0, len(model.queues[queue])))
        else:
            model.check(database_url, 1, rng)
    model.check(database_url, 6, rng)
    # Every client saw everything: the broadcasts before the checkpoints are purged, and
    # what comes next is numbered on.
    for queue, events in model.queues.items():
        model.discard(queue, len(events))
    clock.now += 3600
    with storage.transaction() as tx:
        tx.purge_closed(clock.now - 7200)
    kept = storage._query("SELECT pos FROM aws_broadcasts")
    clock = storage._query("SELECT value FROM aws_counters WHERE name = ''")
    assert kept == clock  # the last one only, at the checkpoints' position
    model.broadcast("a", b"after the purge", None)
    model.broadcast("b", b"and again", model.open[0])
    for conn in list(model.open)[:4]:
        model.direct(conn, b"direct after the purge")
    model.check(database_url, 2, rng)
    storage.close()


def _statements(monkeypatch: pytest.MonkeyPatch, action: Any) -> list[str]:
    """The statements ``action`` runs, each's first two words."""
    seen: list[str] = []
    call = Transaction._call

    def recording(self: Transaction, method: Any, statement: str, params: Any) -> None:
        seen.append(" ".join(statement.split()[:2]))
        call(self, method, statement, params)

    with monkeypatch.context() as patch:
        patch.setattr(Transaction, "_call", recording)
        action()
    return seen


def test_on_sqlite_a_receive_reads_the_queue_with_the_connections_row(
        tmp_path, monkeypatch) -> None:
    """The echo's transaction: its connection's row read locked, then one event queued. On
    SQLite, the one writer, the row's read brings the queue's numbers too, so queueing the
    event reads nothing more; a statement in between (here a broadcast, which changes what
    the queue's last event is) makes it read them again, and the numbers stay right."""
    storage = _storage(f"sqlite:///{tmp_path}/altws.db")
    session = _open(storage, SESSION_APP)
    model = Model(storage)
    model.queues[session], model.base[session] = [], 0
    model.open_conn("echo", session)
    model.open_conn("echo", None)
    member, plain = model.open
    for conn in (member, plain):
        model.direct(conn, b"first")  # (each queue's first event)

    for conn in (member, plain):
        seen = _statements(monkeypatch, lambda: model.direct(conn, b"echo", True))  # noqa: B023
        assert seen == ["SELECT r.id,", "UPDATE aws_connections", "INSERT INTO"], conn
    model.check(f"sqlite:///{tmp_path}/altws.db")

    for conn in (member, plain):  # a broadcast in between: the numbers are read again
        _, queue, ref = model.conns[conn]
        with storage.transaction() as tx:
            tx.connection(conn, lock=True)
            assert tx.enqueue_app("echo", 1, b"to all") == 2
            after = tx.enqueue(conn, 1, b"after it")
        for other in (member, plain):
            model.queues[model.conns[other][1]].append((model.conns[other][2], b"to all"))
        model.queues[queue].append((ref, b"after it"))
        assert after == len(model.queues[queue])
    model.check(f"sqlite:///{tmp_path}/altws.db")
    storage.close()


def test_a_connection_gets_the_broadcasts_of_its_time_only(tmp_path) -> None:
    storage = _storage(f"sqlite:///{tmp_path}/altws.db")
    early = _open(storage, "chat")
    with storage.transaction() as tx:
        tx.enqueue_app("chat", 1, b"before")
    late = _open(storage, "chat")
    with storage.transaction() as tx:
        tx.enqueue_app("chat", 1, b"both")
        tx.set_closed(early, 1000, "")
    with storage.transaction() as tx:
        tx.enqueue_app("chat", 1, b"after")
    assert [event[2] for event in storage.events_after(early, 0)] == [b"before", b"both"]
    assert [event[2] for event in storage.events_after(late, 0)] == [b"both", b"after"]
    record = storage.connection(early)
    assert record is not None and record.state == State.CLOSED


def test_a_version_3_database_keeps_its_numbers_and_gets_the_log(tmp_path) -> None:
    import sqlite3

    from altwebsocket.storage import SCHEMA_VERSION

    path = str(tmp_path / "altws.db")
    _storage(f"sqlite:///{path}").close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE aws_broadcasts")
    db.execute("DROP TABLE aws_counters")
    for column in ("joined_ord", "counted_ord", "left_ord", "left_pos", "base_event",
                   "base_pos", "base_member", "base_created"):
        db.execute(f"ALTER TABLE aws_connections DROP COLUMN {column}")
    db.execute("ALTER TABLE aws_events DROP COLUMN pos")
    columns = "id, app, token_hash, protocol, state, created, last_seen, last_event, " \
        "last_seq, transport, sent_event"
    db.execute(f"INSERT INTO aws_connections ({columns}) VALUES "
               "('open', 'chat', 'x', '', 1, 1, 1, 3, 0, 'emulation', 1), "
               "('shut', 'chat', 'x', '', 3, 1, 1, 1, 0, 'emulation', 0)")
    db.executemany("INSERT INTO aws_events (conn_id, event_id, kind, payload, created) "
                   "VALUES (?, ?, ?, ?, 1)",  # ('open', 1) was seen and deleted
                   [("open", 2, 1, b"two"), ("open", 3, 1, b"three"), ("shut", 1, 3, b"bye")])
    db.execute("PRAGMA user_version = 3")
    db.commit()
    db.close()
    storage = _storage(f"sqlite:///{path}")
    with storage.transaction() as tx:
        assert tx.enqueue_app("chat", 1, b"news") == 1  # not to the closed one
    with storage.transaction() as tx:
        assert tx.enqueue("open", 1, b"direct") == 5
    assert [(event[0], event[2]) for event in storage.events_after("open", 0)] == \
        [(2, b"two"), (3, b"three"), (4, b"news"), (5, b"direct")]
    assert [event[0] for event in storage.events_after("shut", 0)] == [1]
    assert storage.last_events(["open", "shut"]) == {"open": 5, "shut": 1}
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    check.close()
    storage.close()


def test_counts_that_disagree_with_the_log_are_a_503_not_a_wrong_number(tmp_path) -> None:
    from altwebsocket.exceptions import StorageUnavailable

    storage = _storage(f"sqlite:///{tmp_path}/altws.db")
    conn = _open(storage, "chat")
    with storage.transaction() as tx:
        tx.enqueue_app("chat", 1, b"one")
        assert tx.enqueue(conn, 1, b"two") == 2
    storage._query("UPDATE aws_events SET event_id = 1 WHERE conn_id = ?", (conn,))  # damage
    fresh = _storage(f"sqlite:///{tmp_path}/altws.db")
    with pytest.raises(StorageUnavailable):
        fresh.events_after(conn, 0)


def test_a_database_without_the_logs_clock_gets_it_and_loses_no_event(tmp_path) -> None:
    storage = _storage(f"sqlite:///{tmp_path}/altws.db")
    conn = _open(storage, "echo")
    storage._query("DELETE FROM aws_counters")
    with storage.transaction() as tx:
        assert tx.enqueue(conn, 1, b"kept") == 1
    assert [(event[0], event[2]) for event in storage.events_after(conn, 0)] == [(1, b"kept")]
    assert storage._query("SELECT name, value FROM aws_counters") == [("", 0)]
