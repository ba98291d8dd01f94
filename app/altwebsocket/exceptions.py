"""Every error AltWebSocket raises, with the HTTP status a transport answers it with.

The hierarchy::

    AltWebSocketError                 (base; status 500, code "internal")
    ├── ProtocolError                 400 "bad_request"   malformed request or field
    │   └── MessageTooBig             413 "too_big"       message or body over the limit
    ├── Forbidden                     403 "forbidden"     wrong token
    │   └── OriginNotAllowed          403 "origin"        Origin header not allowed
    ├── UnknownConnection             404 "unknown"       no such connection (or app)
    ├── ConnectionClosed              410 "closed"        the connection is closed
    ├── SeqGap                        409 "seq_gap"       a seq beyond the next expected
    ├── RateLimited                   429 "rate_limited"  too many messages per second
    ├── Overloaded                    503 "overloaded"    busy: retry after ``retry_after`` s
    │   └── StorageUnavailable        503 "storage"       database locked, read-only, full…
    └── ConfigError                   503 "config"        bad configuration, no data folder

Transports map an error to a response with :attr:`AltWebSocketError.status` and
:meth:`AltWebSocketError.to_json`, without if-chains, and never show a traceback.
"""

from __future__ import annotations

from ._lazy import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "AltWebSocketError",
    "ProtocolError",
    "MessageTooBig",
    "Forbidden",
    "OriginNotAllowed",
    "UnknownConnection",
    "ConnectionClosed",
    "SeqGap",
    "RateLimited",
    "Overloaded",
    "StorageUnavailable",
    "ConfigError",
]


class AltWebSocketError(Exception):
    """Base class: an error with an HTTP status hint and a short machine-readable code."""

    status: int = 500
    code: str = "internal"

    def __init__(self, message: str = "", **extra: Any) -> None:
        super().__init__(message or self.code)
        self.message = message or self.code
        self.extra: dict[str, Any] = extra

    def to_json(self) -> dict[str, Any]:
        """The JSON body of the error response: ``{"error", "message", ...extra}``."""
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        body.update(self.extra)
        return body

    def headers(self) -> dict[str, str]:
        """Extra response headers the error asks for (e.g. ``Retry-After``)."""
        return {}


class ProtocolError(AltWebSocketError):
    """The request is malformed: bad JSON, a missing or mistyped field, bad base64."""

    status = 400
    code = "bad_request"


class MessageTooBig(ProtocolError):
    """A message or request body is over the configured limit."""

    status = 413
    code = "too_big"


class Forbidden(AltWebSocketError):
    """The token does not match the connection."""

    status = 403
    code = "forbidden"


class OriginNotAllowed(Forbidden):
    """The request's ``Origin`` is neither this server's own nor in the allow-list."""

    code = "origin"


class UnknownConnection(AltWebSocketError):
    """No connection (or no app) by that name."""

    status = 404
    code = "unknown"


class ConnectionClosed(AltWebSocketError):
    """The connection is closed: nothing more can be sent on it."""

    status = 410
    code = "closed"


class SeqGap(AltWebSocketError):
    """A message's seq is beyond the next expected one; ``expected`` says which is."""

    status = 409
    code = "seq_gap"

    def __init__(self, expected: int) -> None:
        super().__init__(f"seq gap: the next expected seq is {expected}", expected=expected)
        self.expected = expected


class RateLimited(AltWebSocketError):
    """Too many messages per second on one connection, or connections from one address."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str = "", retry_after: float = 1.0) -> None:
        super().__init__(message or "too many requests")
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, int(round(self.retry_after))))}


class Overloaded(AltWebSocketError):
    """The server is busy (too many streams, say); the client should retry later."""

    status = 503
    code = "overloaded"

    def __init__(self, message: str = "", retry_after: float | None = None) -> None:
        super().__init__(message or "server busy, retry later")
        self.retry_after = 2.0 if retry_after is None else retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, int(round(self.retry_after))))}


class StorageUnavailable(Overloaded):
    """The database cannot be used right now (locked, read-only, full disk, corrupt).

    ``deadlock``: the database aborted the transaction to break a deadlock (PostgreSQL,
    MySQL/MariaDB); nothing of it was kept, and running it again is what those databases
    ask for."""

    code = "storage"
    deadlock = False


class ConfigError(AltWebSocketError):
    """The configuration is invalid (raised at start-up), or the data folder is missing.

    Met during a request it is answered 503 with ``Retry-After``, and a message that hides
    the details (paths): those go to the server's log.
    """

    status = 503
    code = "config"

    def to_json(self) -> dict[str, Any]:
        return {"error": self.code, "message": "the server is misconfigured; see its log"}

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "30"}
