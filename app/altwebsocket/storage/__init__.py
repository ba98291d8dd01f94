"""The storage: the one API under every transport, and what it is made of.

- :mod:`.schema` — the tables, their versions and migrations (the one source);
- :mod:`.dialect` — what differs between SQLite, PostgreSQL and MySQL;
- :mod:`.api` — :class:`AltWebSocketStorage` and its :class:`Transaction`;
- :mod:`.wake` — wake-up hints between the processes of one host.
"""

from __future__ import annotations

from .api import (
    EVENT_PAGE,
    AltWebSocketStorage,
    ConnectionRecord,
    Transaction,
    filesystem_type,
    random_name,
)
from .schema import SCHEMA_VERSION

__all__ = [
    "AltWebSocketStorage",
    "Transaction",
    "ConnectionRecord",
    "EVENT_PAGE",
    "SCHEMA_VERSION",
    "filesystem_type",
    "random_name",
]
