"""The Origin rule, shared by the HTTP endpoints and the daemon's handshake.

A request with no ``Origin`` header is not a browser's cross-origin request (curl, a Python
client, a same-origin GET) and passes. A request with one passes if it is the server's own
origin, or in the allow-list (``"*"`` allows any). This refuses cross-site POSTs and
Cross-Site WebSocket Hijacking by default.
"""

from __future__ import annotations

from .._lazy import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["normalize", "origin_allowed"]


def normalize(origin: str) -> str:
    """An origin in the form compared: lower case, no trailing slash."""
    return origin.strip().lower().rstrip("/")


def origin_allowed(origin: str | None, own: str | None, allowed: Iterable[str]) -> bool:
    """Whether a request with ``origin`` may use a server whose own origin is ``own``."""
    if origin is None:
        return True
    candidate = normalize(origin)
    allow = {normalize(item) for item in allowed}
    if "*" in allow or candidate in allow:
        return True
    return own is not None and candidate == normalize(own)
