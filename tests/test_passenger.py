"""Apache + mod_passenger serving deploy/cpanel-passenger/ as cPanel's "Setup Python App"
does (``altws cgi-server --passenger``): streams arrive event by event, the pool is the
stream ceiling (and the app finds it out), the command stops leaving no Passenger process.

The contract scenarios run under Passenger too: "passenger" is one of conftest's
DEPLOYMENTS (tests/test_http_deployments.py), and the version-2 scenarios of
tests/test_sessions_http.py are collected here as well, on this module's ``deployment``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from altwebsocket.cgiserver import passenger_pids, run_processes
from altwebsocket.protocol import messages as wire
from altwebsocket.protocol.sse import ServerSentEvent

from . import test_sessions_http as v2
from .support import (
    ALTWS,
    TIMEOUT,
    Deployment,
    Process,
    new_connection,
    send,
    serving,
    sse_chunks,
    sse_stream,
    start_deployment,
    stream_url,
)

# No skip when mod_passenger is missing: tests/run.sh installs it, and without it
# ``altws cgi-server --passenger`` fails saying what to install.


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Iterator[Deployment]:
    """Passenger with a pool of 16 and max_streams left to passenger_wsgi.py (pool - 2):
    room for the streams of earlier tests that are still held (a gone client's stream ends
    only after 2-3 heartbeats behind Passenger)."""
    data = str(tmp_path_factory.mktemp("data-passenger-v2"))
    yield from serving(start_deployment("passenger", data, pool=16, heartbeat=0.5))


# The version-2 scenarios, on this module's Passenger deployment.
test_v2_info_says_both_versions = v2.test_info_says_both_versions
test_v2_one_stream_carries_many_connections = (
    v2.test_one_stream_carries_many_connections_of_several_apps)
test_v2_v1_and_v2_clients_share_a_chat_room = v2.test_v1_and_v2_clients_share_a_chat_room
test_v2_resume_loses_and_repeats_nothing = (
    v2.test_resume_with_last_event_id_loses_and_repeats_nothing)
test_v2_retries_are_harmless = (
    v2.test_retries_are_harmless_and_failures_stay_with_their_connection)
test_v2_closing_one_connection_leaves_the_others_open = (
    v2.test_closing_one_connection_leaves_the_others_open)
test_v2_closing_the_session_closes_every_connection = (
    v2.test_closing_the_session_closes_every_connection_then_204)
test_v2_the_secret_is_checked = v2.test_the_secret_is_checked_and_never_needed_in_a_url


class Timed:
    """An event stream read in a thread, each chunk with the time it arrived."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.chunks: list[tuple[float, bytes]] = []
        self.events: list[tuple[float, ServerSentEvent]] = []
        self.ended: float | None = None
        self.status = 0
        self._stop = False
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url, headers), daemon=True)
        self._thread.start()
        assert self._opened.wait(TIMEOUT), "the stream did not open"

    def _run(self, url: str, headers: dict[str, str] | None) -> None:
        try:
            with sse_stream(url, headers=headers, timeout=3 * TIMEOUT) as response:
                self.status = response.status_code
                self._opened.set()
                for chunk, events in sse_chunks(response):
                    now = time.monotonic()
                    self.chunks.append((now, chunk))
                    self.events += [(now, event) for event in events]
                    if self._stop:
                        return
        except httpx.HTTPError:
            pass
        finally:
            self.ended = time.monotonic()
            self._opened.set()

    def wait_for(self, count: int, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while len(self.events) < count and self.ended is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.events) >= count, (self.chunks, self.ended)

    def close(self) -> None:
        self._stop = True


def test_a_stream_under_passenger_arrives_event_by_event(deployment) -> None:
    base = deployment.base("echo")
    conn_id, token = new_connection(base)
    stream = Timed(stream_url(base, conn_id, token))
    deadline = time.monotonic() + TIMEOUT
    while not stream.chunks and time.monotonic() < deadline:
        time.sleep(0.01)
    # the opening chunk comes at once, with nothing sent yet
    assert stream.status == 200 and stream.chunks[0][1].startswith(b"retry:"), stream.chunks
    for seq in (1, 2, 3):
        time.sleep(0.3)  # apart, so that a buffered stream could not pass for a live one
        sent = time.monotonic()
        assert send(base, conn_id, token, seq, f"m{seq}").json()["ack"] == seq
        stream.wait_for(seq)
        arrived, event = stream.events[seq - 1]
        assert wire.message_from_event(event) == f"m{seq}" and arrived >= sent
    assert stream.ended is None  # every event came while the response was still open
    stream.close()


def test_the_v2_session_stream_arrives_event_by_event(deployment) -> None:
    session = v2.Session(deployment.base("_session"))
    stream = Timed(session.base + "/", headers=session.headers())
    assert session.ops({"op": "open", "ref": "e", "app": "echo"})[0]["ok"]
    for number in (1, 2):
        time.sleep(0.3)
        sent = time.monotonic()
        session.ops(session.text("e", f"v2-{number}"))
        stream.wait_for(number)
        arrived, event = stream.events[number - 1]
        assert json.loads(event.data)["data"] == f"v2-{number}" and arrived >= sent
    assert stream.chunks[0][1].startswith(b"retry:") and stream.ended is None
    stream.close()


def test_cgi_server_passenger_prints_a_url_detects_its_pool_and_stops_clean() -> None:
    os.makedirs("/var/tmp/altws", mode=0o755, exist_ok=True)
    data = tempfile.mkdtemp(prefix="test-data-", dir="/var/tmp/altws")
    os.chmod(data, 0o755)
    server = Process(ALTWS + ["cgi-server", "--passenger", "--pool", "3", "--port", "0",
                              "--data", data, "--set", "heartbeat=1"],
                     pattern=r"http://127\.0\.0\.1:\d+/", timeout=3 * TIMEOUT)
    try:
        deadline = time.monotonic() + TIMEOUT
        while "run folder:" not in "".join(server.output) and time.monotonic() < deadline:
            time.sleep(0.05)
        run = "".join(server.output).split("run folder: ", 1)[1].split()[0]
        assert "max_streams 1 (pool - 2, detected)" in "".join(server.output)
        base = server.url + "/echo"
        # passenger_wsgi.py asked Passenger: a pool of 3 holds one stream, and the next
        # stream request is answered as a poll at once (the processes left serve POSTs)
        held = Timed(stream_url(base, *new_connection(base)))
        deadline = time.monotonic() + TIMEOUT
        while not held.chunks and time.monotonic() < deadline:
            time.sleep(0.01)
        polled = httpx.get(stream_url(base, *new_connection(base)), timeout=TIMEOUT)
        assert polled.status_code == 200 and b"altws poll" in polled.content, polled.text
        assert held.ended is None
        helpers = passenger_pids(run)
        assert helpers and run_processes(run)  # Passenger's watchdog, core, the app, Apache
        server.stop(signal.SIGINT)
        assert server.proc.returncode == 0, "".join(server.output)
        assert not os.path.exists(run)
        alive = [pid for pid in helpers + run_processes(run) if _running(pid)]
        assert not alive, alive
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (not gone, not a zombie waiting for its parent)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False
