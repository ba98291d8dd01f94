"""Nothing lost, nothing twice, under ``kill -9`` (docs/reliability.md).

A long exchange with the echo app while server processes are killed at random moments and
restarted on the same data folder; the client retries with the same seqs and resumes the
stream with ``Last-Event-ID``. At the end the echoes are compared with what was sent: every
acknowledged message reached the handler exactly once (its echo arrives exactly once, in
order). ``ALTWS_SOAK=1`` makes the exchanges longer and the kills more frequent."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import threading
import time
from typing import Any

import httpx
from websockets.sync.client import connect as ws_connect

from altwebsocket.client import connect
from altwebsocket.protocol import messages as wire

from ..support import (
    TIMEOUT,
    Process,
    free_port,
    send_body,
    sse_chunks,
    sse_stream,
    start_altws,
    start_deployment,
    stream_url,
)

SOAK = bool(os.environ.get("ALTWS_SOAK"))
MESSAGES = 1500 if SOAK else 300
KILLS = 10 if SOAK else 3


def start_serve(data: str, port: int, storage: str | None = None) -> Process:
    """``altws serve`` on ``port`` (on the database ``storage``, else SQLite in ``data``): a
    restart comes back where the client looks for it."""
    extra = ["--storage", storage] if storage else []
    return start_altws("serve", data, "--no-daemon", *extra, port=port, heartbeat=1,
                       max_rate=0)


def test_kill_9_of_altws_serve_loses_and_repeats_nothing(data_dir, database_url) -> None:
    """On SQLite, PostgreSQL and MariaDB: a process killed in the middle of transactions
    leaves nothing half done that a restart would deliver twice or lose."""
    port = free_port()
    server = start_serve(data_dir, port, database_url)
    ws = connect(f"http://127.0.0.1:{port}/echo", emulate=True, timeout=TIMEOUT)
    received: list[Any] = []
    done = threading.Event()

    def reader() -> None:
        while len(received) < MESSAGES:
            received.append(ws.recv(timeout=12 * TIMEOUT))
        done.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    rng = random.Random(7)
    kill_at = sorted(rng.sample(range(20, MESSAGES - 20), KILLS))
    try:
        for number in range(1, MESSAGES + 1):
            ws.send(str(number))
            if kill_at and number == kill_at[0]:
                kill_at.pop(0)
                time.sleep(rng.random() * 0.2)  # somewhere in the middle of requests
                os.killpg(server.proc.pid, signal.SIGKILL)
                server.proc.wait(TIMEOUT)
                server = start_serve(data_dir, port, database_url)
            elif number % 10 == 0:
                time.sleep(0.01)
        assert done.wait(12 * TIMEOUT), f"got {len(received)} of {MESSAGES}"
        assert received == [str(n) for n in range(1, MESSAGES + 1)]
    finally:
        ws.close()
        server.stop()


class RetryingClient:
    """A client of the HTTP endpoints that treats any failure as transient: it resends the
    same seq until acknowledged and resumes the stream with ``Last-Event-ID``."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.Client(timeout=TIMEOUT)
        while True:
            try:
                answer = self.http.post(base + "/new")
                if answer.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.id, self.token = answer.json()["id"], answer.json()["token"]
        self.events: dict[int, Any] = {}
        self.duplicates = 0
        self.last_id = 0
        self.stop = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def send(self, seq: int, data: str) -> int:
        """Send until acknowledged; returns how many attempts failed."""
        failed = 0
        body = send_body((self.id, self.token), seq, data)
        while True:
            try:
                answer = self.http.post(self.base + "/send", json=body)
                if answer.status_code == 200 and answer.json()["ack"] >= seq:
                    return failed
            except httpx.HTTPError:
                pass
            failed += 1
            time.sleep(0.05)

    def _read(self) -> None:
        url = stream_url(self.base, self.id, self.token)
        while not self.stop:
            try:
                with sse_stream(url, self.last_id, timeout=TIMEOUT) as response:
                    if response.status_code != 200:
                        time.sleep(0.1)
                        continue
                    for _, events in sse_chunks(response):
                        for event in events:
                            event_id = int(event.id)
                            if event_id in self.events:
                                self.duplicates += 1
                                continue
                            assert event_id == self.last_id + 1, "an event id gap"
                            self.events[event_id] = wire.message_from_event(event)
                            self.last_id = event_id
                        if self.stop:
                            return
            except httpx.HTTPError:
                time.sleep(0.05)

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.events) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(self.events) >= count


def test_kill_9_of_cgi_processes_loses_and_repeats_nothing(tmp_path) -> None:
    running = start_deployment("cgi", str(tmp_path), heartbeat=1, max_rate=0)
    killed = {"GET": 0, "POST": 0}
    stop = threading.Event()
    client: RetryingClient | None = None

    def killer() -> None:
        # stream processes live long: one every half second or so; a /send process lives
        # some 20 ms: scan without pause, and kill some of those found
        rng = random.Random(11)
        next_get = time.monotonic() + 0.5
        decided: set = set()
        while not stop.wait(0.003):
            if time.monotonic() >= next_get and client is not None:
                victims = [("GET", pid) for pid in running.cgi_processes("GET", client.id)[:1]]
                next_get = time.monotonic() + rng.uniform(0.2, 0.8)
            else:
                fresh = [pid for pid in running.cgi_processes("POST") if pid not in decided]
                decided.update(fresh)  # each process is judged once: one in five dies
                victims = [("POST", pid) for pid in fresh if rng.random() < 0.2]
            for method, pid in victims:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed[method] += 1
                except ProcessLookupError:
                    pass

    try:
        client = RetryingClient(running.base("echo"))
        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        count = MESSAGES // 2 if not SOAK else MESSAGES
        failures = sum(client.send(seq, str(seq)) for seq in range(1, count + 1))
        stop.set()
        thread.join(TIMEOUT)
        assert client.wait_for(count, 6 * TIMEOUT), f"{len(client.events)} of {count}"
        assert [client.events[i] for i in range(1, count + 1)] == [
            str(n) for n in range(1, count + 1)]
        assert killed["GET"] >= 1 and killed["POST"] >= 1, killed
        assert failures >= 1  # some sends really were cut
    finally:
        stop.set()
        if client is not None:
            client.stop = True
        running.stop()


def test_kill_9_of_the_daemon(data_dir) -> None:
    """Native WebSocket has no acknowledgement of its own: a frame counts as received once its
    echo is back. Per connection the echoes are exactly the frames sent, in order, up to the
    kill, never one twice; after the restart the killed connections are closed with 1006."""
    port = free_port()
    daemon = start_altws("daemon", data_dir, port=port)
    try:
        for round_number in range(KILLS):
            with ws_connect(f"ws://127.0.0.1:{port}/echo", open_timeout=TIMEOUT) as ws:
                sent = [f"{round_number}:{n}" for n in range(40)]
                echoes: list[str] = []
                for index, text in enumerate(sent):
                    ws.send(text)
                    if index < 30:
                        echoes.append(ws.recv(timeout=TIMEOUT))
                os.killpg(daemon.proc.pid, signal.SIGKILL)  # with frames in flight
                daemon.proc.wait(TIMEOUT)
                try:
                    while True:
                        echoes.append(ws.recv(timeout=TIMEOUT))
                except Exception:
                    pass
                assert echoes == sent[: len(echoes)] and len(echoes) >= 30
            daemon = start_altws("daemon", data_dir, port=port)
        db = sqlite3.connect(os.path.join(data_dir, "altws.db"))
        rows = db.execute("SELECT state, close_code FROM aws_connections").fetchall()
        assert len(rows) == KILLS
        assert all(row == (3, 1006) for row in rows), rows
        with ws_connect(f"ws://127.0.0.1:{port}/echo", open_timeout=TIMEOUT) as ws:
            ws.send("still here")
            assert ws.recv(timeout=TIMEOUT) == "still here"
    finally:
        daemon.stop()
