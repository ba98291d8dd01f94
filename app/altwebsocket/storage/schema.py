"""The storage schema: the one definition of the tables, their versions and their migrations.

Everything else is derived from :data:`TABLES`: the column list the storage selects
(:data:`CONNECTION_COLUMNS`), the SQLAlchemy ``Table`` objects that create the tables on every
engine (:func:`metadata`), and the ``ALTER TABLE`` statements that bring an older database up
to :data:`SCHEMA_VERSION` (:func:`added_since`). Importing this module is cheap: SQLAlchemy is
imported only by :func:`metadata`, which runs once per database (to create it), never on a
request that finds the tables in place.

Version history: 1 the first tables; 2 added ``client_addr``, ``sent_event``, ``rate_tokens``
and ``rate_at`` to ``aws_connections`` (the limits of ``docs/security.md``); 3 added sessions
(wire protocol version 2): ``session_id`` and ``session_ref`` to ``aws_connections`` and
``target`` to ``aws_events``; 4 the broadcast log (``aws_broadcasts``, ``aws_counters``): a
broadcast is one row, read by every queue through its own count (``joined_ord``,
``counted_ord``, ``left_ord``, ``left_pos``, ``base_event``, ``base_pos``, ``base_member`` and
``base_created`` of ``aws_connections``, ``pos`` of ``aws_events``; see :mod:`.log`).

A session (one per browser, ``docs/protocol.md``) is a row of ``aws_connections`` too, with
``transport = 'session'``: its stream, event ids, waker and limits work as a connection's.
A connection opened in a session points at it with ``session_id``; its events are queued on
the session's row, each naming the connection by its ``session_ref`` in ``target``.
"""

from __future__ import annotations

from .._lazy import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "SCHEMA_VERSION",
    "Column",
    "Index",
    "Table",
    "TABLES",
    "CONNECTION_COLUMNS",
    "table",
    "added_since",
    "metadata",
    "sqlalchemy_column",
]

SCHEMA_VERSION = 4
"""The version of the tables (SQLite keeps it in ``PRAGMA user_version``)."""


class Column:
    """One column: ``kind`` is ``string`` (with ``length``), ``integer``, ``smallint``,
    ``float``, ``binary`` or ``text``; ``since`` is the schema version that added it."""

    __slots__ = ("name", "kind", "length", "nullable", "default", "primary_key", "since")

    def __init__(self, name: str, kind: str, length: int = 0, nullable: bool = True,
                 default: Any | None = None, primary_key: bool = False,
                 since: int = 1) -> None:
        self.name = name
        self.kind = kind
        self.length = length
        self.nullable = nullable and not primary_key
        self.default = default
        self.primary_key = primary_key
        self.since = since


class Index:
    """A secondary index over ``columns``, added in schema version ``since``."""

    __slots__ = ("name", "columns", "since")

    def __init__(self, name: str, columns: tuple[str, ...], since: int = 1) -> None:
        self.name = name
        self.columns = columns
        self.since = since


class Table:
    """A table: its name, columns (in order) and indexes."""

    __slots__ = ("name", "columns", "indexes")

    def __init__(self, name: str, columns: tuple[Column, ...],
                 indexes: tuple[Index, ...] = ()) -> None:
        self.name = name
        self.columns = columns
        self.indexes = indexes


TABLES = (
    Table("aws_connections", (
        Column("id", "string", 32, primary_key=True),
        Column("app", "string", 64, nullable=False),
        Column("token_hash", "string", 64, nullable=False),
        Column("protocol", "string", 128, nullable=False, default=""),
        Column("state", "smallint", nullable=False),
        Column("created", "float", nullable=False),
        Column("last_seen", "float", nullable=False),
        Column("last_event", "integer", nullable=False, default=0),
        Column("last_seq", "integer", nullable=False, default=0),
        Column("close_code", "integer"),
        Column("close_reason", "string", 255),
        Column("closed_at", "float"),
        Column("waker", "string", 255),
        Column("origin", "string", 255),
        Column("transport", "string", 16, nullable=False, default="emulation"),
        # the client's address, for max_connections_per_ip
        Column("client_addr", "string", 64, since=2),
        # the highest event id a stream has written out (events beyond it are "queued")
        Column("sent_event", "integer", nullable=False, default=0, since=2),
        Column("rate_tokens", "float", since=2),  # the token bucket of max_rate: tokens left...
        Column("rate_at", "float", since=2),  # ...as of this time
        Column("session_id", "string", 32, since=3),  # the session it belongs to, if any
        Column("session_ref", "string", 64, since=3),  # its name within that session
        # As a recipient of broadcasts (:mod:`.log`): the app's broadcast ordinal when it
        # opened (it gets those after), up to which its queue's last_event counts them, and
        # when it closed (NULL: open; on a row closed before version 4, 0)
        Column("joined_ord", "integer", nullable=False, default=0, since=4),
        Column("counted_ord", "integer", nullable=False, default=0, since=4),
        Column("left_ord", "integer", since=4),
        Column("left_pos", "integer", since=4),  # the log's clock when it closed
        # As a queue: the last event its client saw, whose key (position in the log, and
        # the connection it was for if a broadcast) anchors the numbering of what follows
        Column("base_event", "integer", nullable=False, default=0, since=4),
        Column("base_pos", "integer", nullable=False, default=0, since=4),
        Column("base_member", "string", 32, since=4),  # (NULL: that event was direct)
        Column("base_created", "float", since=4),  # (the created of base_member)
    ), (
        Index("aws_connections_app_state", ("app", "state")),
        Index("aws_connections_addr_state", ("client_addr", "state"), since=2),
        Index("aws_connections_session", ("session_id", "session_ref"), since=3),
    )),
    Table("aws_events", (
        Column("conn_id", "string", 32, primary_key=True),
        Column("event_id", "integer", primary_key=True),
        Column("kind", "smallint", nullable=False),
        Column("payload", "binary", nullable=False),
        Column("created", "float", nullable=False),
        Column("target", "string", 64, since=3),  # in a session's queue: the connection's ref
        Column("pos", "integer", nullable=False, default=0, since=4),  # the log's clock then
    )),
    Table("aws_broadcasts", (  # one row per broadcast, whatever the recipients (.log)
        Column("pos", "integer", primary_key=True, since=4),  # the log's clock: 1, 2, 3…
        Column("app", "string", 64, nullable=False, since=4),
        Column("ordinal", "integer", nullable=False, since=4),  # the app's own: 1, 2, 3…
        Column("kind", "smallint", nullable=False, since=4),
        Column("payload", "binary", nullable=False, since=4),
        Column("created", "float", nullable=False, since=4),
        Column("not_for", "string", 32, since=4),  # the connection it is not for, if any
    ), (
        Index("aws_broadcasts_app_pos", ("app", "pos"), since=4),
        Index("aws_broadcasts_not_for", ("not_for", "ordinal"), since=4),
    )),
    Table("aws_counters", (  # the log's clock (name "") and each app's broadcast ordinal
        Column("name", "string", 64, primary_key=True, since=4),
        Column("value", "integer", nullable=False, since=4),
    )),
    Table("aws_log", (
        Column("id", "integer", primary_key=True),  # the only autoincrement key
        Column("app", "string", 64, nullable=False),
        Column("key", "string", 128, nullable=False),
        Column("value", "text", nullable=False),
        Column("created", "float", nullable=False),
    ), (
        Index("aws_log_app_key", ("app", "key", "id")),
    )),
    Table("aws_kv", (
        Column("app", "string", 64, primary_key=True),
        Column("key", "string", 128, primary_key=True),
        Column("value", "text", nullable=False),
    )),
    Table("aws_meta", (
        Column("name", "string", 64, primary_key=True),
        Column("value", "text", nullable=False),
    )),
)


def table(name: str) -> Table:
    """The table called ``name``."""
    for candidate in TABLES:
        if candidate.name == name:
            return candidate
    raise KeyError(name)


CONNECTION_COLUMNS = tuple(column.name for column in table("aws_connections").columns)
"""The columns of ``aws_connections`` in order (the fields of a connection record)."""


def added_since(version: int) -> list[tuple[Table, list[Column], list[Index]]]:
    """What versions after ``version`` added: per table, the new columns and indexes."""
    out = []
    for candidate in TABLES:
        columns = [column for column in candidate.columns if column.since > version]
        indexes = [index for index in candidate.indexes if index.since > version]
        if columns or indexes:
            out.append((candidate, columns, indexes))
    return out


_METADATA: Any = None


def metadata() -> Any:
    """The tables as SQLAlchemy ``MetaData`` (imports SQLAlchemy; built once)."""
    global _METADATA
    if _METADATA is None:
        _METADATA = _build_metadata()
    return _METADATA


def sqlalchemy_column(column: Column) -> Any:
    """The SQLAlchemy ``Column`` of ``column``.

    Per engine: times are 8-byte floats everywhere (MySQL's ``FLOAT`` is 4 bytes: a Unix
    time would be off by minutes); on MySQL, binary payloads and text values are ``LONGBLOB``
    and ``LONGTEXT`` (``BLOB``/``TEXT`` stop at 64 KiB, below ``max_message``).
    """
    import sqlalchemy as sa
    from sqlalchemy.dialects import mysql

    kinds: dict[str, Any] = {"string": lambda: sa.String(column.length), "integer": sa.Integer,
             "smallint": sa.SmallInteger, "float": sa.Double,
             "binary": lambda: sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql"),
             "text": lambda: sa.Text().with_variant(mysql.LONGTEXT(), "mysql")}
    options: dict[str, Any] = {"primary_key": column.primary_key,
                               "nullable": column.nullable}
    if column.primary_key and column.kind == "integer":
        options["autoincrement"] = column.name == "id"
    if column.default is not None:
        options["default"] = column.default
        if not column.nullable:  # rows of an older version get it on ALTER TABLE
            options["server_default"] = str(column.default)
    return sa.Column(column.name, kinds[column.kind](), **options)


def _build_metadata() -> Any:
    import sqlalchemy as sa

    result = sa.MetaData()
    for candidate in TABLES:
        # MySQL: 4-byte UTF-8, and ids, refs and keys compared byte for byte ("A" != "a")
        sa.Table(candidate.name, result,
                 *[sqlalchemy_column(column) for column in candidate.columns],
                 *[sa.Index(index.name, *index.columns) for index in candidate.indexes],
                 mysql_charset="utf8mb4", mysql_collate="utf8mb4_bin",
                 mysql_engine="InnoDB")
    return result
