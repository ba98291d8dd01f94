"""The wire format of version 1, as pure functions (see ``docs/protocol.md``).

Requests (client to server) are JSON bodies; this module parses and validates them into
small value objects, raising :class:`~altwebsocket.exceptions.ProtocolError` (400) or
:class:`~altwebsocket.exceptions.MessageTooBig` (413) with a clear message.

Events (server to client) are SSE events; :func:`event_for` and :func:`message_from_event`
convert between an application message and its event, so that any text (``\\r``, ``\\n``,
NUL, any Unicode) and any bytes survive exactly.
"""

from __future__ import annotations

import binascii

from .._lazy import TYPE_CHECKING, json_dumps, json_loads
from ..exceptions import MessageTooBig, ProtocolError
from .close import CloseCode, validate_client_close
from .sse import ServerSentEvent

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, Union

    Message = Union[str, bytes]
    """An application message: ``str`` for a text message, ``bytes`` for a binary one."""

    Payload = tuple[int, bytes]
    """A stored event: its kind and its bytes (UTF-8 text, raw binary, JSON for a close)."""

__all__ = [
    "PROTOCOL_VERSION",
    "TEXT",
    "BINARY",
    "CLOSE",
    "InboundMessage",
    "NewRequest",
    "SendRequest",
    "CloseRequest",
    "parse_json_body",
    "parse_new",
    "parse_send",
    "parse_messages",
    "parse_close",
    "parse_last_event_id",
    "event_for",
    "to_json",
    "payload_for",
    "close_payload",
    "message_from_event",
    "batch",
    "b64encode",
    "b64decode",
]

PROTOCOL_VERSION = 1

# Event kinds, as stored and as sent.
TEXT = 0
BINARY = 1
CLOSE = 2

_MAX_SEQ = 2**53 - 1  # the largest integer a JavaScript client can count to exactly


class _Value:
    """A small immutable value object (``dataclasses`` costs a CGI request ~10 ms)."""

    __slots__: tuple[str, ...] = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{type(self).__name__}({fields})"

    def __setattr__(self, name: str, value: Any) -> None:
        if hasattr(self, name):
            raise AttributeError(f"{type(self).__name__} is immutable")
        object.__setattr__(self, name, value)


class InboundMessage(_Value):
    """One message of a ``/send`` request: its ``seq`` and its content."""

    __slots__ = ("seq", "data")

    def __init__(self, seq: int, data: Message) -> None:
        self.seq = seq
        self.data = data


class NewRequest(_Value):
    """A ``/new`` request: the subprotocols the client offers, in its order of preference."""

    __slots__ = ("protocols",)

    def __init__(self, protocols: tuple[str, ...] = ()) -> None:
        self.protocols = tuple(protocols)


class SendRequest(_Value):
    """A ``/send`` request: the connection's credentials and one or more messages."""

    __slots__ = ("id", "token", "messages")

    def __init__(self, id: str, token: str, messages: tuple[InboundMessage, ...] = ()) -> None:
        self.id = id
        self.token = token
        self.messages = tuple(messages)


class CloseRequest(_Value):
    """A ``/close`` request."""

    __slots__ = ("id", "token", "code", "reason")

    def __init__(self, id: str, token: str, code: int = 1000, reason: str = "") -> None:
        self.id = id
        self.token = token
        self.code = code
        self.reason = reason


def b64encode(data: bytes) -> str:
    """Standard base64 with padding, as the wire format carries binary messages."""
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def b64decode(text: str) -> bytes:
    """Strict base64 decoding: only the standard alphabet, correct padding (else ``ValueError``
    or ``binascii.Error``)."""
    raw = text.encode("ascii")
    try:
        # strict_mode is new in 3.11; mypy checks against 3.10 (pyproject.toml), where the
        # TypeError below takes the other path
        return binascii.a2b_base64(raw, strict_mode=True)  # type: ignore[call-arg]
    except TypeError:  # pragma: no cover - Python < 3.11 has no strict mode
        import base64

        return base64.b64decode(raw, validate=True)


def parse_json_body(body: bytes, limit: int) -> dict[str, Any]:
    """Decode a request body as a JSON object, or raise a 400/413 error."""
    if len(body) > limit:
        raise MessageTooBig(f"request body of {len(body)} bytes is over the limit of {limit}")
    if not body.strip():
        return {}
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("the request body is not valid UTF-8") from None
    try:
        value = json_loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError("the request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise ProtocolError("the request body must be a JSON object")
    return value


def _string(obj: dict[str, Any], name: str, max_length: int = 200) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value:
        raise ProtocolError(f"field {name!r} must be a non-empty string")
    if len(value) > max_length:
        raise ProtocolError(f"field {name!r} is too long")
    return value


def _integer(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"field {name!r} must be an integer")
    if not low <= value <= high:
        raise ProtocolError(f"field {name!r} must be between {low} and {high}")
    return value


def _is_token(text: str) -> bool:
    # RFC 7230 token characters, as the WebSocket standard requires for subprotocols.
    allowed = set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    return bool(text) and all(ch in allowed for ch in text)


def parse_new(obj: dict[str, Any]) -> NewRequest:
    """Validate a ``/new`` body: optional ``protocols``, a list of distinct tokens."""
    protocols = obj.get("protocols", [])
    if isinstance(protocols, str):
        protocols = [protocols]
    if not isinstance(protocols, list) or len(protocols) > 64:
        raise ProtocolError("field 'protocols' must be a list of strings")
    for name in protocols:
        if not isinstance(name, str) or not _is_token(name) or len(name) > 128:
            raise ProtocolError("each protocol must be a non-empty token (RFC 7230)")
    if len(set(protocols)) != len(protocols):
        raise ProtocolError("field 'protocols' must not repeat a protocol")
    return NewRequest(tuple(protocols))


def _message(obj: Any, max_message: int) -> InboundMessage:
    if not isinstance(obj, dict):
        raise ProtocolError("each message must be a JSON object")
    seq = _integer(obj.get("seq"), "seq", 1, _MAX_SEQ)
    has_text, has_binary = "data" in obj, "binary" in obj
    if has_text == has_binary:
        raise ProtocolError("a message needs exactly one of 'data' (text) or 'binary' (base64)")
    if has_text:
        text = obj["data"]
        if not isinstance(text, str):
            raise ProtocolError("field 'data' must be a string")
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            raise ProtocolError("field 'data' is not valid Unicode (lone surrogate)") from None
        if size > max_message:
            raise MessageTooBig(f"message of {size} bytes is over the limit of {max_message}")
        return InboundMessage(seq, text)
    encoded = obj["binary"]
    if not isinstance(encoded, str):
        raise ProtocolError("field 'binary' must be a base64 string")
    if len(encoded) > (max_message + 2) // 3 * 4 + 4:
        raise MessageTooBig(f"message is over the limit of {max_message} bytes")
    try:
        data = b64decode(encoded)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ProtocolError("field 'binary' is not valid base64") from None
    if len(data) > max_message:
        raise MessageTooBig(f"message of {len(data)} bytes is over the limit of {max_message}")
    return InboundMessage(seq, data)


def parse_send(obj: dict[str, Any], max_message: int, max_batch: int = 1000) -> SendRequest:
    """Validate a ``/send`` body: one message (``seq`` + ``data``/``binary``) or ``messages``."""
    conn_id, token = _string(obj, "id"), _string(obj, "token")
    if "messages" in obj:
        messages = parse_messages(obj["messages"], max_message, max_batch)
    else:
        messages = (_message(obj, max_message),)
    return SendRequest(conn_id, token, messages)


def parse_messages(items: Any, max_message: int, max_batch: int = 1000
                   ) -> tuple[InboundMessage, ...]:
    """Validate a ``messages`` list: 1 to ``max_batch`` messages with consecutive seqs."""
    if not isinstance(items, list) or not items:
        raise ProtocolError("field 'messages' must be a non-empty list")
    if len(items) > max_batch:
        raise ProtocolError(f"at most {max_batch} messages per request")
    messages = tuple(_message(item, max_message) for item in items)
    for before, after in zip(messages, messages[1:]):
        if after.seq != before.seq + 1:
            raise ProtocolError("the messages of one request must have consecutive seqs")
    return messages


def parse_close(obj: dict[str, Any]) -> CloseRequest:
    """Validate a ``/close`` body: credentials, optional ``code`` and ``reason``."""
    conn_id, token = _string(obj, "id"), _string(obj, "token")
    reason = obj.get("reason", "")
    if "code" not in obj or obj["code"] is None:
        # Like a close frame with no status code: the other side sees 1005.
        if reason:
            raise ProtocolError("a close reason needs a close code")
        return CloseRequest(conn_id, token, CloseCode.NO_STATUS, "")
    code = _integer(obj["code"], "code", 0, 9999)
    if not isinstance(reason, str):
        raise ProtocolError("field 'reason' must be a string")
    try:
        reason.encode("utf-8")
    except UnicodeEncodeError:
        raise ProtocolError("field 'reason' is not valid Unicode") from None
    validate_client_close(code, reason)
    return CloseRequest(conn_id, token, code, reason)


def parse_last_event_id(value: str | None) -> int:
    """The event id a stream resumes after; 0 (from the start) when absent.

    Garbage is a 400: resuming from a wrong place would lose or repeat events.
    """
    if value is None or value.strip() == "":
        return 0
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 16:
        raise ProtocolError("Last-Event-ID must be a non-negative integer")
    return int(text)


# Characters JSON allows raw that some SSE readers take for line breaks (Python's
# str.splitlines, httpx's iter_lines): escaped, so every reader keeps a message whole.
_LINE_LIKE = {0x2028: "\\u2028", 0x2029: "\\u2029", 0x85: "\\u0085"}


def to_json(value: Any) -> str:
    """``value`` as compact-enough JSON text, non-ASCII kept but U+2028, U+2029 and U+0085
    escaped (they can only occur inside strings, where ``\\uXXXX`` means the same)."""
    return json_dumps(value).translate(_LINE_LIKE)


def event_for(event_id: int, kind: int, payload: bytes) -> ServerSentEvent:
    """The SSE event carrying a stored message or close (see ``docs/protocol.md``)."""
    if kind == TEXT:
        return ServerSentEvent(data=to_json(payload.decode("utf-8")), id=str(event_id))
    if kind == BINARY:
        return ServerSentEvent(
            data=json_dumps(b64encode(payload)),
            event="binary",
            id=str(event_id),
        )
    if kind == CLOSE:
        return ServerSentEvent(data=payload.decode("utf-8").translate(_LINE_LIKE),
                               event="close", id=str(event_id))
    raise ValueError(f"unknown event kind {kind}")


def payload_for(message: Message) -> Payload:
    """How a message is stored: its kind and bytes."""
    if isinstance(message, str):
        return TEXT, message.encode("utf-8")
    if isinstance(message, (bytes, bytearray, memoryview)):
        return BINARY, bytes(message)
    raise TypeError(f"a message is str or bytes, not {type(message).__name__}")


def close_payload(code: int, reason: str) -> Payload:
    """How a close is stored: ``{"code", "reason"}`` as JSON."""
    return CLOSE, to_json({"code": code, "reason": reason}).encode("utf-8")


def message_from_event(event: ServerSentEvent) -> Message | tuple[int, str]:
    """The inverse of :func:`event_for`: a message, or ``(code, reason)`` for a close."""
    if event.event is None or event.event == "message":
        text = json_loads(event.data)
        if not isinstance(text, str):
            raise ProtocolError("a text event's data must be a JSON string")
        return text
    if event.event == "binary":
        return b64decode(json_loads(event.data))
    if event.event == "close":
        obj = json_loads(event.data)
        return int(obj.get("code", 1005)), str(obj.get("reason", ""))
    raise ProtocolError(f"unknown event type {event.event!r}")


def batch(messages: Sequence[InboundMessage]) -> list[dict[str, Any]]:
    """The ``messages`` list of a ``/send`` body (used by clients)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message.data, str):
            out.append({"seq": message.seq, "data": message.data})
        else:
            out.append({"seq": message.seq, "binary": b64encode(message.data)})
    return out
