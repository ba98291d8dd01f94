"""Fixtures: a fresh data folder per test, in-process servers, and the HTTP deployments."""

from __future__ import annotations

from typing import Iterator

import pytest

from altwebsocket import AltWebSocketServer

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


def _deployment(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    data = str(tmp_path_factory.mktemp(f"data-{kind}"))
    yield from serving(start_deployment(kind, data, **DEPLOYMENT_SETTINGS))


@pytest.fixture(scope="module")
def wsgi_deployment(tmp_path_factory) -> Iterator[Deployment]:
    """``altws serve`` (waitress), a real process."""
    yield from _deployment("wsgi", tmp_path_factory)


@pytest.fixture(scope="module")
def cgi_deployment(tmp_path_factory) -> Iterator[Deployment]:
    """``altws cgi-server``: Apache running the CGI made from deploy/."""
    yield from _deployment("cgi", tmp_path_factory)


@pytest.fixture(params=["wsgi", "cgi"])
def deployment(request: pytest.FixtureRequest) -> Deployment:
    """Each HTTP scenario runs on both deployments."""
    return request.getfixturevalue(f"{request.param}_deployment")  # type: ignore
