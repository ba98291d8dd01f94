"""Storage faults (docs/reliability.md): a locked database, a read-only or full disk, a corrupt
database file, a missing data folder. Each one: a clear error in the log, a 503 JSON with
``Retry-After`` to the client, the server keeps running, and no acknowledged message is lost
or delivered twice once the fault is gone.

Tests run as root, for whom file modes mean nothing, so the read-only and full disk are
simulated on the server's SQLite connections (``PRAGMA query_only``, ``PRAGMA
max_page_count``), which fail exactly as SQLite does on a read-only or full file system."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from altwebsocket import AltWebSocketHandler, AltWebSocketServer
from altwebsocket.config import Settings

from ..support import (
    HTTP,
    TIMEOUT,
    make_server,
    new,
    post,
    send_body,
    start_altws,
    start_deployment,
    state_of,
    stored_events,
    web_app,
)


@contextmanager
def locked(path: str) -> Iterator[None]:
    """Another process's connection holding the write lock (past any busy_timeout)."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def with_pragma(server: AltWebSocketServer, pragma: str) -> None:
    """Run ``pragma`` on every new database connection of ``server`` (and drop the cached one)."""
    server.storage._database.on_connect.append(lambda db: db.execute(pragma))
    server.storage.close()


def heal(server: AltWebSocketServer) -> None:
    server.storage._database.on_connect.clear()
    server.storage.close()


def assert_503(response: Any, error: str = "storage") -> None:
    assert response.status_int == 503
    assert response.json["error"] == error
    assert int(response.headers["Retry-After"]) >= 1
    assert "Traceback" not in response.text


# --- in-process, every endpoint ------------------------------------------------------------

@pytest.fixture
def server(data_dir: str) -> AltWebSocketServer:
    return make_server(data_dir, busy_timeout=0.2, max_rate=0)


def test_locked_database_is_503_then_the_retry_is_delivered_once(server, caplog) -> None:
    app = web_app(server)
    conn = new(app)
    assert post(app, "/echo/send", send_body(conn, 1, "a")).json["ack"] == 1
    before = state_of(server, conn["id"])
    with locked(server.storage._database.path):
        assert_503(post(app, "/echo/send", send_body(conn, 2, "b"), status="*"))
        assert_503(app.post("/echo/new", "", status="*"))
        assert_503(post(app, "/echo/close", {**send_body(conn, 1), "code": 1000}, status="*"))
        stream = app.get(f"/echo/?id={conn['id']}&token={conn['token']}", status="*")
        assert_503(stream)
        assert state_of(server, conn["id"]) == before
    assert "busy" in caplog.text and "storage error" in caplog.text
    assert post(app, "/echo/send", send_body(conn, 2, "b")).json["ack"] == 2
    assert [m for _, m in stored_events(server, conn["id"])] == ["a", "b"]


@pytest.mark.parametrize("pragma, words", [
    ("PRAGMA query_only = ON", "read-only"),
    ("PRAGMA max_page_count = 1", "full"),  # any new page fails: "database or disk is full"
])
def test_read_only_or_full_storage_is_503_and_nothing_changes(server, caplog, pragma,
                                                              words) -> None:
    app = web_app(server)
    conn = new(app)
    big = "y" * 200_000  # needs new pages
    if "max_page_count" in pragma:
        pages = sqlite3.connect(server.storage._database.path).execute(
            "PRAGMA page_count").fetchone()[0]
        pragma = f"PRAGMA max_page_count = {pages}"
    before = state_of(server, conn["id"])
    with_pragma(server, pragma)
    refused = post(app, "/echo/send", send_body(conn, 1, big), status="*")
    assert_503(refused)
    assert words in refused.json["message"]
    assert words in caplog.text
    heal(server)
    assert state_of(server, conn["id"]) == before
    assert post(app, "/echo/send", send_body(conn, 1, big)).json["ack"] == 1
    assert [m for _, m in stored_events(server, conn["id"])] == [big]


class Swallower(AltWebSocketHandler):
    """An app that catches every exception of its own sends (a bad habit)."""

    def on_message(self, conn: Any, message: Any) -> None:
        try:
            conn.send(message)
        except Exception:
            pass


def test_a_database_error_a_handler_swallows_still_undoes_the_request(data_dir) -> None:
    server = AltWebSocketServer({"swallow": Swallower()}, settings=Settings(data=data_dir))
    app = web_app(server)
    conn = new(app, "swallow")
    pages = sqlite3.connect(server.storage._database.path).execute(
        "PRAGMA page_count").fetchone()[0]
    with_pragma(server, f"PRAGMA max_page_count = {pages}")
    assert_503(post(app, "/swallow/send", send_body(conn, 1, "z" * 200_000), status="*"))
    heal(server)
    record = server.storage.connection(conn["id"])
    assert record.last_seq == 0  # not acknowledged, so the client will send it again


def test_corrupt_database_file_is_503_until_replaced(data_dir, caplog) -> None:
    path = os.path.join(data_dir, "altws.db")
    with open(path, "wb") as out:
        out.write(b"this is not an SQLite database, just garbage " * 100)
    server = make_server(data_dir)
    app = web_app(server)
    refused = app.post("/echo/new", "", status="*")
    assert_503(refused)
    assert "damaged" in refused.json["message"]
    assert "not a database" in caplog.text
    os.remove(path)  # the operator restores a backup (here: a fresh file)
    assert new(app)["id"]


def test_missing_data_folder_is_503_until_it_exists(tmp_path, caplog) -> None:
    folder = tmp_path / "gone"
    settings = Settings(data=str(folder), storage=f"sqlite:///{folder}/altws.db")
    app = web_app(AltWebSocketServer(settings=settings))
    refused = app.post("/echo/new", "", status="*")
    assert_503(refused, "config")
    assert str(folder) not in refused.text  # paths go to the log only
    assert "does not exist" in caplog.text
    folder.mkdir()
    assert new(app)["id"]


def test_messages_under_intermittent_locks_arrive_exactly_once_in_order(server) -> None:
    app = web_app(server)
    conn = new(app)
    path = server.storage._database.path
    refusals = 0
    for seq in range(1, 41):
        while True:
            if seq % 7 == 0 and refusals < seq // 7:
                with locked(path):
                    response = post(app, "/echo/send", send_body(conn, seq, str(seq)), status="*")
                assert response.status_int == 503
                refusals += 1
                continue  # the client retries the same seq
            assert post(app, "/echo/send", send_body(conn, seq, str(seq))).json["ack"] == seq
            break
    assert refusals == 5
    assert [m for _, m in stored_events(server, conn["id"])] == [str(n) for n in range(1, 41)]


# --- real processes: the persistent server, CGI under Apache, the daemon ------------------------

def test_altws_serve_keeps_running_through_a_lock(data_dir) -> None:
    running = start_deployment("wsgi", data_dir, busy_timeout=0.3)
    try:
        base = running.base("echo")
        conn = HTTP.post(base + "/new").json()
        with locked(os.path.join(data_dir, "altws.db")):
            refused = HTTP.post(base + "/send", json=send_body(conn, 1))
            assert refused.status_code == 503 and refused.json()["error"] == "storage"
            assert int(refused.headers["Retry-After"]) >= 1
        assert HTTP.post(base + "/send", json=send_body(conn, 1)).json()["ack"] == 1
        assert running.proc.proc.poll() is None
    finally:
        running.stop()
    assert "storage error" in "".join(running.proc.output)


def test_cgi_answers_503_for_a_locked_then_a_corrupt_database(tmp_path) -> None:
    running = start_deployment("cgi", str(tmp_path), busy_timeout=0.3)
    try:
        base = running.base("echo")
        conn = HTTP.post(base + "/new").json()
        path = os.path.join(running.data, "altws.db")
        with locked(path):
            refused = HTTP.post(base + "/send", json=send_body(conn, 1))
            assert refused.status_code == 503 and refused.json()["error"] == "storage"
        assert HTTP.post(base + "/send", json=send_body(conn, 1)).json()["ack"] == 1
        for name in ("altws.db", "altws.db-wal", "altws.db-shm"):
            if os.path.exists(os.path.join(running.data, name)):
                os.remove(os.path.join(running.data, name))
        with open(path, "wb") as out:
            out.write(os.urandom(8192))
        os.chmod(path, 0o666)
        refused = HTTP.post(base + "/new")
        assert refused.status_code == 503 and refused.json()["error"] == "storage"
        assert "Traceback" not in refused.text
        os.remove(path)
        assert HTTP.post(base + "/new").status_code == 200
        shutil.rmtree(running.data)  # www-data cannot create it again under /var/tmp/altws
        refused = HTTP.post(base + "/new")
        assert refused.status_code == 503 and int(refused.headers["Retry-After"]) >= 1
    finally:
        running.stop()
        shutil.rmtree(running.data, ignore_errors=True)


def test_daemon_on_a_corrupt_database_stays_up_and_recovers(data_dir) -> None:
    path = os.path.join(data_dir, "altws.db")
    with open(path, "wb") as out:
        out.write(b"garbage" * 1000)
    proc = start_altws("daemon", data_dir)  # a real process: staying up is the point
    try:
        with ws_connect(proc.url + "/echo", open_timeout=TIMEOUT) as ws:
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=TIMEOUT)
            assert ws.close_code == 1013  # try again later
        os.remove(path)
        with ws_connect(proc.url + "/echo", open_timeout=TIMEOUT) as ws:
            ws.send("back")
            assert ws.recv(timeout=TIMEOUT) == "back"
        assert proc.proc.poll() is None
    finally:
        proc.stop()
    assert "storage" in "".join(proc.output)


# --- PostgreSQL and MariaDB: the database server drops our connections --------------------

@pytest.fixture(params=["postgresql", "mariadb"])
def server_database(request) -> Iterator[str]:
    """A fresh database on the session's PostgreSQL or MariaDB."""
    with request.getfixturevalue(f"{request.param}_server").fresh_database() as url:
        yield url


def drop_connections(url: str) -> int:
    """The database server ends every other connection to this database (as a restart, a
    failover or an idle-connection killer does); returns how many."""
    from benchmarks import databases

    admin = databases.connect(url)
    try:
        cursor = admin.cursor()
        if databases.engine(url) == "postgresql":
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")
            dropped = len(cursor.fetchall())
        else:
            cursor.execute("SELECT id FROM information_schema.processlist "
                           "WHERE db = DATABASE() AND id <> CONNECTION_ID()")
            ids = [row[0] for row in cursor.fetchall()]
            for conn_id in ids:
                cursor.execute(f"KILL {int(conn_id)}")
            dropped = len(ids)
        admin.commit()
        return dropped
    finally:
        admin.close()


def test_connections_the_database_drops_are_503_then_nothing_is_lost(server_database,
                                                                     tmp_path) -> None:
    server = AltWebSocketServer(storage=server_database, settings=Settings(
        data=str(tmp_path), max_rate=0))
    app = web_app(server)
    conn = new(app)
    refused = dropped = 0
    for seq in range(1, 41):
        if seq % 10 == 0:
            dropped += drop_connections(server_database)
        for _attempt in range(5):  # a client retries the same seq
            answer = post(app, "/echo/send", send_body(conn, seq, str(seq)), status="*")
            if answer.status_int == 200:
                assert answer.json["ack"] == seq
                break
            assert_503(answer)
            refused += 1
        else:
            raise AssertionError(f"seq {seq} never went through")
    assert dropped >= 4 and refused >= 1  # the pool's connections were dropped and noticed
    assert [message for _, message in stored_events(server, conn["id"])] == \
        [str(seq) for seq in range(1, 41)]  # once each, in order
    server.storage.close()


def test_a_row_locked_past_busy_timeout_is_503_busy_then_the_retry_is_delivered_once(
        server_database, tmp_path, caplog) -> None:
    """PostgreSQL's and MariaDB's form of a locked database: another transaction holds the
    connection's row (``SELECT … FOR UPDATE``) longer than ``busy_timeout``: a 503 that says
    busy (``Retry-After: 1``), nothing changed, and the retry goes through once."""
    from benchmarks import databases

    server = AltWebSocketServer(storage=server_database, settings=Settings(
        data=str(tmp_path), max_rate=0, busy_timeout=0.5))
    app = web_app(server)
    conn = new(app)
    assert post(app, "/echo/send", send_body(conn, 1, "a")).json["ack"] == 1
    before = state_of(server, conn["id"])
    holder = databases.connect(server_database)
    try:
        cursor = holder.cursor()
        cursor.execute("SELECT id FROM aws_connections WHERE id = %s FOR UPDATE", (conn["id"],))
        answer = post(app, "/echo/send", send_body(conn, 2, "b"), status="*")
        assert_503(answer)
        assert answer.headers["Retry-After"] == "1" and "busy" in answer.json["message"]
    finally:
        holder.rollback()
        holder.close()
    assert state_of(server, conn["id"]) == before
    assert "busy" in caplog.text
    assert post(app, "/echo/send", send_body(conn, 2, "b")).json["ack"] == 2
    assert [m for _, m in stored_events(server, conn["id"])] == ["a", "b"]
    server.storage.close()


def deadlocking(monkeypatch: pytest.MonkeyPatch, times: int) -> list[int]:
    """The first ``times`` inserts of an event fail as a deadlock victim's statement does
    on PostgreSQL ("deadlock detected") or MariaDB ("Deadlock found when trying to get
    lock"); returns the count of those failures."""
    from altwebsocket.storage.api import Transaction, _unavailable

    failures = [0]
    run = Transaction._run

    def failing(self: Any, statement: str, params: Any = ()) -> Any:
        if statement.startswith("INSERT INTO aws_events") and failures[0] < times:
            failures[0] += 1  # (what _run does with the driver's error)
            self.failed = sqlite3.OperationalError("deadlock detected")
            raise _unavailable(self.failed)
        return run(self, statement, params)

    monkeypatch.setattr(Transaction, "_run", failing)
    return failures


def test_a_deadlock_victim_is_run_once_more_and_delivered_once(server, monkeypatch,
                                                              caplog) -> None:
    app = web_app(server)
    conn = new(app)
    failures = deadlocking(monkeypatch, 1)
    assert post(app, "/echo/send", send_body(conn, 1, "a")).json["ack"] == 1
    assert failures == [1] and "deadlock detected" in caplog.text
    assert [m for _, m in stored_events(server, conn["id"])] == ["a"]  # once


def test_a_deadlock_that_keeps_coming_is_a_503_busy(server, monkeypatch) -> None:
    from altwebsocket.server import DEADLOCK_RETRIES

    app = web_app(server)
    conn = new(app)
    before = state_of(server, conn["id"])
    failures = deadlocking(monkeypatch, 100)
    answer = post(app, "/echo/send", send_body(conn, 1, "a"), status="*")
    assert_503(answer)
    assert answer.headers["Retry-After"] == "1" and failures == [DEADLOCK_RETRIES + 1]
    assert state_of(server, conn["id"]) == before
