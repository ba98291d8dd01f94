"""Chat: every text message goes to every open connection, sender included, unchanged;
a newly opened connection first receives the last 10 messages, oldest first."""

from __future__ import annotations

from ..handler import AltWebSocketConnection, AltWebSocketHandler
from ..protocol.close import CloseCode

__all__ = ["Chat"]


class Chat(AltWebSocketHandler):
    """The chat server of the Ruby paper, with its history rule."""

    history = 10
    key = "history"

    def on_open(self, conn: AltWebSocketConnection) -> None:
        for message in conn.storage.recent(self.key, self.history):
            conn.send(message)

    def on_message(self, conn: AltWebSocketConnection, message: str | bytes) -> None:
        if not isinstance(message, str):
            conn.close(CloseCode.UNSUPPORTED_DATA, "chat takes text messages only")
            return
        conn.storage.append(self.key, message, keep=self.history)
        conn.broadcast(message)
