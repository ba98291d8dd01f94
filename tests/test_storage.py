"""The storage and the housekeeping built on it: gone clients, purging, schema, journal."""

from __future__ import annotations

import sqlite3

import pytest
import webtest

from altwebsocket import AltWebSocketHandler, AltWebSocketServer, AltWebSocketStorage, WSGIApp
from altwebsocket.config import Settings
from altwebsocket.exceptions import ConfigError
from altwebsocket.protocol.state import State
from altwebsocket.storage import ConnectionRecord, filesystem_type
from altwebsocket.storage.schema import CONNECTION_COLUMNS, table
from altwebsocket.transports.http.auth import hash_token, token_matches

from .support import FakeClock


class Recorder(AltWebSocketHandler):
    def on_close(self, conn, code, reason):
        conn.storage.append("closed", f"{conn.id}:{code}")


def test_gone_connection_is_closed_with_1006_once(data_dir) -> None:
    clock = FakeClock()
    server = AltWebSocketServer({"r": Recorder()},
                                settings=Settings(data=data_dir, gone_timeout=0.2), clock=clock)
    opened = server.open("r")
    clock.advance(0.3)
    closed, _ = server.sweep()
    assert closed == 1
    record = server.storage.connection(opened.id)
    assert record.state == State.CLOSED and record.close_code == 1006
    assert server.sweep()[0] == 0  # on_close ran once
    log = server.run(lambda ctx: ctx.tx.log_recent("r", "closed", 10))
    assert log == [f"{opened.id}:1006"]


def test_closed_connections_are_purged_with_their_events(data_dir) -> None:
    clock = FakeClock()
    server = AltWebSocketServer(settings=Settings(data=data_dir, gone_timeout=0.1,
                                                  keep_closed=0.1), clock=clock)
    opened = server.open("echo")
    clock.advance(0.2)
    server.sweep()
    clock.advance(0.2)
    assert server.sweep()[1] == 1
    assert server.storage.connection(opened.id) is None
    assert server.storage.events_after(opened.id, 0) == []


def test_wal_on_a_local_filesystem(data_dir) -> None:
    storage = AltWebSocketStorage(f"sqlite:///{data_dir}/x.db")
    storage.ensure_schema()
    mode = sqlite3.connect(f"{data_dir}/x.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert filesystem_type(data_dir) not in ("nfs", "nfs4")
    assert mode == "wal"


def test_rollback_journal_when_asked(data_dir) -> None:
    storage = AltWebSocketStorage(f"sqlite:///{data_dir}/y.db", journal_mode="delete")
    storage.ensure_schema()
    mode = sqlite3.connect(f"{data_dir}/y.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "delete"


def test_memory_database_is_refused_clearly() -> None:
    with pytest.raises(ConfigError):
        AltWebSocketStorage("sqlite:///:memory:")


def test_missing_data_folder_is_a_clear_error(tmp_path) -> None:
    storage = AltWebSocketStorage(f"sqlite:///{tmp_path}/missing/altws.db")
    with pytest.raises(ConfigError, match="does not exist"):
        storage.ensure_schema()


def test_transaction_rolls_back_on_error(data_dir) -> None:
    server = AltWebSocketServer(settings=Settings(data=data_dir))
    opened = server.open("echo")
    with pytest.raises(RuntimeError):
        with server.storage.transaction() as tx:
            tx.enqueue(opened.id, 0, b"lost")
            raise RuntimeError("boom")
    assert server.storage.events_after(opened.id, 0) == []
    assert server.storage.connection(opened.id).last_event == 0


def test_the_connection_record_types_the_columns_of_the_schema() -> None:
    """``ConnectionRecord``'s annotations (its fields' types, for mypy) name the columns of
    ``aws_connections`` in order, nullable ones as ``... | None``: a new column is typed too."""
    annotations = ConnectionRecord.__annotations__
    assert tuple(annotations) == CONNECTION_COLUMNS == ConnectionRecord._fields
    for column in table("aws_connections").columns:
        assert annotations[column.name].endswith(" | None") == column.nullable, column.name


def test_tokens_are_stored_only_as_hashes(data_dir) -> None:
    server = AltWebSocketServer(settings=Settings(data=data_dir))
    opened = webtest.TestApp(WSGIApp(server)).post_json("/echo/new", {}).json
    raw = open(f"{data_dir}/altws.db", "rb").read()
    wal = b""
    try:
        wal = open(f"{data_dir}/altws.db-wal", "rb").read()
    except OSError:
        pass
    assert opened["token"].encode() not in raw + wal
    record = server.storage.connection(opened["id"])
    assert record.token_hash == hash_token(opened["token"])
    assert token_matches(record, opened["token"])
    assert not token_matches(record, "x" + opened["token"])


def test_threads_taking_turns_share_one_warm_sqlite_connection(data_dir) -> None:
    """A WSGI server's threads take turns (waitress hands each request to the thread that
    waited longest): with a connection per thread every request would find a cold page
    cache. The pool gives the connection used last."""
    import threading

    storage = AltWebSocketStorage(f"sqlite:///{data_dir}/pool.db")
    storage.ensure_schema()  # (its own connection, closed)
    opened: list[object] = []
    connect = storage._database.connect

    def counting() -> object:
        opened.append(connect())
        return opened[-1]

    storage._database.connect = counting  # type: ignore[method-assign]
    used: set[int] = set()

    def request() -> None:
        with storage.transaction() as tx:
            used.add(id(tx._db))
            tx.kv_set("app", "k", "v")
        assert storage.connection("nobody") is None

    for _ in range(20):  # one after the other, each on a thread of its own
        thread = threading.Thread(target=request)
        thread.start()
        thread.join()
    assert len(opened) == 1 and len(used) == 1
    assert storage.data_version() is not None  # (streams keep one of their thread's)
    storage.close()


def test_a_mysql_server_that_never_greets_is_a_503_not_a_hang(tmp_path) -> None:
    """A port that accepts and says nothing (a wedged server, a firewall): PyMySQL's
    connect_timeout does not cover the greeting; the storage's read timeout does."""
    import socket
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    try:
        storage = AltWebSocketStorage(f"mysql://altws:pw@127.0.0.1:{port}/altws",
                                      busy_timeout=0.5)
        app = webtest.TestApp(WSGIApp(AltWebSocketServer(
            storage=storage, settings=Settings(data=str(tmp_path)))))
        started = time.monotonic()
        answer = app.post("/echo/new", "", status="*")
        assert answer.status_int == 503 and answer.json["error"] == "storage"
        assert time.monotonic() - started < 10
    finally:
        listener.close()
