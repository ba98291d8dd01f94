"""Wake-up hints between hosts: PostgreSQL ``LISTEN``/``NOTIFY``.

On one host, a writer wakes the waiting processes with datagrams to their Unix sockets
(:mod:`.wake`). Processes on other hosts have no such socket here; with PostgreSQL the writer
also sends the same hints with ``pg_notify`` inside its transaction (delivered when it commits,
never before), and every process that waits for events runs one :class:`Listener` thread that
forwards each hint to the socket it names if that socket is on this host (its address
starts with this host's name, :func:`.wake.local_path`). A hint
only shortens the wait — the database is the truth, and every waiting stream still polls
every ``poll_interval`` — so a lost notification costs latency, never a message.

MySQL and MariaDB have no notification channel: there the poll alone carries events between
hosts (``poll_interval``, 1 s by default; see ``docs/scaling.md``).
"""

from __future__ import annotations

import threading
import time

from .._lazy import TYPE_CHECKING, logger
from .wake import send_hints

if TYPE_CHECKING:
    from typing import Any, Callable

__all__ = ["CHANNEL", "payloads", "parse_payload", "Listener"]

CHANNEL = "altws_wake"
_MAX_PAYLOAD = 7900  # PostgreSQL's limit is 8000 bytes


def payloads(woken: dict[str, list[str]]) -> list[str]:
    """The notification payloads for ``woken`` (waker address -> connection ids): one line
    per waker, its address and ids separated by tabs, split into payloads under
    PostgreSQL's size limit."""
    out: list[str] = []
    current = ""
    for path, ids in woken.items():
        line = "\t".join([path, *ids])[:_MAX_PAYLOAD]
        if current and len(current) + 1 + len(line) > _MAX_PAYLOAD:
            out.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        out.append(current)
    return out


def parse_payload(payload: str) -> dict[str, list[str]]:
    """The inverse of :func:`payloads` for one payload."""
    woken: dict[str, list[str]] = {}
    for line in payload.split("\n"):
        parts = line.split("\t")
        if parts[0]:
            woken.setdefault(parts[0], []).extend(parts[1:])
    return woken


class Listener:
    """One thread per process: ``LISTEN`` on :data:`CHANNEL` and forward each hint whose
    socket is on this host. Reconnects with a growing pause when the server goes away."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self.ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="altws-listen", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pause = 0.5
        while True:
            try:
                db = self._connect()
                try:
                    db.autocommit = True
                    db.execute(f"LISTEN {CHANNEL}")
                    self.ready.set()
                    pause = 0.5
                    for note in db.notifies():
                        send_hints(parse_payload(note.payload))  # ours only
                finally:
                    db.close()
            except Exception as exc:  # the server went away: the poll covers the gap
                logger("altwebsocket.storage").warning(
                    "LISTEN connection lost (%s); retrying in %.1f s", exc, pause)
                time.sleep(pause)
                pause = min(pause * 2, 10.0)
