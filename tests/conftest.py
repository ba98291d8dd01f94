"""Fixtures: a fresh data folder per test, in-process servers."""

from __future__ import annotations

from typing import Iterator

import pytest

from altwebsocket import AltWebSocketServer

from .support import Site, make_server, serving


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
