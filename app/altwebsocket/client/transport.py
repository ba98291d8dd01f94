"""What every transport offers the client, and what it reports back.

A transport moves messages; the :class:`~altwebsocket.client.Client` owns the queue of
received messages and the close state. Each transport is one small module with the same
interface: :mod:`.emulation` (SSE + POST) and :mod:`.native` (RFC 6455 WebSocket).
"""

from __future__ import annotations

import abc
from typing import Callable, Optional, Union

__all__ = ["Message", "Debug", "Sink", "Transport"]

Message = Union[str, bytes]
"""A message: ``str`` for text, ``bytes`` for binary."""

Debug = Optional[Callable[[str], None]]
"""A debug callback: called with one line of text per thing that happens on the wire."""



class Sink(abc.ABC):
    """Where a transport delivers what it receives (implemented by the client)."""

    @abc.abstractmethod
    def on_message(self, message: Message) -> None:
        """A message arrived (``str`` for text, ``bytes`` for binary), in order."""

    @abc.abstractmethod
    def on_close(self, code: int, reason: str) -> None:
        """The connection is closed; called exactly once."""


class Transport(abc.ABC):
    """One way to carry a WebSocket connection."""

    name: str = ""
    """``"emulation"`` or ``"native"``."""

    protocol: str = ""
    """The subprotocol the server chose, or ``""``."""

    @abc.abstractmethod
    def open(self, sink: Sink) -> None:
        """Open the connection (blocking); raise :class:`~.errors.ConnectFailed` on failure.

        After it returns, messages and the close go to ``sink``, from another thread.
        """

    @abc.abstractmethod
    def send(self, message: Message) -> None:
        """Queue or write one message."""

    @abc.abstractmethod
    def close(self, code: int | None, reason: str) -> None:
        """Start the closing handshake (``code=None``: a close without status, 1005)."""

    @abc.abstractmethod
    def flush(self, timeout: float | None) -> bool:
        """Wait until every message sent so far is accepted by the server; True if so."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Drop the connection at once, without a closing handshake."""

    @property
    def buffered_amount(self) -> int:
        """Bytes of messages queued but not yet accepted by the server."""
        return 0
