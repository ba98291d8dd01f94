"""The shared-hosting mode under a real Apache (``altws cgi-server``, built from the shipped
``deploy/apache-cgi/`` files and ``cgi-bin/altws.cgi``): what CGI adds to the contract."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from typing import Dict, List

import httpx
import pytest

from altwebsocket.protocol import messages as wire

from .support import (TIMEOUT, HTTP, Stream, cgi_processes, new_connection, send,
                      start_deployment, stream_url)


@pytest.fixture(scope="module")
def cgi(tmp_path_factory):
    running = start_deployment("cgi", str(tmp_path_factory.mktemp("cgi")), heartbeat=1,
                               max_streams=60)
    try:
        yield running
    finally:
        running.stop()


def stream_processes(conn_id: str) -> List[int]:
    """The CGI processes serving the stream of ``conn_id``."""
    return cgi_processes("GET", conn_id)


def test_twenty_concurrent_senders_lose_nothing_and_get_no_5xx(cgi) -> None:
    base = cgi.base("echo")
    clients = [new_connection(base) for _ in range(20)]
    streams = [Stream(stream_url(base, i, t)) for i, t in clients]
    statuses: Dict[int, int] = {}
    lock = threading.Lock()

    def sender(conn_id: str, token: str) -> None:
        with httpx.Client(timeout=3 * TIMEOUT) as client:
            for seq in range(1, 6):
                body = {"id": conn_id, "token": token, "seq": seq, "data": f"{conn_id}:{seq}"}
                status = client.post(base + "/send", json=body).status_code
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=sender, args=client) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(6 * TIMEOUT)
    assert statuses == {200: 100}
    for (conn_id, _), stream in zip(clients, streams):
        got = [wire.message_from_event(e) for e in stream.take(5, timeout=3 * TIMEOUT)]
        assert got == [f"{conn_id}:{seq}" for seq in range(1, 6)]
        stream.close()


def test_kill_9_of_a_stream_process_loses_nothing_acknowledged(cgi) -> None:
    base = cgi.base("echo")
    conn_id, token = new_connection(base)
    url = stream_url(base, conn_id, token)
    first = Stream(url)
    for seq in range(1, 4):
        assert send(base, conn_id, token, seq, f"m{seq}").json()["ack"] == seq
    seen = first.take(3)
    pids = stream_processes(conn_id)
    assert pids, "the stream's CGI process was not found"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    for seq in range(4, 8):  # acknowledged while no stream process exists
        assert send(base, conn_id, token, seq, f"m{seq}").json()["ack"] == seq
    first.close()
    resumed = Stream(url, last_event_id=int(seen[-1].id))
    rest = resumed.take(4)
    assert [wire.message_from_event(e) for e in seen + rest] == [f"m{i}" for i in range(1, 8)]
    assert [e.id for e in rest] == ["4", "5", "6", "7"]
    resumed.close()


def test_a_gone_client_ends_its_stream_process(cgi) -> None:
    base = cgi.base("echo")
    conn_id, token = new_connection(base)
    stream = Stream(stream_url(base, conn_id, token))
    assert stream_processes(conn_id)
    stream.close()
    send(base, conn_id, token, 1, "wake the stream so it writes")  # the client is gone
    deadline = time.monotonic() + 3 * TIMEOUT
    while stream_processes(conn_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not stream_processes(conn_id)  # Apache's SIGTERM ended it
    db = sqlite3.connect(os.path.join(cgi.data, "altws.db"))
    waker = db.execute("SELECT waker FROM aws_connections WHERE id = ?", (conn_id,)).fetchone()
    assert waker == (None,)  # it cleaned up on the way out (SIGTERM runs finally blocks)


def test_pretty_url_and_static_pages(cgi) -> None:
    info = HTTP.get(cgi.url + "/ws/chat/info")
    assert info.status_code == 200 and info.json()["app"] == "chat"
    page = HTTP.get(cgi.url + "/static/chat.html")
    assert page.status_code == 200


@pytest.mark.parametrize("path", ["/cgi-bin/altws.ini", "/cgi-bin/.htaccess",
                                  "/cgi-bin/altws.db", "/altws.db"])
def test_settings_and_database_are_not_served(cgi, path) -> None:
    assert HTTP.get(cgi.url + path).status_code in (403, 404)


def test_streams_beyond_the_cap_get_503_with_retry_after(tmp_path) -> None:
    running = start_deployment("cgi", str(tmp_path), max_streams=2, heartbeat=1)
    try:
        base = running.base("echo")
        clients = [new_connection(base) for _ in range(3)]
        open_streams = [Stream(stream_url(base, i, t)) for i, t in clients[:2]]
        third = HTTP.get(stream_url(base, *clients[2]))
        assert third.status_code == 503
        assert third.json()["error"] == "overloaded"
        assert int(third.headers["Retry-After"]) >= 1
        for stream in open_streams:
            stream.close()
    finally:
        running.stop()


def test_cgi_server_without_apache_says_what_to_install_and_installs_nothing(tmp_path) -> None:
    """``altws cgi-server`` runs no package manager: a fake ``apt-get`` first on PATH would
    leave its mark."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mark = tmp_path / "apt-get-ran"
    fake = bin_dir / "apt-get"
    fake.write_text(f"#!/bin/sh\ntouch {mark}\n")
    fake.chmod(0o755)
    code = ("import sys, altwebsocket.cgiserver as c; c.APACHE = '/nonexistent/apache2'; "
            "from altwebsocket.cli import main; sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", code, "cgi-server", "--port", "0", "--data",
                           str(tmp_path / "data")], capture_output=True, text=True,
                          timeout=6 * TIMEOUT,
                          env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Apache is not installed" in done.stderr
    assert "apt-get install apache2" in done.stderr
    assert not mark.exists()
