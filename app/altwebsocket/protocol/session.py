"""The wire format of version 2 — one session per browser — as pure functions.

See ``docs/protocol.md`` ("Version 2"). A session's stream carries the events of many
connections, each naming its connection by the ``ref`` the client gave it; one ``S/send``
carries operations (``open``, ``send``, ``close``) of many connections. Parsing is per
operation: a malformed or oversized operation is one failed result, not a failed request.
"""

from __future__ import annotations

from .._lazy import TYPE_CHECKING, json_loads
from ..exceptions import AltWebSocketError, ProtocolError
from .close import CloseCode, validate_client_close
from .messages import BINARY, CLOSE, TEXT, b64encode, parse_messages, parse_new, to_json
from .sse import ServerSentEvent

if TYPE_CHECKING:
    from typing import Any

    from .messages import InboundMessage

__all__ = [
    "SESSION_APP",
    "OPEN",
    "SEND",
    "CLOSE_OP",
    "Op",
    "SessionRequest",
    "parse_session",
    "parse_session_close",
    "parse_session_request",
    "session_event_for",
    "answer_event",
    "is_ref",
]

SESSION_APP = "_session"
"""The path segment of the session endpoints (``S = …/_session``); no app is named so."""

OPEN, SEND, CLOSE_OP = "open", "send", "close"

_REF_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:"


def is_ref(value: Any) -> bool:
    """Whether ``value`` is a valid connection ref (1–64 of ``A-Z a-z 0-9 - _ . :``)."""
    # (strip() removes every character of the set from both ends: nothing may be left)
    return (isinstance(value, str) and 0 < len(value) <= 64
            and not value.strip(_REF_CHARS))


class Op:
    """One operation of ``S/send``: ``kind`` is ``open``, ``send`` or ``close``.

    ``app`` and ``protocols`` are an open's; ``messages`` a send's; ``code`` and ``reason`` a
    close's. ``error`` is set (and the rest may be missing) when the operation is malformed.
    """

    __slots__ = ("kind", "ref", "app", "protocols", "messages", "code", "reason", "error")

    def __init__(self, kind: str, ref: str, app: str = "", protocols: tuple[str, ...] = (),
                 messages: tuple[InboundMessage, ...] = (), code: int = CloseCode.NO_STATUS,
                 reason: str = "", error: AltWebSocketError | None = None) -> None:
        self.kind = kind
        self.ref = ref
        self.app = app
        self.protocols = protocols
        self.messages = messages
        self.code = code
        self.reason = reason
        self.error = error

    def __repr__(self) -> str:
        return f"Op({self.kind!r}, {self.ref!r}, error={self.error!r})"


class SessionRequest:
    """A parsed ``S/send``: the session's credentials, its operations in order, and the
    client's number for the request (``rid``, or ``None``: then its answer is not also
    sent on the stream)."""

    __slots__ = ("session", "secret", "ops", "rid")

    def __init__(self, session: str, secret: str, ops: tuple[Op, ...],
                 rid: int | None = None) -> None:
        self.session = session
        self.secret = secret
        self.ops = ops
        self.rid = rid


MAX_RID = 2 ** 53 - 1
"""The largest ``rid`` (what a JavaScript number holds exactly)."""


def parse_session(obj: dict[str, Any]) -> tuple[str, str]:
    """The ``session`` and ``secret`` of a body (400 if either is missing)."""
    session, secret = obj.get("session"), obj.get("secret")
    for name, value in (("session", session), ("secret", secret)):
        if not isinstance(value, str) or not value or len(value) > 200:
            raise ProtocolError(f"field {name!r} must be a non-empty string")
    return str(session), str(secret)


MAX_UNLESS_OPEN = 1000
"""The most refs an ``S/close`` may name in ``unless_open``."""


def parse_session_close(obj: dict[str, Any]) -> tuple[str, str, tuple[str, ...]]:
    """The ``session``, ``secret`` and ``unless_open`` refs of an ``S/close`` body (400 if
    any is malformed). With refs, the close is conditional: see ``docs/protocol.md``."""
    session, secret = parse_session(obj)
    refs = obj.get("unless_open", [])
    if (not isinstance(refs, list) or len(refs) > MAX_UNLESS_OPEN
            or not all(is_ref(ref) for ref in refs)):
        raise ProtocolError(f"field 'unless_open' must be a list of at most {MAX_UNLESS_OPEN} "
                            "refs (1-64 characters of A-Z a-z 0-9 - _ . :)")
    return session, secret, tuple(refs)


def _op(obj: Any, max_message: int, budget: int) -> Op:
    if not isinstance(obj, dict):
        raise ProtocolError("each operation must be a JSON object")
    kind, ref = obj.get("op"), obj.get("ref")
    if not isinstance(ref, str) or not is_ref(ref):
        raise ProtocolError("field 'ref' must be 1-64 characters of A-Z a-z 0-9 - _ . :")
    try:
        if kind == OPEN:
            app = obj.get("app")
            if not isinstance(app, str) or not app or "/" in app or app.startswith(("_", ".")):
                raise ProtocolError("field 'app' must name an app")
            return Op(OPEN, ref, app=app, protocols=parse_new(obj).protocols)
        if kind == SEND:
            return Op(SEND, ref, messages=parse_messages(obj.get("messages"), max_message,
                                                         budget))
        if kind == CLOSE_OP:
            reason = obj.get("reason", "")
            if obj.get("code") is None:
                if reason:
                    raise ProtocolError("a close reason needs a close code")
                return Op(CLOSE_OP, ref)
            code = obj["code"]
            if isinstance(code, bool) or not isinstance(code, int):
                raise ProtocolError("field 'code' must be an integer")
            if not isinstance(reason, str):
                raise ProtocolError("field 'reason' must be a string")
            validate_client_close(code, reason)
            return Op(CLOSE_OP, ref, code=code, reason=reason)
        raise ProtocolError("field 'op' must be 'open', 'send' or 'close'")
    except AltWebSocketError as exc:
        return Op(str(kind), ref, error=exc)


def parse_session_request(obj: dict[str, Any], max_message: int, max_batch: int
                          ) -> SessionRequest:
    """Validate an ``S/send`` body. Raises (400) for what concerns the whole request; a
    malformed operation with a valid ``ref`` becomes an :class:`Op` with its ``error``."""
    session, secret = parse_session(obj)
    items = obj.get("ops")
    if not isinstance(items, list) or not items:
        raise ProtocolError("field 'ops' must be a non-empty list")
    if len(items) > max_batch:
        raise ProtocolError(f"at most {max_batch} operations per request")
    total = sum(len(item["messages"]) for item in items
                if isinstance(item, dict) and isinstance(item.get("messages"), list))
    if total > max_batch:
        raise ProtocolError(f"at most {max_batch} messages per request")
    rid = obj.get("rid")
    if rid is not None and (isinstance(rid, bool) or not isinstance(rid, int)
                            or not 0 <= rid <= MAX_RID):
        raise ProtocolError(f"field 'rid' must be an integer from 0 to {MAX_RID}")
    return SessionRequest(session, secret,
                          tuple(_op(item, max_message, max_batch) for item in items), rid)


def answer_event(rid: int, answer: dict[str, Any]) -> ServerSentEvent:
    """The copy of an ``S/send`` answer sent on the session's stream (``event: answer``,
    no ``id``: it is not stored and never replayed): ``answer`` with the request's ``rid``."""
    return ServerSentEvent(data=to_json({"rid": rid, **answer}), event="answer")


def session_event_for(event_id: int, kind: int, payload: bytes, ref: str | None
                      ) -> ServerSentEvent:
    """The SSE event of a session's stream: a connection's message or close (``ref``), or
    with ``ref`` ``None`` the session's own end (``event: end``)."""
    if ref is None:
        return ServerSentEvent(data=payload.decode("utf-8"), event="end", id=str(event_id))
    body: dict[str, str | int] = {"ref": ref}
    event: str | None = None
    if kind == TEXT:
        body["data"] = payload.decode("utf-8")
    elif kind == BINARY:
        body["data"] = b64encode(payload)
        event = "binary"
    elif kind == CLOSE:
        closed = json_loads(payload.decode("utf-8"))
        body["code"], body["reason"] = int(closed["code"]), str(closed["reason"])
        event = "close"
    else:
        raise ValueError(f"unknown event kind {kind}")
    return ServerSentEvent(data=to_json(body), event=event, id=str(event_id))
