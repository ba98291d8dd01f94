"""Cheap imports for the CGI hot path (the rule is stated in ``transports/http/cgi.py``).

These helpers defer what is rarely needed (``logging``) and pick the cheapest implementation of
what is always needed (SHA-256 without loading OpenSSL, a constant-time compare, JSON without
the ``json`` package: importing it imports ``re`` and compiles its patterns, ~4 ms of every
CGI request; :func:`json_loads` and :func:`json_dumps` drive the same C accelerator, ``_json``,
exactly as ``json.loads(s)`` and ``json.dumps(v, ensure_ascii=False)`` do, and fall back to
``json`` where there is no ``_json``).

:data:`TYPE_CHECKING` is ``False`` at run time and true for type checkers (mypy and ruff
treat any name ``TYPE_CHECKING`` so): modules on the CGI path write
``from .._lazy import TYPE_CHECKING`` and import ``typing`` names under ``if TYPE_CHECKING:``,
so annotations are checked but ``typing`` is never imported by a CGI request.
"""

from __future__ import annotations

TYPE_CHECKING = False

if TYPE_CHECKING:
    import logging
    from typing import Any

__all__ = ["TYPE_CHECKING", "logger", "sha256_hex", "compare_digest", "json_loads",
           "json_dumps"]


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


def _not_serializable(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class _Decoding:
    """The attributes ``_json.make_scanner`` reads from a ``json.JSONDecoder``, at their
    defaults (as ``json.loads(s)`` uses them)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"),
                      "NaN": float("nan")}.__getitem__
    memo: dict[str, str] = {}


_WHITESPACE = " \t\n\r"  # JSON's own (json.decoder.WHITESPACE)

try:
    from _json import encode_basestring as _quote
    from _json import make_encoder as _make_encoder
    from _json import make_scanner as _make_scanner

    _scan = _make_scanner(_Decoding())  # type: ignore[arg-type]  # (duck-typed in C)

    def _encoder() -> Any:
        # a fresh one per call, as json does: its circular-reference marks (the first
        # argument) could be left behind by a call that failed half-way
        return _make_encoder({}, _not_serializable, _quote, None, ": ", ", ", False, False,
                             True)

    _encoder()  # (another _json's signature: TypeError, the fallback below)

    def json_loads(text: str) -> Any:
        """``json.loads(text)``: a ``ValueError`` for a document that is not JSON."""
        start = len(text) - len(text.lstrip(_WHITESPACE))
        try:
            value, end = _scan(text, start)
        except StopIteration as exc:
            raise ValueError(f"Expecting value: char {exc.value}") from None
        if end != len(text.rstrip(_WHITESPACE)):
            raise ValueError(f"Extra data: char {end}")
        return value

    def json_dumps(value: Any) -> str:
        """``json.dumps(value, ensure_ascii=False)``."""
        if isinstance(value, str):
            return str(_quote(value))
        return "".join(_encoder()(value, 0))

except (ImportError, TypeError):  # pragma: no cover - not CPython, or another _json
    import json as _json_module

    def json_loads(text: str) -> Any:
        """``json.loads(text)``: a ``ValueError`` for a document that is not JSON."""
        return _json_module.loads(text)

    def json_dumps(value: Any) -> str:
        """``json.dumps(value, ensure_ascii=False)``."""
        return _json_module.dumps(value, ensure_ascii=False)
