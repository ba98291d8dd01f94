"""The endpoints of wire protocol version 2 (``S = …/_session``): sessions over HTTP.

One session per browser (``docs/protocol.md``, "Version 2"): ``S/new`` makes one and gives
its secret once; ``S/send`` runs the operations of many connections in order, each in its
own transaction, each with its own result; ``S/close`` ends the session and its connections.
The session's secret is checked here, once per request; the server is then called by
connection id with an ``authorize`` check that the connection belongs to this session.
"""

from __future__ import annotations

from ..._lazy import TYPE_CHECKING, compare_digest
from ...exceptions import AltWebSocketError, ConnectionClosed, Forbidden, UnknownConnection
from ...protocol import session as v2
from ...protocol.state import State
from .auth import authorizer, hash_matches, hash_token, new_token
from .stream import EventStream

if TYPE_CHECKING:
    from typing import Any, Callable

    from ...server import AltWebSocketServer
    from ...storage import ConnectionRecord

__all__ = ["SessionEndpoints"]

REFS_KEPT = 100000
"""How many (session, ref) → connection names a process remembers at most."""

SKIPPED = {"ok": False, "status": 424, "error": "skipped",
           "message": "an earlier operation of this connection in this request failed"}


def _member_of(session_id: str) -> Callable[[ConnectionRecord], None]:
    def check(record: ConnectionRecord) -> None:
        if record.session_id != session_id:
            raise Forbidden("this connection belongs to another session")

    return check


def _failed(ref: str, exc: AltWebSocketError) -> dict[str, Any]:
    result: dict[str, Any] = {"ref": ref, "ok": False, "status": exc.status}
    result.update(exc.to_json())
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        result["retry_after"] = retry_after
    return result


class SessionEndpoints:
    """``S/new``, ``S/send`` and ``S/close`` of one server (the stream is in :mod:`.stream`)."""

    def __init__(self, server: AltWebSocketServer) -> None:
        self.server = server
        self._refs: dict[tuple[str, str], tuple[str, str]] = {}  # (session, ref) -> app, id
        # session -> (its secret's hash, the waker of its stream held here), once checked
        self._verified: dict[str, tuple[str, str]] = {}

    def new(self, origin: str | None, client_addr: str | None) -> dict[str, Any]:
        """``S/new``: a session and its secret."""
        settings = self.server.settings
        secret = new_token()
        session = self.server.open_session(hash_token(secret), origin, client_addr)
        return {"session": session, "secret": secret, "version": 2,
                "max_message": settings.max_message, "max_batch": settings.max_batch,
                "heartbeat": settings.heartbeat, "stream_lifetime": settings.stream_lifetime}

    def _stream_of(self, session_id: str, secret: str) -> EventStream | None:
        """Check the session and its secret (404, 403, 410 for the whole request); return
        its stream if this process holds it. The session is read from the storage unless
        this process already checked this secret for the stream it holds now, still open:
        then nothing is read (each operation still checks, in its own transaction, that its
        connection is this session's and open)."""
        hashed = hash_token(secret)
        known = self._verified.get(session_id)
        if known is not None:
            found = self.server.stream_here(known[1])
            if isinstance(found, EventStream) and not found.closed and \
                    found.record.id == session_id and compare_digest(known[0], hashed):
                return found
            self._verified.pop(session_id, None)  # (another thread may have just dropped it)
        record = self.server.storage.connection(session_id)
        if record is None or record.app != v2.SESSION_APP:
            raise UnknownConnection("no such session")
        if not hash_matches(record, hashed):
            raise Forbidden("wrong token for this connection")
        if record.state != State.OPEN:
            raise ConnectionClosed("the session is closed")
        waker = record.waker
        found = self.server.stream_here(waker) if waker else None
        if not isinstance(found, EventStream) or waker is None:
            return None
        if len(self._verified) >= REFS_KEPT:
            self._verified.clear()  # (a long-running process: start again, cheaply)
        self._verified[session_id] = (hashed, waker)
        return found

    def send(self, body: dict[str, Any], origin: str | None,
             client_addr: str | None) -> dict[str, Any]:
        """``S/send``: run each operation; one result per operation, in order."""
        settings = self.server.settings
        request = v2.parse_session_request(body, settings.max_message, settings.max_batch)
        # The session's stream, if this process holds it: what these operations queue for it
        # goes out in one write with the copy of the answer (or at the end, without one).
        stream = self._stream_of(request.session, request.secret)
        member = _member_of(request.session)
        if stream is not None:
            stream.hold()
        try:
            failed: set[str] = set()
            results: list[dict[str, Any]] = []
            for op in request.ops:
                if op.ref in failed:
                    results.append({"ref": op.ref, **SKIPPED})
                    continue
                try:
                    if op.error is not None:
                        raise op.error
                    results.append(self._run(op, request.session, request.secret, member,
                                             origin, client_addr))
                except AltWebSocketError as exc:
                    failed.add(op.ref)
                    results.append(_failed(op.ref, exc))
            answer = {"ok": True, "results": results}
            if stream is not None and request.rid is not None:
                # the client may go on before the POST's own answer reaches it
                # (docs/protocol.md, "The answer on the stream")
                stream.say(v2.answer_event(request.rid, answer).encode())
            return answer
        finally:
            if stream is not None:
                stream.unhold()

    def _run(self, op: v2.Op, session_id: str, secret: str,
             member: Callable[[ConnectionRecord], None], origin: str | None,
             client_addr: str | None) -> dict[str, Any]:
        server = self.server
        if op.kind == v2.OPEN:
            opened = server.open(op.app, op.protocols, origin, client_addr=client_addr,
                                 session=(session_id, op.ref, authorizer(secret)))
            self._remember(session_id, op.ref, op.app, opened.id)
            return {"ref": op.ref, "ok": True, "protocol": opened.protocol, "extensions": ""}
        app, conn_id = self._connection(session_id, op.ref)
        if op.kind == v2.SEND:
            ack = server.receive(app, conn_id, op.messages, member)
            return {"ref": op.ref, "ok": True, "ack": ack}
        closed = server.close(app, conn_id, op.code, op.reason, member)
        result: dict[str, Any] = {"ref": op.ref, "ok": True}
        if not closed:
            result["already_closed"] = True
        return result

    def _connection(self, session_id: str, ref: str) -> tuple[str, str]:
        """The app and id of the connection ``ref`` of a session. A ref names one
        connection for the session's life, so a process remembers it (the operation
        still checks, in its transaction, that the connection is this session's)."""
        known = self._refs.get((session_id, ref))
        if known is not None:
            return known
        record = self.server.storage.session_connection(session_id, ref)
        if record is None:
            raise UnknownConnection(f"no connection {ref!r} in this session")
        return self._remember(session_id, ref, record.app, record.id)

    def _remember(self, session_id: str, ref: str, app: str, conn_id: str
                  ) -> tuple[str, str]:
        if len(self._refs) >= REFS_KEPT:
            self._refs.clear()  # (a long-running process: start again, cheaply)
        self._refs[(session_id, ref)] = (app, conn_id)
        return app, conn_id

    def close(self, body: dict[str, Any]) -> dict[str, Any]:
        """``S/close``: close the session's connections (1001) and the session, unless one
        of the connections named in ``unless_open`` is open or not known yet (``{"ok":
        true, "kept": true}``)."""
        session_id, secret, unless_open = v2.parse_session_close(body)
        self._verified.pop(session_id, None)
        outcome = self.server.close_session(session_id, authorize=authorizer(secret),
                                            unless_open=unless_open)
        if outcome == "kept":
            return {"ok": True, "kept": True}
        return {"ok": True} if outcome == "closed" else {"ok": True, "already_closed": True}
