"""Fixtures for the client tests: the site ``altws serve`` serves, with its daemon beside it
(advertised in ``/info``), in threads of this process, so that every scenario runs over both
transports (``transport`` parameter)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..support import Site, serving


@pytest.fixture
def site(data_dir: str) -> Iterator[Site]:
    """The emulation + the daemon (advertised in ``/info``), fresh storage."""
    yield from serving(Site(data_dir, daemon=True))


@pytest.fixture
def short_streams(data_dir: str) -> Iterator[Site]:
    """The emulation alone, whose streams end after 1 second: the client must resume."""
    yield from serving(Site(data_dir, stream_lifetime=1))


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
