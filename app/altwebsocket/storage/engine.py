"""Connecting to each database engine, and creating or migrating its tables safely.

The storage talks DB-API to every engine, through the driver directly, so a request never
imports SQLAlchemy (a CGI request cannot afford ~0.3 s):

=============================  ===========================================================
URL                            driver
=============================  ===========================================================
``sqlite:///path``             the standard ``sqlite3`` module
``postgresql://u:p@host/db``   psycopg 3 (``pip install 'altwebsocket[postgresql]'``);
                               ``postgresql+psycopg://`` is the same
``mysql://u:p@host/db``        PyMySQL, pure Python (``pip install 'altwebsocket[mysql]'``);
                               ``mysql+pymysql://`` and ``mariadb://`` are the same
any other SQLAlchemy URL       SQLAlchemy's engine, for its raw DB-API connections
=============================  ===========================================================

Creating the tables happens once per database, and several processes may try at once (a
systemd unit and its daemon, two first visitors of a fresh CGI install, two nodes): each
engine holds a lock across the check and the creation — SQLite's write lock
(``BEGIN IMMEDIATE``), PostgreSQL's ``pg_advisory_xact_lock``, MySQL's ``GET_LOCK`` — so
exactly one creates or migrates and the others find the tables ready. The DDL is compiled by
SQLAlchemy from :mod:`.schema` (imported only then).
"""

from __future__ import annotations

# the C module: sqlite3's Python part imports datetime and registers adapters we never use
import _sqlite3 as sqlite3
import os

from .._lazy import TYPE_CHECKING, logger
from ..exceptions import ConfigError
from .dialect import SQLITE, Dialect, dialect_named
from .schema import SCHEMA_VERSION, TABLES, added_since, metadata, sqlalchemy_column, table

if TYPE_CHECKING:
    from typing import Any, Callable

__all__ = ["Database", "filesystem_type", "migration_statements"]

_NETWORK_FILESYSTEMS = {
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "9p", "afs", "glusterfs",
    "fuse.glusterfs", "ceph", "fuse.ceph", "lustre", "gpfs", "fuse.s3fs", "davfs",
}

_SCHEMA_LOCK = 0x616C7477  # "altw": the advisory lock id of schema creation (PostgreSQL)
_LOCK_WAIT = 30  # seconds a process waits for another to finish creating the tables

_DRIVERS = {  # scheme -> (engine, driver module, SQLAlchemy dialect name)
    "postgresql": ("postgresql", "psycopg", "postgresql"),
    "postgres": ("postgresql", "psycopg", "postgresql"),
    "postgresql+psycopg": ("postgresql", "psycopg", "postgresql"),
    "mysql": ("mysql", "pymysql", "mysql"),
    "mariadb": ("mysql", "pymysql", "mysql"),
    "mysql+pymysql": ("mysql", "pymysql", "mysql"),
    "mariadb+pymysql": ("mysql", "pymysql", "mysql"),
}
_EXTRAS = {"psycopg": "postgresql", "pymysql": "mysql"}


def filesystem_type(path: str) -> str:
    """The filesystem type of the mount holding ``path`` (from /proc/mounts), or ``""``."""
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            entries = [line.split() for line in mounts]
    except OSError:
        return ""
    real = os.path.realpath(path)
    best, kind = "", ""
    for entry in entries:
        if len(entry) < 3:
            continue
        mount = entry[1].replace("\\040", " ")
        inside = real == mount or real.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, kind = mount, entry[2]
    return kind


def _sqlite_path(url: str) -> str:
    if not url.startswith("sqlite:///"):
        raise ConfigError("an SQLite URL is sqlite:///relative/path or sqlite:////absolute/path")
    path = url[len("sqlite:///") :].split("?", 1)[0]
    if not path or path == ":memory:":
        raise ConfigError("the SQLite storage needs a file (processes share it), not :memory:")
    return path


def _import_driver(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        raise ConfigError(
            f"the storage URL needs the Python package {module!r}: "
            f"pip install 'altwebsocket[{_EXTRAS[module]}]'") from None


def _connect_args(url: str) -> dict[str, Any]:
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    database = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not database:
        raise ConfigError("a database URL is scheme://user:password@host[:port]/database")
    args: dict[str, Any] = {"host": parts.hostname, "user": unquote(parts.username or ""),
                            "password": unquote(parts.password or ""), "database": database}
    if parts.port:
        args["port"] = parts.port
    return args


def migration_statements(table_name: str, present: set[str], indexes: set[str],
                         sa_dialect: Any) -> list[str]:
    """The ``ALTER TABLE``/``CREATE INDEX`` statements that add to ``table_name`` the columns
    and indexes of :mod:`.schema` it lacks (``present``: its columns; ``indexes``: its index
    names), compiled for SQLAlchemy's ``sa_dialect``."""
    from sqlalchemy.schema import CreateColumn

    target = table(table_name)
    statements = []
    for column in target.columns:
        if column.name not in present:
            ddl = str(CreateColumn(sqlalchemy_column(column)).compile(dialect=sa_dialect)).strip()
            statements.append(f"ALTER TABLE {table_name} ADD COLUMN {ddl}")
    for index in target.indexes:
        if index.name not in indexes:
            statements.append(f"CREATE INDEX {index.name} ON {table_name} "
                              f"({', '.join(index.columns)})")
    return statements


def _create_statements(sa_dialect: Any) -> list[str]:
    from sqlalchemy.schema import CreateIndex, CreateTable

    statements = []
    for sa_table in metadata().sorted_tables:
        statements.append(str(CreateTable(sa_table).compile(dialect=sa_dialect)).strip())
        for index in sorted(sa_table.indexes, key=lambda i: str(i.name)):
            statements.append(str(CreateIndex(index).compile(dialect=sa_dialect)).strip())
    return statements


def _add_clock(cursor: Any, sql: Callable[[str], str]) -> None:
    """Add the broadcast log's clock (:mod:`.log`) if the tables lack it: its row must
    exist before two transactions lock it at once."""
    cursor.execute(sql("SELECT 1 FROM aws_counters WHERE name = ?"), ("",))
    if cursor.fetchone() is None:
        cursor.execute(sql("INSERT INTO aws_counters (name, value) VALUES (?, 0)"), ("",))


def _sa_dialect(name: str) -> Any:
    if name == "sqlite":
        from sqlalchemy.dialects import sqlite as module
    elif name == "postgresql":
        from sqlalchemy.dialects import postgresql as module  # type: ignore[no-redef]
    else:
        from sqlalchemy.dialects import mysql as module  # type: ignore[no-redef]
    return module.dialect()


class Database:
    """A DB-API connection factory for one storage URL, and its schema keeper."""

    def __init__(self, url: str, busy_timeout: float, journal_mode: str) -> None:
        self.url = url
        self.busy_timeout = busy_timeout
        self.journal_mode = journal_mode
        self.is_sqlite = url.startswith("sqlite:")
        self.dialect: Dialect = SQLITE
        self.engine_name = "sqlite"
        self._engine: Any = None
        self._driver: Any = None
        self._args: dict[str, Any] = {}
        self.path = ""
        # Called with each new DB-API connection. Tests use it to simulate faults that root
        # cannot cause with file modes (PRAGMA query_only, PRAGMA max_page_count).
        self.on_connect: list[Callable[[Any], None]] = []
        if self.is_sqlite:
            self.path = _sqlite_path(url)
            self.errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
            return
        scheme = url.split("://", 1)[0].lower()
        known = _DRIVERS.get(scheme)
        if known is not None:
            self.engine_name, module, _ = known
            self._driver = _import_driver(module)
            self._args = _connect_args(url)
            self.dialect = dialect_named(self.engine_name, "format")
            self.errors = (self._driver.Error,)
            return
        from sqlalchemy import create_engine  # another driver: SQLAlchemy's engine drives it

        self._engine = create_engine(url, pool_pre_ping=True)
        self.engine_name = self._engine.dialect.name
        self.dialect = dialect_named(self.engine_name, self._engine.dialect.paramstyle)
        self.errors = (getattr(self._engine.dialect.dbapi, "Error", sqlite3.Error),)

    # --- connections -------------------------------------------------------------------

    def connect(self) -> Any:
        """A new DB-API connection (autocommit mode for SQLite: transactions are explicit)."""
        if self.is_sqlite:
            db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                                 check_same_thread=False)
            try:
                db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
                db.execute("PRAGMA synchronous = NORMAL")
            except BaseException:
                db.close()
                raise
        elif self._engine is not None:
            db = self._engine.raw_connection()
        elif self.engine_name == "postgresql":
            args = dict(self._args)
            args["dbname"] = args.pop("database")
            db = self._driver.connect(connect_timeout=max(1, int(self.busy_timeout)), **args)
            with db.cursor() as cursor:  # wait for row locks at most busy_timeout
                cursor.execute(f"SET lock_timeout = {int(self.busy_timeout * 1000)}")
            db.commit()
        else:
            # read_timeout: connect_timeout does not cover the wait for the server's greeting
            # (a server that accepts and says nothing would hang the request for ever); a
            # statement waits for row locks at most busy_timeout, so twice that is a fault
            wait = max(1, int(self.busy_timeout))
            patience = 2 * self.busy_timeout + 1
            db = self._driver.connect(charset="utf8mb4", autocommit=False,
                                      connect_timeout=wait, read_timeout=patience,
                                      write_timeout=patience, **self._args)
            with db.cursor() as cursor:
                cursor.execute("SET SESSION innodb_lock_wait_timeout = %s", (wait,))
                cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                # "key" is a reserved word there: quoted the standard way, as on the others
                cursor.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')")
            db.commit()
        for hook in self.on_connect:
            hook(db)
        return db

    def sql(self, statement: str) -> str:
        """``statement`` with ``?`` placeholders turned into the driver's own."""
        return self.dialect.sql(statement)

    def begin_write(self, db: Any) -> None:
        """Start a write transaction (on SQLite, one that holds the write lock at once)."""
        if self.dialect.begin:
            db.execute(self.dialect.begin)

    def commit(self, db: Any) -> None:
        """Commit the transaction of ``db``."""
        if self.is_sqlite:
            db.execute("COMMIT")
        else:
            db.commit()

    def rollback(self, db: Any) -> None:
        """Roll the transaction of ``db`` back."""
        if self.is_sqlite:
            if db.in_transaction:
                db.execute("ROLLBACK")
        else:
            db.rollback()

    # --- the schema --------------------------------------------------------------------

    def schema_ready(self) -> bool:
        """Whether the tables exist at the current version: one cheap query."""
        if self.is_sqlite:
            if not os.path.exists(self.path):
                return False
            db = self.connect()
            try:
                return int(db.execute("PRAGMA user_version").fetchone()[0]) >= SCHEMA_VERSION
            finally:
                db.close()
        db = self.connect()
        try:
            cursor = db.cursor()
            cursor.execute(self.sql("SELECT value FROM aws_meta WHERE name = ?"),
                           ("schema_version",))
            row = cursor.fetchone()
            db.commit()
            return row is not None and int(row[0]) >= SCHEMA_VERSION
        except self.errors:
            return False  # no tables yet
        finally:
            db.close()

    def create_schema(self) -> None:
        """Create the tables or migrate them to :data:`SCHEMA_VERSION`, under a lock that
        makes concurrent processes take turns (the second finds the work done)."""
        if self.is_sqlite:
            self._create_sqlite()
            return
        db = self.connect()
        try:
            cursor = db.cursor()
            if self.engine_name == "postgresql":
                cursor.execute(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")
            elif self.engine_name == "mysql":
                cursor.execute("SELECT GET_LOCK('altws_schema', %s)", (_LOCK_WAIT,))
                if cursor.fetchone()[0] != 1:
                    raise ConfigError("another process holds the schema lock for too long")
            try:
                self._create_other(db, cursor)
                db.commit()
            finally:
                if self.engine_name == "mysql":
                    cursor.execute("SELECT RELEASE_LOCK('altws_schema')")
                    cursor.fetchone()
        except BaseException:
            try:
                db.rollback()
            except self.errors:
                pass
            raise
        finally:
            db.close()

    def _existing(self, cursor: Any) -> dict[str, tuple[set[str], set[str]]]:
        """The tables of ours that exist: their columns and their index names."""
        found: dict[str, tuple[set[str], set[str]]] = {}
        if self.engine_name == "postgresql":
            where = "table_schema = current_schema()"
            index_query = ("SELECT tablename, indexname FROM pg_indexes "
                           "WHERE schemaname = current_schema()")
        else:
            where = "table_schema = DATABASE()"
            index_query = ("SELECT table_name, index_name FROM information_schema.statistics "
                           "WHERE table_schema = DATABASE()")
        cursor.execute(f"SELECT table_name, column_name FROM information_schema.columns "
                       f"WHERE {where}")
        names = {candidate.name for candidate in TABLES}
        for table_name, column in cursor.fetchall():
            if table_name in names:
                found.setdefault(table_name, (set(), set()))[0].add(column)
        cursor.execute(index_query)
        for table_name, index in cursor.fetchall():
            if table_name in found:
                found[table_name][1].add(index)
        return found

    def _create_other(self, db: Any, cursor: Any) -> None:
        sa_dialect = _sa_dialect(self.engine_name) if self._engine is None else \
            self._engine.dialect
        existing = self._existing(cursor)
        if not existing:
            for statement in _create_statements(sa_dialect):
                cursor.execute(statement)
        else:
            for candidate in TABLES:
                if candidate.name not in existing:
                    from sqlalchemy.schema import CreateTable

                    sa_table = metadata().tables[candidate.name]
                    cursor.execute(str(CreateTable(sa_table).compile(dialect=sa_dialect)))
                    continue
                present, indexes = existing[candidate.name]
                for statement in migration_statements(candidate.name, present, indexes,
                                                      sa_dialect):
                    cursor.execute(statement)
        _add_clock(cursor, self.sql)
        cursor.execute(self.sql("DELETE FROM aws_meta WHERE name = ?"), ("schema_version",))
        cursor.execute(self.sql("INSERT INTO aws_meta (name, value) VALUES (?, ?)"),
                       ("schema_version", str(SCHEMA_VERSION)))

    def _create_sqlite(self) -> None:
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):  # a 503 "config" if it happens in a request
            raise ConfigError(f"the data folder {folder} does not exist")
        mode = self.journal_mode
        if mode == "auto":
            kind = filesystem_type(folder)
            mode = "delete" if kind in _NETWORK_FILESYSTEMS else "wal"
            if mode == "delete":
                logger("altwebsocket.storage").warning(
                    "data folder is on %s: using a rollback journal, not WAL", kind)
        db = self.connect()
        try:
            db.execute(f"PRAGMA journal_mode = {mode}")
            db.execute("BEGIN IMMEDIATE")  # the other processes wait here, then find it done
            try:
                version = int(db.execute("PRAGMA user_version").fetchone()[0])
                if version < SCHEMA_VERSION:
                    sa_dialect = _sa_dialect("sqlite")
                    if version == 0 and not db.execute(
                            "SELECT 1 FROM sqlite_master WHERE name = 'aws_connections'"
                    ).fetchone():
                        for statement in _create_statements(sa_dialect):
                            db.execute(statement)
                    else:  # tables of an older version (0: made before versions were kept)
                        self._migrate_sqlite(db, version, sa_dialect)
                    _add_clock(db.cursor(), str)
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        finally:
            db.close()

    @staticmethod
    def _migrate_sqlite(db: Any, version: int, sa_dialect: Any) -> None:
        """Bring tables of ``version`` to :data:`SCHEMA_VERSION`, inside the caller's write
        transaction (so two processes cannot both migrate)."""
        for candidate, _, _ in added_since(version):
            present = {row[1] for row in db.execute(f"PRAGMA table_info({candidate.name})")}
            if not present:
                from sqlalchemy.schema import CreateTable

                sa_table = metadata().tables[candidate.name]
                db.execute(str(CreateTable(sa_table).compile(dialect=sa_dialect)))
                continue
            indexes = {row[1] for row in db.execute(f"PRAGMA index_list({candidate.name})")}
            for statement in migration_statements(candidate.name, present, indexes,
                                                  sa_dialect):
                db.execute(statement)
        logger("altwebsocket.storage").warning(
            "migrated the database from version %d to %d", version, SCHEMA_VERSION)
