"""Fixtures: a real ``altws daemon`` and a real ``altws serve`` sharing one data folder (each
side in its own process: wake-up hints cross processes, and the tests kill the daemon)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..support import Process, serving, start_altws

APPS: list[str] = ["--app", "echo", "--app", "chat",
                   "--app", "presence=tests.daemon.apps:Presence"]


def start_daemon(data_dir: str, *extra: str) -> Process:
    """``altws daemon --port 0`` on the data folder, with the test apps."""
    return start_altws("daemon", data_dir, *APPS, *extra)


@pytest.fixture
def daemon(data_dir: str) -> Iterator[Process]:
    """A running daemon; ``daemon.url`` is ``ws://127.0.0.1:PORT``."""
    yield from serving(start_daemon(data_dir))


@pytest.fixture
def http(data_dir: str, daemon: Process) -> Iterator[Process]:
    """``altws serve`` on the same data folder, advertising the daemon in ``/info``."""
    yield from serving(start_altws("serve", data_dir, "--websocket-url", daemon.url, *APPS))
