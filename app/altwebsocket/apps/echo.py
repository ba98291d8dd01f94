"""Echo: every message, text or binary, goes back to its sender only, unchanged."""

from __future__ import annotations

from ..handler import AltWebSocketConnection, AltWebSocketHandler

__all__ = ["Echo"]


class Echo(AltWebSocketHandler):
    """The echo server of the papers (1:1, for testing)."""

    def on_message(self, conn: AltWebSocketConnection, message: str | bytes) -> None:
        conn.send(message)
