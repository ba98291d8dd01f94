"""Load (docs/reliability.md): 50 concurrent clients each sending and receiving through the
persistent server and through CGI under Apache: no 5xx, no "database is locked", nothing
lost or repeated; afterwards the storage is bounded (delivered events discarded, closed
connections purged, the WAL checkpointed).

CI runs a short version (a few seconds); ``ALTWS_SOAK=1`` runs 60 s per deployment::

    ALTWS_SOAK=1 .venv/bin/python -m pytest tests/reliability -q -p no:timeout
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from typing import Any

import httpx
import pytest

from altwebsocket.protocol import messages as wire

from ..support import HTTP, TIMEOUT, send_body, sse_chunks, sse_stream, start_deployment, stream_url

SOAK = bool(os.environ.get("ALTWS_SOAK"))
CLIENTS = 50
DURATION = 60.0 if SOAK else 6.0


class LoadClient:
    """One client: a stream reader and a sender of numbered messages, recording statuses."""

    def __init__(self, base: str, pause: float, statuses: dict[Any, int],
                 lock: threading.Lock) -> None:
        self.base, self.pause, self.statuses, self.lock = base, pause, statuses, lock
        self.http = httpx.Client(timeout=6 * TIMEOUT)
        answer = self.http.post(base + "/new")
        self._count(answer.status_code)
        self.id, self.token = answer.json()["id"], answer.json()["token"]
        self.sent = 0
        self.received: list[str] = []
        self.last_id = 0
        self.gaps = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._read, daemon=True),
                        threading.Thread(target=self._send, daemon=True)]
        for thread in self.threads:
            thread.start()

    def _count(self, status: Any) -> None:
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1

    def _send(self) -> None:
        while not self.stop.is_set():
            seq = self.sent + 1
            body = send_body((self.id, self.token), seq, f"{self.id}:{seq}")
            try:
                answer = self.http.post(self.base + "/send", json=body)
            except httpx.HTTPError as exc:
                self._count(f"send: {type(exc).__name__}")
                continue
            self._count(answer.status_code)
            if answer.status_code == 200:
                self.sent = seq
            self.stop.wait(self.pause)

    def _read(self) -> None:
        url = stream_url(self.base, self.id, self.token)
        while True:
            try:
                with sse_stream(url, self.last_id, timeout=6 * TIMEOUT) as response:
                    self._count(response.status_code)
                    if response.status_code != 200:
                        return
                    for _, events in sse_chunks(response):
                        for event in events:
                            if int(event.id) != self.last_id + 1:
                                self.gaps += 1
                            self.last_id = int(event.id)
                            message = wire.message_from_event(event)
                            if isinstance(message, tuple):
                                return  # the close event
                            self.received.append(message)
            except httpx.HTTPError as exc:
                self._count(f"stream: {type(exc).__name__}")
                time.sleep(0.1)

    def finish(self) -> None:
        """Stop sending, wait for every echo, close."""
        self.stop.set()
        self.threads[1].join(6 * TIMEOUT)
        deadline = time.monotonic() + 6 * TIMEOUT
        while len(self.received) < self.sent and time.monotonic() < deadline:
            time.sleep(0.05)
        answer = self.http.post(self.base + "/close",
                                json={"id": self.id, "token": self.token, "code": 1000})
        self._count(answer.status_code)
        self.threads[0].join(6 * TIMEOUT)


@pytest.mark.timeout(DURATION + 240)
@pytest.mark.parametrize("kind", ["wsgi", "cgi"])
def test_fifty_clients_lose_nothing_and_leave_the_storage_bounded(kind, tmp_path) -> None:
    running = start_deployment(kind, str(tmp_path), heartbeat=1, max_streams=CLIENTS + 20,
                               keep_closed=1, sweep_interval=1, stream_lifetime=5,
                               max_rate=0)
    # CGI pays an interpreter per request: its clients send less often
    pause = 0.02 if kind == "wsgi" else 0.8
    statuses: dict[Any, int] = {}
    lock = threading.Lock()
    try:
        run_load(running, pause, statuses, lock)
    finally:
        running.stop()
    if kind == "wsgi":
        output = "".join(running.proc.output)
        assert "locked" not in output and "Traceback" not in output


def run_load(running: Any, pause: float, statuses: dict[Any, int], lock: threading.Lock
             ) -> None:
    """Run the clients for DURATION, then check what they got and the storage."""
    base = running.base("echo")
    clients = [LoadClient(base, pause, statuses, lock) for _ in range(CLIENTS)]
    time.sleep(DURATION)
    for client in clients:
        client.stop.set()
    finishers = [threading.Thread(target=client.finish) for client in clients]
    for thread in finishers:
        thread.start()
    for thread in finishers:
        thread.join(12 * TIMEOUT)
    for client in clients:
        assert client.received == [f"{client.id}:{seq}" for seq in range(1, client.sent + 1)]
        assert client.gaps == 0
    assert not [s for s in statuses if isinstance(s, str) or s >= 500], statuses
    assert sum(client.sent for client in clients) >= CLIENTS * 3
    # housekeeping runs on requests: after keep_closed, one more request purges
    time.sleep(2.5)
    HTTP.post(base + "/new")
    time.sleep(0.5)
    path = os.path.join(running.data, "altws.db")
    db = sqlite3.connect(path)
    connections = db.execute("SELECT COUNT(*) FROM aws_connections").fetchone()[0]
    events = db.execute("SELECT COUNT(*) FROM aws_events").fetchone()[0]
    db.close()
    assert connections <= 2 and events <= 2  # the one opened just now (and its history)
    wal = path + "-wal"
    assert not os.path.exists(wal) or os.path.getsize(wal) < 4 * 1024 * 1024
