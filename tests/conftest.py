"""Fixtures: a fresh data folder per test, in-process servers, and a real ``altws serve``."""

from __future__ import annotations

from typing import Iterator

import pytest

from altwebsocket import AltWebSocketServer

from .support import ALTWS, Process, make_server


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
def live_server(data_dir) -> Iterator[Process]:
    """A real ``altws serve`` on 127.0.0.1, a port of its own, a fresh data folder: the
    emulation alone (``--no-daemon``; tests that want the daemon start their own)."""
    proc = Process(ALTWS + ["serve", "--port", "0", "--no-daemon", "--data", data_dir])
    try:
        yield proc
    finally:
        proc.stop()
