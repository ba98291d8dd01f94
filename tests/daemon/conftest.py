"""Fixtures: a real ``altws daemon`` and a real ``altws serve`` sharing one data folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..support import ALTWS, ROOT, Process

APPS: list[str] = ["--app", "echo", "--app", "chat",
                   "--app", "presence=tests.daemon.apps:Presence"]


def start_daemon(data_dir: str, *extra: str) -> Process:
    """``altws daemon --port 0`` on the data folder, with the test apps."""
    return Process(ALTWS + ["daemon", "--port", "0", "--data", data_dir, *APPS, *extra],
                   cwd=ROOT)


@pytest.fixture
def daemon(data_dir: str) -> Iterator[Process]:
    """A running daemon; ``daemon.url`` is ``ws://127.0.0.1:PORT``."""
    proc = start_daemon(data_dir)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def http(data_dir: str, daemon: Process) -> Iterator[Process]:
    """``altws serve`` on the same data folder, advertising the daemon in ``/info``."""
    proc = Process(ALTWS + ["serve", "--port", "0", "--data", data_dir,
                            "--websocket-url", daemon.url, *APPS], cwd=ROOT)
    try:
        yield proc
    finally:
        proc.stop()
