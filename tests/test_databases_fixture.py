"""The database fixtures themselves (benchmarks/databases.py, tests/conftest.py): real
PostgreSQL and MariaDB servers on 127.0.0.1 run by their own users, a fresh database per test
that is gone afterwards, two connections at once that really lock each other out, and no
server or folder left behind by a test run that is killed."""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from benchmarks import databases

from .support import TIMEOUT

# The per-test databases the tests below were given: all must be gone by the last test.
SEEN: list[Any] = []


def tables(conn: Any, engine: str) -> list[str]:
    query = {
        "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table'",
        "postgresql": "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
        "mariadb": "SHOW TABLES",
    }[engine]
    cur = conn.cursor()
    cur.execute(query)
    rows = [row[0] for row in cur.fetchall()]
    conn.commit()
    return rows


def remember(request: Any, url: str) -> None:
    if databases.engine(url) != "sqlite":
        server = request.getfixturevalue(f"{databases.engine(url)}_server")
        SEEN.append((server, url.rsplit("/", 1)[1]))


def test_url_forms(postgresql_url, mariadb_url, database_url):
    pattern = {"sqlite": r"sqlite:////.+/altws\.db",
               "postgresql": r"postgresql://altws:\w+@127\.0\.0\.1:\d+/t_[0-9a-f]{12}",
               "mariadb": r"mysql://altws:\w+@127\.0\.0\.1:\d+/t_[0-9a-f]{12}"}
    assert re.fullmatch(pattern[databases.engine(database_url)], database_url)
    assert re.fullmatch(r"postgresql://altws:\w+@127\.0\.0\.1:\d+/altws", postgresql_url)
    assert re.fullmatch(r"mysql://altws:\w+@127\.0\.0\.1:\d+/altws", mariadb_url)


def test_fresh_database_create_insert_select(request, database_url):
    remember(request, database_url)
    engine = databases.engine(database_url)
    if engine == "sqlite":
        assert not os.path.exists(database_url[len("sqlite:///"):])
    writer = databases.connect(database_url)
    reader = databases.connect(database_url)
    try:
        assert tables(writer, engine) == []           # fresh: nothing from an earlier test
        cur = writer.cursor()
        cur.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body VARCHAR(100) NOT NULL)")
        mark = "?" if engine == "sqlite" else "%s"
        cur.executemany(f"INSERT INTO notes (id, body) VALUES ({mark}, {mark})",
                        [(1, "hello"), (2, "héllo wörld ✓"), (3, "")])
        writer.commit()
        cur = reader.cursor()
        cur.execute("SELECT id, body FROM notes ORDER BY id")
        assert [tuple(r) for r in cur.fetchall()] == [(1, "hello"), (2, "héllo wörld ✓"), (3, "")]
        reader.commit()
        assert tables(reader, engine) == ["notes"]
    finally:
        writer.close()
        reader.close()


def test_two_connections_row_lock(request, database_url):
    """One connection holds a row (``SELECT … FOR UPDATE``; SQLite: ``BEGIN IMMEDIATE``), the
    other's same request waits until the first commits, then sees the first's update."""
    remember(request, database_url)
    engine = databases.engine(database_url)
    options = ({"timeout": 3 * TIMEOUT, "isolation_level": None, "check_same_thread": False}
               if engine == "sqlite" else {})
    first = databases.connect(database_url, **options)
    second = databases.connect(database_url, **options)
    lock_timeout = {"postgresql": f"SET lock_timeout = '{int(3 * TIMEOUT)}s'",
                    "mariadb": f"SET SESSION innodb_lock_wait_timeout = {int(3 * TIMEOUT)}"}
    begin = "BEGIN IMMEDIATE" if engine == "sqlite" else None
    lock = "SELECT value FROM counter WHERE id = 1" + ("" if engine == "sqlite" else " FOR UPDATE")

    def run(conn: Any, *statements: str) -> Any:
        cur = conn.cursor()
        for statement in statements:
            if statement:
                cur.execute(statement)
        return cur

    try:
        for conn in (first, second):
            if engine in lock_timeout:
                run(conn, lock_timeout[engine])
                conn.commit()
        run(first, "CREATE TABLE counter (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)",
            "INSERT INTO counter (id, value) VALUES (1, 0)")
        first.commit()

        assert run(first, begin, lock).fetchone()[0] == 0    # the first holds the row
        started, got = threading.Event(), {}

        def contender() -> None:
            try:
                started.set()
                got["asked"] = time.monotonic()
                got["value"] = run(second, begin, lock).fetchone()[0]
                got["at"] = time.monotonic()
                run(second, "UPDATE counter SET value = value + 10 WHERE id = 1")
                second.commit()
            except Exception as exc:  # noqa: BLE001 - reported by the main thread
                got["error"] = exc

        thread = threading.Thread(target=contender, daemon=True)
        thread.start()
        assert started.wait(TIMEOUT)
        time.sleep(0.5)
        assert "at" not in got and "error" not in got, got   # the second waits for the row
        run(first, "UPDATE counter SET value = value + 1 WHERE id = 1")
        committed = time.monotonic()
        first.commit()
        thread.join(3 * TIMEOUT)
        assert not thread.is_alive() and "error" not in got, got
        assert got["asked"] < committed <= got["at"]         # it waited for the commit...
        assert got["value"] == 1                             # ...and saw the first's update
        if engine == "sqlite":
            run(first, "BEGIN")
        assert run(first, "SELECT value FROM counter WHERE id = 1").fetchone()[0] == 11
        first.commit()
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize("engine", ["postgresql", "mariadb"])
def test_fresh_databases_are_new_and_dropped(request, engine):
    server = request.getfixturevalue(f"{engine}_server")
    with server.fresh_database() as url:
        name = url.rsplit("/", 1)[1]
        assert name in server.databases()
        conn = databases.connect(url)
        tables(conn, engine)
        conn.cursor().execute("CREATE TABLE left_behind (id INTEGER)")
        conn.commit()
        # A connection still open when the test ends does not keep its database alive.
    assert name not in server.databases()
    with server.fresh_database() as other:
        assert other != url
        with contextlib.closing(databases.connect(other)) as conn2:
            assert tables(conn2, engine) == []
    conn.close()


@pytest.mark.parametrize("engine", ["postgresql", "mariadb"])
def test_servers_run_as_their_own_user_on_loopback(request, engine):
    server = request.getfixturevalue(f"{engine}_server")
    assert server.folder.startswith("/var/tmp/altws-")
    pid_file = (os.path.join(server.folder, "data", "postmaster.pid") if engine == "postgresql"
                else os.path.join(server.folder, "mysqld.pid"))
    with open(pid_file) as f:
        pid = int(f.readline())
    with open(f"/proc/{pid}/status") as f:
        uid = int(re.search(r"^Uid:\s+(\d+)", f.read(), re.M).group(1))
    if os.geteuid() == 0:
        assert pwd.getpwuid(uid).pw_name == server.system_user
    with contextlib.closing(server.admin()) as conn:
        cur = conn.cursor()
        cur.execute("SHOW listen_addresses" if engine == "postgresql" else "SELECT @@bind_address")
        assert cur.fetchone()[0] == "127.0.0.1"


KILLED_RUN = """
import sys, time
sys.path.insert(0, {root!r})
from benchmarks import databases
server = databases.PostgreSQL().start()
print(server.folder, flush=True)
time.sleep(600)
"""


def test_a_killed_run_leaves_no_server():
    """SIGKILL the process that started a server: its watchdog kills the server and removes
    the folder at once; and a folder whose owner is gone is cleaned by the next start."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN.format(root=root)],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        folder = proc.stdout.readline().strip()   # type: ignore[union-attr]
        assert folder.startswith("/var/tmp/altws-pg-"), folder
        assert databases._pids_using(folder)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(TIMEOUT)
    deadline = time.monotonic() + 3 * TIMEOUT
    while (os.path.exists(folder) or databases._pids_using(folder)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(folder) and not databases._pids_using(folder)

    # No watchdog (killed too, or a reboot): the next start's remove_stale() does it.
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = os.path.join(databases.TMP, "altws-pg-stale-test")
    live = os.path.join(databases.TMP, "altws-pg-live-test")
    for folder, owner in ((stale, f"{gone.pid} 0"),
                          (live, f"{os.getpid()} {databases._start_time(os.getpid())}")):
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "owner"), "w") as f:
            f.write(owner)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", stale])
    try:
        deadline = time.monotonic() + TIMEOUT   # until it has exec'd, it names no folder
        while sleeper.pid not in databases._pids_using(stale) and time.monotonic() < deadline:
            time.sleep(0.02)
        removed = databases.remove_stale("altws-pg-")
        assert stale in removed and live not in removed
        assert sleeper.wait(TIMEOUT) == -signal.SIGKILL
        assert not os.path.exists(stale) and os.path.exists(live)
    finally:
        sleeper.kill()
        databases.remove_folder(live)


def test_zz_no_per_test_database_is_left(postgresql_server, mariadb_server):
    """Runs last in this file: every database the tests above were given is gone."""
    for server, name in SEEN:
        assert name not in server.databases(), name
    for server in (postgresql_server, mariadb_server):
        assert [d for d in server.databases() if d.startswith("t_")] == []
