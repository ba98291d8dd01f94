"""What differs between the database engines, in one place.

Every statement the storage runs is written once, in portable SQL with ``?`` placeholders;
a :class:`Dialect` turns it into the driver's form and supplies the few pieces that differ:

============================  ==========================  ==================================
                              SQLite                      PostgreSQL, MySQL/MariaDB
============================  ==========================  ==================================
placeholders                  ``?``                       ``%s`` (the driver's paramstyle)
start a write transaction     ``BEGIN IMMEDIATE`` (takes  the driver's implicit ``BEGIN``
                              the write lock at once)
lock a connection's row       (the write lock covers it)  ``SELECT … FOR UPDATE``
larger, smaller of two values ``MAX(a, b)``, ``MIN(a, b)``  ``GREATEST(a, b)``, ``LEAST(a, b)``
quoted identifiers            ``"key"``                   ``"key"`` (MySQL: the connection
                                                          sets ``ANSI_QUOTES``)
============================  ==========================  ==================================
"""

from __future__ import annotations

__all__ = ["Dialect", "SQLITE", "dialect_named"]


class Dialect:
    """The SQL differences of one engine (see the table above)."""

    __slots__ = ("name", "placeholder", "begin", "for_update", "greatest_function",
                 "least_function")

    def __init__(self, name: str, placeholder: str, begin: str, for_update: str,
                 greatest_function: str, least_function: str) -> None:
        self.name = name
        self.placeholder = placeholder
        self.begin = begin  # the statement that starts a write transaction, or ""
        self.for_update = for_update  # the suffix that locks the selected rows, or ""
        self.greatest_function = greatest_function
        self.least_function = least_function

    def sql(self, statement: str) -> str:
        """``statement`` with ``?`` placeholders in the driver's own style."""
        if self.placeholder == "?":
            return statement
        return statement.replace("?", self.placeholder)

    def greatest(self, a: str, b: str) -> str:
        """The SQL expression for the larger of ``a`` and ``b``."""
        return f"{self.greatest_function}({a}, {b})"

    def least(self, a: str, b: str) -> str:
        """The SQL expression for the smaller of ``a`` and ``b``."""
        return f"{self.least_function}({a}, {b})"


SQLITE = Dialect("sqlite", "?", "BEGIN IMMEDIATE", "", "MAX", "MIN")


def dialect_named(name: str, paramstyle: str) -> Dialect:
    """The dialect of an SQLAlchemy dialect name (``sqlite``, ``postgresql``, ``mysql``…)
    whose driver uses ``paramstyle``."""
    if name == "sqlite":
        return SQLITE
    placeholder = "?" if paramstyle == "qmark" else "%s"
    return Dialect(name, placeholder, "", " FOR UPDATE", "GREATEST", "LEAST")
