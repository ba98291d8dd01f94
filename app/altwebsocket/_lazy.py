"""Cheap imports for the CGI hot path (the rule is stated in ``transports/http/cgi.py``).

These helpers defer what is rarely needed (``logging``) and pick the cheapest implementation of
what is always needed (SHA-256 without loading OpenSSL, a constant-time compare).

:data:`TYPE_CHECKING` is ``False`` at run time and true for type checkers (mypy and ruff
treat any name ``TYPE_CHECKING`` so): modules on the CGI path write
``from .._lazy import TYPE_CHECKING`` and import ``typing`` names under ``if TYPE_CHECKING:``,
so annotations are checked but ``typing`` is never imported by a CGI request.
"""

from __future__ import annotations

TYPE_CHECKING = False

if TYPE_CHECKING:
    import logging

__all__ = ["TYPE_CHECKING", "logger", "sha256_hex", "compare_digest"]


def logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)``, importing ``logging`` only when something is logged."""
    import logging

    return logging.getLogger(name)


# typeshed has no stubs for the private _sha2 and _sha256 modules: mypy types _sha256 as Any.
try:  # the built-in module: no OpenSSL to load (CPython 3.12+: _sha2, before: _sha256)
    from _sha2 import sha256 as _sha256  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the Python version
    try:
        from _sha256 import sha256 as _sha256  # type: ignore[import-not-found]
    except ImportError:
        from hashlib import sha256 as _sha256

try:
    from _operator import _compare_digest as compare_digest  # the one hmac uses
except ImportError:  # pragma: no cover - not CPython
    # the same function, which typeshed spells with other overloads
    from hmac import compare_digest  # type: ignore[no-redef]


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data`` as hex."""
    return str(_sha256(data).hexdigest())
