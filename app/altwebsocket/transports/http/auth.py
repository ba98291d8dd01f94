"""The secret of an emulated connection: a random token, stored only as its SHA-256.

The HTTP transport mints the token at ``/new``, gives it to the client once, and checks it
on every later request; the server never sees it (it stores what :func:`hash_token` returns
and calls :func:`authorizer`'s check inside its transaction).
"""

from __future__ import annotations

from ..._lazy import TYPE_CHECKING, compare_digest, sha256_hex
from ...exceptions import Forbidden
from ...storage import random_name

if TYPE_CHECKING:
    from typing import Callable

    from ...storage import ConnectionRecord

__all__ = ["new_token", "hash_token", "token_matches", "hash_matches", "authorizer"]


def new_token() -> str:
    """A fresh connection token: 192 random bits, URL-safe."""
    return random_name(24)


def hash_token(token: str) -> str:
    """What is stored for a token: its SHA-256, so a leaked database leaks no keys."""
    return sha256_hex(token.encode("utf-8", errors="surrogatepass"))


def token_matches(record: ConnectionRecord, token: str) -> bool:
    """Whether ``token`` is the connection's, compared in constant time (a native
    connection stores no hash, so no token matches it)."""
    return hash_matches(record, hash_token(token))


def hash_matches(record: ConnectionRecord, hashed: str) -> bool:
    """:func:`token_matches` for a token already hashed (:func:`hash_token`)."""
    return bool(record.token_hash) and bool(compare_digest(record.token_hash, hashed))


def authorizer(token: str) -> Callable[[ConnectionRecord], None]:
    """The check the server runs on the connection's record: :class:`Forbidden` (403)
    unless ``token`` is its own."""

    def check(record: ConnectionRecord) -> None:
        if not token_matches(record, token):
            raise Forbidden("wrong token for this connection")

    return check
