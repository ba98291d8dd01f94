"""Fixtures: a fresh data folder per test, in-process servers, a real ``altws serve``, and
real PostgreSQL and MariaDB servers with a fresh database per test (tests/databases.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from altwebsocket import AltWebSocketServer
from altwebsocket.config import Settings

from . import databases
from .support import ALTWS, Process


@pytest.fixture
def data_dir(tmp_path) -> str:
    folder = tmp_path / "data"
    folder.mkdir()
    return str(folder)


@pytest.fixture
def server(data_dir) -> AltWebSocketServer:
    """An in-process server with echo and chat on a fresh SQLite file."""
    settings = Settings(data=data_dir, stream_lifetime=5, heartbeat=1, poll_interval=0.2)
    return AltWebSocketServer(settings=settings)


@pytest.fixture
def live_server(data_dir) -> Iterator[Process]:
    """A real ``altws serve`` on 127.0.0.1, a port of its own, a fresh data folder: the
    emulation alone (``--no-daemon``; tests that want the daemon start their own)."""
    proc = Process(ALTWS + ["serve", "--port", "0", "--no-daemon", "--data", data_dir])
    try:
        yield proc
    finally:
        proc.stop()


# Real database servers (tests/databases.py): one PostgreSQL and one MariaDB per test session,
# each started on first use; ``database_url`` gives each test a fresh database on each engine.

@pytest.fixture(scope="session")
def postgresql_server() -> Iterator[databases.PostgreSQL]:
    with databases.PostgreSQL() as server:
        yield server


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[databases.MariaDB]:
    with databases.MariaDB() as server:
        yield server


@pytest.fixture(scope="session")
def postgresql_url(postgresql_server) -> str:
    """``postgresql://altws:PW@127.0.0.1:PORT/altws``: the session's server, its own database."""
    return postgresql_server.url()


@pytest.fixture(scope="session")
def mariadb_url(mariadb_server) -> str:
    """``mysql://altws:PW@127.0.0.1:PORT/altws``: the session's server, its own database."""
    return mariadb_server.url()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def database_url(request, tmp_path) -> Iterator[str]:
    """A fresh, empty database for this test, dropped after it: ``sqlite:///TMP/altws.db``,
    ``postgresql://altws:PW@127.0.0.1:PORT/t_xxx``, ``mysql://altws:PW@127.0.0.1:PORT/t_xxx``."""
    if request.param == "sqlite":
        fresh = databases.fresh_sqlite(str(tmp_path))
    else:
        fresh = request.getfixturevalue(f"{request.param}_server").fresh_database()
    with fresh as url:
        yield url
