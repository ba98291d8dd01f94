"""Fixtures: a fresh data folder per test, in-process servers, the HTTP deployments, and
real PostgreSQL and MariaDB servers with a fresh database per test (benchmarks/databases.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from altwebsocket import AltWebSocketServer
from benchmarks import databases

from .support import Deployment, Site, make_server, serving, start_deployment


@pytest.fixture
def data_dir(tmp_path) -> str:
    folder = tmp_path / "data"
    folder.mkdir()
    return str(folder)


@pytest.fixture
def server(data_dir) -> AltWebSocketServer:
    """An in-process server with echo and chat on a fresh SQLite file."""
    return make_server(data_dir)


@pytest.fixture
def live_server(data_dir) -> Iterator[Site]:
    """The site ``altws serve`` serves, in threads of this process, on 127.0.0.1, a port of
    its own, a fresh data folder: the emulation alone (tests that want the daemon start their
    own)."""
    yield from serving(Site(data_dir))


# The HTTP deployments, each started once per test module and shared by the tests of that
# module: they leave nothing a later one could see but chat history (read past, see
# test_http_deployments.read_until) and a few connections. Once per module, not per session:
# stopping it at the end of the module also ends whatever streams a failed test left open,
# so that a failure cannot slow or starve the modules after it.
DEPLOYMENT_SETTINGS = {"heartbeat": 1, "max_streams": 100}


def _deployment(kind: str, tmp_path_factory: pytest.TempPathFactory, **settings: str
                ) -> Iterator[Deployment]:
    data = str(tmp_path_factory.mktemp(f"data-{kind}"))
    yield from serving(start_deployment(kind, data, **DEPLOYMENT_SETTINGS, **settings))


@pytest.fixture(scope="module")
def wsgi_deployment(tmp_path_factory) -> Iterator[Deployment]:
    """``altws serve`` (waitress), a real process."""
    yield from _deployment("wsgi", tmp_path_factory)


@pytest.fixture(scope="module")
def cgi_deployment(tmp_path_factory) -> Iterator[Deployment]:
    """``altws cgi-server``: Apache running the CGI made from deploy/."""
    yield from _deployment("cgi", tmp_path_factory)


@pytest.fixture(scope="module")
def wsgi_postgresql_deployment(tmp_path_factory, postgresql_server) -> Iterator[Deployment]:
    """``altws serve --storage postgresql://…`` on a real PostgreSQL."""
    with postgresql_server.fresh_database() as url:
        yield from _deployment("wsgi", tmp_path_factory, storage=url)


@pytest.fixture(scope="module")
def wsgi_mariadb_deployment(tmp_path_factory, mariadb_server) -> Iterator[Deployment]:
    """``altws serve --storage mysql://…`` on a real MariaDB."""
    with mariadb_server.fresh_database() as url:
        yield from _deployment("wsgi", tmp_path_factory, storage=url)


@pytest.fixture(scope="module")
def cgi_mariadb_deployment(tmp_path_factory, mariadb_server) -> Iterator[Deployment]:
    """Apache CGI on MariaDB: what a shared host with "MySQL Databases" offers."""
    with mariadb_server.fresh_database() as url:
        yield from _deployment("cgi", tmp_path_factory, storage=url)


# Passenger's pool is the stream ceiling there (a Python process per request), so its
# fixture cannot take DEPLOYMENT_SETTINGS' 100 streams: the pool must hold the most any
# scenario holds at once -- 40 open streams (test_many_open_streams_at_once), or 20 streams
# with 20 senders beside them -- plus the streams an earlier test closed that are still held:
# behind Passenger a gone client's stream ends only after 2-3 heartbeats (measured: its
# write passes Passenger's core and Apache before one fails), so the 20 of the concurrent
# senders' test may still hold processes when the 40 open -- hence a faster heartbeat too --
# and a few processes for the POSTs.
PASSENGER_POOL = 64
PASSENGER_MAX_STREAMS = 60


@pytest.fixture(scope="module")
def passenger_deployment(tmp_path_factory) -> Iterator[Deployment]:
    """``altws cgi-server --passenger``: Apache + mod_passenger serving deploy/cpanel-passenger/
    as cPanel's "Setup Python App" does."""
    data = str(tmp_path_factory.mktemp("data-passenger"))
    settings = dict(DEPLOYMENT_SETTINGS, max_streams=PASSENGER_MAX_STREAMS, heartbeat=0.5)
    yield from serving(start_deployment("passenger", data, pool=PASSENGER_POOL, **settings))


DEPLOYMENTS = ["wsgi", "cgi", "passenger", "wsgi_postgresql", "wsgi_mariadb", "cgi_mariadb"]


@pytest.fixture(params=DEPLOYMENTS)
def deployment(request: pytest.FixtureRequest) -> Deployment:
    """Each HTTP scenario runs on every deployment: altws serve, Apache CGI and Apache +
    Passenger, on SQLite, PostgreSQL and MariaDB."""
    return request.getfixturevalue(f"{request.param}_deployment")  # type: ignore


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
