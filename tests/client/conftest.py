"""Fixtures for the client tests: ``altws serve`` advertising an ``altws daemon`` on the same
storage, so that every scenario runs over both transports (``transport`` parameter)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from ..support import ALTWS, Process


@dataclass
class Site:
    """A running site: ``http`` is the serve root, ``ws`` the daemon root (or None)."""

    http: str
    ws: str | None
    processes: list[Process]

    def base(self, app: str) -> str:
        """The app's base URL ``B``."""
        return f"{self.http}/{app}"


def start_site(data_dir: str, daemon: bool = True, config: str | None = None,
               websocket_url: str | None = None) -> Site:
    """Start ``altws daemon`` (optional) and ``altws serve`` on one data folder."""
    processes: list[Process] = []
    try:
        ws = None
        if daemon:
            proc = Process(ALTWS + ["daemon", "--port", "0", "--data", data_dir])
            processes.append(proc)
            ws = proc.url
        args = ALTWS + ["serve", "--port", "0", "--data", data_dir]
        if config:
            args += ["--config", config]
        advertised = websocket_url or ws
        if advertised:
            args += ["--websocket-url", advertised]
        processes.append(Process(args))
        return Site(processes[-1].url, ws, processes)
    except Exception:
        for proc in processes:
            proc.stop()
        raise


@pytest.fixture
def site(data_dir: str) -> Iterator[Site]:
    """``altws serve`` + ``altws daemon`` (advertised in ``/info``), fresh storage."""
    running = start_site(data_dir)
    try:
        yield running
    finally:
        for proc in reversed(running.processes):
            proc.stop()


@pytest.fixture(params=["emulation", "native"])
def transport(request: pytest.FixtureRequest) -> str:
    """Each scenario runs over both transports."""
    return str(request.param)


def emulate_flag(transport: str) -> bool:
    """The ``emulate`` argument for a transport name."""
    return transport == "emulation"


def cli_flag(transport: str) -> str:
    """The ``altws client`` option for a transport name."""
    return "--emulate" if transport == "emulation" else "--native"

