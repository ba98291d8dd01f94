"""The handler API: what an application developer writes against.

An app is a subclass of :class:`AltWebSocketHandler`; the server calls its callbacks with an
:class:`AltWebSocketConnection` for the client concerned. The same handler runs unchanged under
every transport (SSE + POST under WSGI or CGI, native WebSocket in the daemon), so it must keep
no state in process memory: what it must remember goes into ``conn.storage`` (app data in the
shared storage), and it reaches other clients through ``conn.peers()`` / ``conn.broadcast()``.

Every callback runs inside one storage transaction with the request that caused it: what it
sends is committed together with the message that caused it, or not at all.

This module depends on the protocol alone. What a connection object needs from the server is
the small interface :class:`UnitOfWork`; the server's unit of work (``server.Context``)
implements it, so the server depends on the handler API and never the reverse.
"""

from __future__ import annotations

from ._lazy import TYPE_CHECKING, logger
from .protocol.close import CloseCode, validate_server_close
from .protocol.messages import payload_for
from .protocol.state import Input, State, transition

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .protocol.messages import Message

__all__ = ["AltWebSocketHandler", "AltWebSocketConnection", "AppStorage", "UnitOfWork"]


class AltWebSocketHandler:
    """Base class of an application: override the callbacks you need.

    Attributes:
        protocols: the subprotocols this app speaks, in order of preference; the first one the
            client also offers is chosen (``conn.protocol``), as a WebSocket server does.
    """

    protocols: Sequence[str] = ()

    def select_protocol(self, offered: Sequence[str]) -> str:
        """The subprotocol to use given the client's offer; ``""`` for none."""
        for name in self.protocols:
            if name in offered:
                return name
        return ""

    def on_open(self, conn: AltWebSocketConnection) -> None:
        """A client connected."""

    def on_message(self, conn: AltWebSocketConnection, message: Message) -> None:
        """A message arrived: ``str`` for text, ``bytes`` for binary."""

    def on_close(self, conn: AltWebSocketConnection, code: int, reason: str) -> None:
        """The connection closed (by either side, or 1006 when the client went away)."""

    def on_error(self, conn: AltWebSocketConnection, exc: BaseException) -> None:
        """A callback raised ``exc``. By default: log it and close the connection with 1011."""
        logger("altwebsocket.handler").error(
            "handler error on %s/%s", conn.app, conn.id, exc_info=exc)
        if conn.state == State.OPEN:
            conn.close(CloseCode.INTERNAL_ERROR, "internal error")


class UnitOfWork:
    """What the handler API needs from the operation it runs in (one storage transaction).

    The server implements it; a handler never sees it. Events are ``(kind, payload)`` pairs
    of :mod:`~altwebsocket.protocol.messages`.
    """

    def state_of(self, conn_id: str) -> State:
        """The state of a connection as this operation sees it."""
        raise NotImplementedError

    def send(self, conn_id: str, kind: int, payload: bytes) -> bool:
        """Queue one event for one connection."""
        raise NotImplementedError

    def broadcast(self, app: str, kind: int, payload: bytes, exclude: str | None) -> int:
        """Queue one event for every open connection of ``app`` but ``exclude``."""
        raise NotImplementedError

    def open_connections(self, app: str) -> list[AltWebSocketConnection]:
        """The open connections of ``app``, oldest first."""
        raise NotImplementedError

    def close(self, conn: AltWebSocketConnection, code: int, reason: str) -> None:
        """Queue the close event, mark ``conn`` closed and run ``on_close``."""
        raise NotImplementedError

    def log_append(self, app: str, key: str, value: str, keep: int | None) -> None:
        """See :meth:`AppStorage.append`."""
        raise NotImplementedError

    def log_recent(self, app: str, key: str, count: int) -> list[str]:
        """See :meth:`AppStorage.recent`."""
        raise NotImplementedError

    def kv_get(self, app: str, key: str) -> str | None:
        """See :meth:`AppStorage.get`."""
        raise NotImplementedError

    def kv_set(self, app: str, key: str, value: str | None) -> None:
        """See :meth:`AppStorage.set`."""
        raise NotImplementedError


class AppStorage:
    """Application data of one app, kept in the shared storage (so every process sees it).

    Two shapes: a log per key (append, read the most recent) and a value per key.
    """

    def __init__(self, work: UnitOfWork, app: str) -> None:
        self._work = work
        self._app = app

    def append(self, key: str, value: str, keep: int | None = None) -> None:
        """Append ``value`` to the log ``key``; keep only the last ``keep`` entries if given."""
        self._work.log_append(self._app, key, value, keep)

    def recent(self, key: str, count: int) -> list[str]:
        """The last ``count`` entries of the log ``key``, oldest first."""
        return self._work.log_recent(self._app, key, count)

    def get(self, key: str, default: str | None = None) -> str | None:
        """The value of ``key``, or ``default``."""
        value = self._work.kv_get(self._app, key)
        return default if value is None else value

    def set(self, key: str, value: str | None) -> None:
        """Set ``key`` to ``value`` (``None`` deletes it)."""
        self._work.kv_set(self._app, key, value)


class AltWebSocketConnection:
    """One client's connection, as a handler sees it.

    Attributes:
        id: the connection's public name (safe to show to other clients).
        app: the name of the app it belongs to.
        protocol: the chosen subprotocol, or ``""``.
        transport: ``"emulation"`` or ``"websocket"``.
    """

    def __init__(self, work: UnitOfWork, conn_id: str, app: str, protocol: str = "",
                 transport: str = "emulation") -> None:
        self._work = work
        self.id = conn_id
        self.app = app
        self.protocol = protocol
        self.transport = transport

    def __repr__(self) -> str:
        return f"<AltWebSocketConnection {self.app}/{self.id} {self.state.name}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AltWebSocketConnection) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def state(self) -> State:
        """``State.OPEN`` or ``State.CLOSED``, as far as this callback knows."""
        return self._work.state_of(self.id)

    @property
    def storage(self) -> AppStorage:
        """This app's data in the shared storage."""
        return AppStorage(self._work, self.app)

    def send(self, message: Message) -> bool:
        """Send a text (``str``) or binary (``bytes``) message to this client.

        Returns ``False`` (and sends nothing) if the connection is already closed, so that a
        broadcast racing with a disconnect needs no special case.
        """
        kind, payload = payload_for(message)
        if self.state != State.OPEN:
            return False
        return self._work.send(self.id, kind, payload)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection: the client gets a close event with ``code`` and ``reason``.

        ``on_close`` runs once, right after. Closing a closed connection does nothing.
        """
        validate_server_close(code, reason)
        state = self.state
        if state != State.OPEN:
            return
        transition(state, Input.SERVER_CLOSE)
        self._work.close(self, code, reason)

    def peers(self, include_self: bool = False) -> list[AltWebSocketConnection]:
        """The open connections of the same app (oldest first), for broadcasting."""
        return [
            conn
            for conn in self._work.open_connections(self.app)
            if include_self or conn.id != self.id
        ]

    def broadcast(self, message: Message, include_self: bool = True) -> int:
        """Send ``message`` to every open connection of the app; returns how many got it."""
        kind, payload = payload_for(message)
        return self._work.broadcast(self.app, kind, payload, None if include_self else self.id)
