"""The errors the client raises.

The hierarchy (all under :class:`~altwebsocket.exceptions.AltWebSocketError`)::

    ClientError          (base of the client's errors)
    ├── ConnectFailed    the server cannot be reached, or refused or failed the opening
    └── Closed           the connection is closed: ``code`` and ``reason`` of the close

A bad close code or reason given to :meth:`~altwebsocket.client.Client.close` raises the
server's own :class:`~altwebsocket.exceptions.ProtocolError`, as ``WebSocket.close()``
throws for them.
"""

from __future__ import annotations

from ..exceptions import AltWebSocketError

__all__ = ["ClientError", "ConnectFailed", "Closed"]


class ClientError(AltWebSocketError):
    """Base class of the errors raised by the client."""

    code = "client"


class ConnectFailed(ClientError):
    """Opening the connection failed: unreachable server, HTTP error, refused handshake.

    ``status`` is the HTTP status the server answered with, when there was one.
    """

    code = "connect_failed"

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.http_status = status


class Closed(ClientError):
    """The connection is closed (raised by ``send`` and ``recv`` once it is)."""

    code = "closed"

    def __init__(self, close_code: int, close_reason: str = "") -> None:
        text = f"connection closed: {close_code}" + (f" {close_reason}" if close_reason else "")
        super().__init__(text)
        self.close_code = close_code
        self.close_reason = close_reason
