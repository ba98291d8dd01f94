"""The shared-hosting mode under a real Apache (``altws cgi-server``, built from the shipped
``deploy/apache-cgi/`` files and ``cgi-bin/altws.cgi``): what CGI adds to the contract."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from altwebsocket.protocol import messages as wire
from altwebsocket.protocol.sse import SSEDecoder

from .support import (
    HTTP,
    TIMEOUT,
    new_connection,
    open_stream,
    resume_after_a_cut,
    send,
    start_deployment,
    stream_url,
)

# The HTTP scenarios common to both deployments are in test_http_deployments.py; the CGI
# deployment here is the same one (``cgi_deployment``, tests/conftest.py).


def test_kill_9_of_a_stream_process_loses_nothing_acknowledged(cgi_deployment) -> None:
    def kill_its_process(conn_id: str, stream: object) -> None:
        pids = cgi_deployment.cgi_processes("GET", conn_id)
        assert pids, "the stream's CGI process was not found"
        for pid in pids:
            os.kill(pid, signal.SIGKILL)

    # m4-m7 are acknowledged while no stream process exists
    resumed = resume_after_a_cut(cgi_deployment.base("echo"), kill_its_process, during=4)[2]
    resumed.close()


def test_a_gone_client_ends_its_stream_process(cgi_deployment) -> None:
    cgi = cgi_deployment
    base = cgi.base("echo")
    conn_id, token, stream = open_stream(base)
    assert cgi.cgi_processes("GET", conn_id)
    stream.close()
    send(base, conn_id, token, 1, "wake the stream so it writes")  # the client is gone
    deadline = time.monotonic() + 3 * TIMEOUT
    while cgi.cgi_processes("GET", conn_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not cgi.cgi_processes("GET", conn_id)  # Apache's SIGTERM ended it
    db = sqlite3.connect(os.path.join(cgi.data, "altws.db"))
    waker = db.execute("SELECT waker FROM aws_connections WHERE id = ?", (conn_id,)).fetchone()
    assert waker == (None,)  # it cleaned up on the way out (SIGTERM runs finally blocks)


def test_pretty_url_and_static_pages(cgi_deployment) -> None:
    cgi = cgi_deployment
    info = HTTP.get(cgi.url + "/ws/chat/info")
    assert info.status_code == 200 and info.json()["app"] == "chat"
    page = HTTP.get(cgi.url + "/static/chat.html")
    assert page.status_code == 200


@pytest.mark.parametrize("path", ["/cgi-bin/altws.ini", "/cgi-bin/.htaccess",
                                  "/cgi-bin/altws.db", "/altws.db"])
def test_settings_and_database_are_not_served(cgi_deployment, path) -> None:
    assert HTTP.get(cgi_deployment.url + path).status_code in (403, 404)


def test_a_stream_beyond_the_cap_is_a_poll_not_a_503(tmp_path) -> None:
    """Under real Apache CGI: the third stream on two slots is answered at once (200, the
    waiting events, a ``retry:``); its client comes back as EventSource does."""
    running = start_deployment("cgi", str(tmp_path), max_streams=2, heartbeat=1)
    try:
        base = running.base("echo")
        clients = [open_stream(base) for _ in range(2)]
        conn_id, token = new_connection(base)
        assert send(base, conn_id, token, 1, "waiting").status_code == 200
        third = HTTP.get(stream_url(base, conn_id, token))
        assert third.status_code == 200, third.text
        decoder = SSEDecoder()
        events = decoder.feed(third.content)
        assert decoder.retry is not None and 1000 <= decoder.retry <= 3000
        assert [wire.message_from_event(e) for e in events] == ["waiting"]
        for _, _, stream in clients:
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


def test_the_selftest_reports_the_stream_ceiling(tmp_path) -> None:
    """``altws-selftest.cgi?report=1`` says how many streams this host may hold: the
    ``max_streams`` of the altws.ini beside it, the account's process limit and use."""
    import json
    import shutil

    from .support import ROOT

    script = tmp_path / "altws-selftest.cgi"
    shutil.copy(os.path.join(ROOT, "deploy", "selftest", "altws-selftest.cgi"), script)
    (tmp_path / "altws.ini").write_text("[altws]\ndata = data\nmax_streams = 3\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, timeout=30,
                          env={"QUERY_STRING": "report=1", "PATH": os.environ["PATH"]})
    ceiling = json.loads(done.stdout.split(b"\r\n\r\n", 1)[1])["stream_ceiling"]
    assert ceiling["max_streams"] == 3 and ceiling["max_streams_from"] == "altws.ini"
    assert ceiling["processes_now"] >= 1
    assert ceiling["process_limit"] is None or ceiling["process_limit"] > 0
    assert "poll" in ceiling["advice"] or "lower" in ceiling["advice"]
