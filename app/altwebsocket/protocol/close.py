"""Close codes and the rules for them: the one definition every module uses.

Rules (RFC 6455 §7.4, the WebSocket API's ``close()``):

1. A client may close with 1000 or 3000–4999, or with no code at all (the other side then
   sees 1005, "no status").
2. A server may also use 1001–1003 and 1007–1014.
3. 1005, 1006 and 1015 are never put in a close frame; 1006 is *recorded* when a client went
   away without one.
4. A reason is at most 123 UTF-8 bytes (a close frame's payload is at most 125).
"""

from __future__ import annotations

from .._lazy import TYPE_CHECKING
from ..exceptions import ProtocolError

if TYPE_CHECKING:
    from typing import ClassVar

__all__ = [
    "CloseCode",
    "MAX_REASON_BYTES",
    "validate_client_close",
    "validate_server_close",
    "sendable_close",
]

MAX_REASON_BYTES = 123


class CloseCode(int):
    """The close codes of RFC 6455 §7.4.1 (and the IANA registry) this project names: ints
    (``CloseCode.NORMAL == 1000``), named as ``CloseCode.NORMAL`` by ``repr``. Not an
    ``enum.IntEnum``: importing ``enum`` and building the class cost a CGI request ~2 ms."""

    __slots__ = ()
    _names: ClassVar[dict[int, str]] = {}

    NORMAL: ClassVar[CloseCode]
    GOING_AWAY: ClassVar[CloseCode]
    PROTOCOL_ERROR: ClassVar[CloseCode]
    UNSUPPORTED_DATA: ClassVar[CloseCode]
    NO_STATUS: ClassVar[CloseCode]
    ABNORMAL: ClassVar[CloseCode]
    INVALID_DATA: ClassVar[CloseCode]
    POLICY_VIOLATION: ClassVar[CloseCode]
    TOO_BIG: ClassVar[CloseCode]
    MANDATORY_EXTENSION: ClassVar[CloseCode]
    INTERNAL_ERROR: ClassVar[CloseCode]
    SERVICE_RESTART: ClassVar[CloseCode]
    TRY_AGAIN_LATER: ClassVar[CloseCode]
    BAD_GATEWAY: ClassVar[CloseCode]
    TLS_HANDSHAKE: ClassVar[CloseCode]

    @property
    def name(self) -> str:
        """The code's name (``"NORMAL"``), or its number for a code without one."""
        return self._names.get(int(self), str(int(self)))

    def __repr__(self) -> str:
        return f"CloseCode.{self.name}"

    __str__ = int.__repr__


for _name, _code in (("NORMAL", 1000), ("GOING_AWAY", 1001), ("PROTOCOL_ERROR", 1002),
                     ("UNSUPPORTED_DATA", 1003), ("NO_STATUS", 1005), ("ABNORMAL", 1006),
                     ("INVALID_DATA", 1007), ("POLICY_VIOLATION", 1008), ("TOO_BIG", 1009),
                     ("MANDATORY_EXTENSION", 1010), ("INTERNAL_ERROR", 1011),
                     ("SERVICE_RESTART", 1012), ("TRY_AGAIN_LATER", 1013),
                     ("BAD_GATEWAY", 1014), ("TLS_HANDSHAKE", 1015)):
    setattr(CloseCode, _name, CloseCode(_code))
    CloseCode._names[_code] = _name


_NEVER_SENT = frozenset({CloseCode.NO_STATUS, CloseCode.ABNORMAL, CloseCode.TLS_HANDSHAKE})


def _application(code: int) -> bool:
    return 3000 <= code <= 4999


def _server_may_send(code: int) -> bool:
    return code in (1000, 1001, 1002, 1003) or 1007 <= code <= 1014 or _application(code)


def _reason_error(reason: str) -> str:
    if len(reason.encode("utf-8", errors="surrogatepass")) > MAX_REASON_BYTES:
        return f"close reason must be at most {MAX_REASON_BYTES} UTF-8 bytes"
    return ""


def validate_client_close(code: int, reason: str) -> None:
    """Rules 1 and 4 for a close a client asks for; :class:`ProtocolError` (400) if broken."""
    if code != CloseCode.NORMAL and not _application(code):
        raise ProtocolError("close code must be 1000 or between 3000 and 4999")
    problem = _reason_error(reason)
    if problem:
        raise ProtocolError(problem)


def validate_server_close(code: int, reason: str) -> None:
    """Rules 2 and 4 for a close a handler makes; ``ValueError`` (a programming error) if broken."""
    if not _server_may_send(code):
        raise ValueError(f"close code {code} cannot be sent by a server")
    problem = _reason_error(reason)
    if problem:
        raise ValueError(problem)


def sendable_close(code: int, reason: str) -> tuple[int, str]:
    """The close frame for a recorded close (rule 3): codes that cannot go on the wire
    become 1001 with a reason that says so."""
    if code in _NEVER_SENT or not 1000 <= code <= 4999:
        return int(CloseCode.GOING_AWAY), reason or "connection closed by the server"
    return code, reason
