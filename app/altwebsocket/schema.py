"""The storage schema, as SQLAlchemy tables: the one definition every database is created from.

Imported only to create the tables (once per database) and to talk to MySQL or PostgreSQL;
the SQLite fast path of :mod:`altwebsocket.storage` never imports SQLAlchemy.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy import Table

from .storage import SCHEMA_VERSION

__all__ = ["metadata", "SCHEMA_VERSION", "connections", "events", "log", "kv", "meta"]

# Version 2 added client_addr, sent_event, rate_tokens, rate_at (the limits of
# docs/security.md); storage.py migrates older databases with ALTER TABLE ... ADD COLUMN.

metadata = MetaData()

connections = Table(
    "aws_connections",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("app", String(64), nullable=False),
    Column("token_hash", String(64), nullable=False),
    Column("protocol", String(128), nullable=False, default=""),
    Column("state", SmallInteger, nullable=False),
    Column("created", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("last_event", Integer, nullable=False, default=0),
    Column("last_seq", Integer, nullable=False, default=0),
    Column("close_code", Integer),
    Column("close_reason", String(255)),
    Column("closed_at", Float),
    Column("waker", String(255)),
    Column("origin", String(255)),
    Column("transport", String(16), nullable=False, default="emulation"),
    Column("client_addr", String(64)),  # the client's address, for max_connections_per_ip
    # the highest event id a stream has written out (events beyond it are "queued")
    Column("sent_event", Integer, nullable=False, default=0, server_default="0"),
    Column("rate_tokens", Float),  # the token bucket of max_rate: tokens left...
    Column("rate_at", Float),  # ...as of this time
    Index("aws_connections_app_state", "app", "state"),
    Index("aws_connections_addr_state", "client_addr", "state"),
)

events = Table(
    "aws_events",
    metadata,
    Column("conn_id", String(32), primary_key=True),
    Column("event_id", Integer, primary_key=True, autoincrement=False),
    Column("kind", SmallInteger, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("created", Float, nullable=False),
)

log = Table(
    "aws_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("app", String(64), nullable=False),
    Column("key", String(128), nullable=False),
    Column("value", Text, nullable=False),
    Column("created", Float, nullable=False),
    Index("aws_log_app_key", "app", "key", "id"),
)

kv = Table(
    "aws_kv",
    metadata,
    Column("app", String(64), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("value", Text, nullable=False),
)

meta = Table(
    "aws_meta",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
