"""An app for the daemon tests: the chat, plus subprotocols and a note when someone leaves."""

from __future__ import annotations

from altwebsocket.apps.chat import Chat
from altwebsocket.handler import AltWebSocketConnection

__all__ = ["Presence"]


class Presence(Chat):
    """Chat that speaks ``v2.chat``/``v1.chat`` and tells the room how each client left."""

    protocols = ("v2.chat", "v1.chat")

    def on_message(self, conn: AltWebSocketConnection, message: object) -> None:
        if message == "protocol?":
            conn.send(f"protocol={conn.protocol}")
            return
        if message == "bye?":  # a last word, then the close, from one callback
            conn.send("Goodbye")
            conn.close(4000, "done")
            return
        super().on_message(conn, message)  # type: ignore[arg-type]

    def on_close(self, conn: AltWebSocketConnection, code: int, reason: str) -> None:
        conn.broadcast(f"{conn.transport} left {code}")
