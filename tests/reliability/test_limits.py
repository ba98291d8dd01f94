"""The limits of docs/security.md, enforced and configurable: messages per second per
connection (429), undelivered events per connection (1008), connections per client address
(429 on /new), over HTTP in-process and over the native daemon; and the schema migration
that added their columns."""

from __future__ import annotations

import os
import re
import sqlite3
import time
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from altwebsocket.config import FIELDS, Settings
from altwebsocket.storage import SCHEMA_VERSION, AltWebSocketStorage
from altwebsocket.storage.wake import send_hints
from altwebsocket.transports.http.stream import Streams, open_stream

from ..support import (
    ROOT,
    TIMEOUT,
    Daemon,
    FakeClock,
    make_server,
    new,
    post,
    send_body,
    serving,
    state_of,
    stored_events,
    web_app,
)

# --- messages per second per connection --------------------------------------------------

def test_over_the_rate_is_429_with_retry_after_and_changes_nothing(data_dir) -> None:
    clock = FakeClock()
    server = make_server(data_dir, clock=clock, max_rate=5, rate_burst=5)
    app = web_app(server)
    conn = new(app)
    for seq in range(1, 6):
        assert post(app, "/echo/send", send_body(conn, seq)).json["ack"] == seq
    before = state_of(server, conn["id"])
    refused = post(app, "/echo/send", send_body(conn, 6), status=429)
    assert refused.json["error"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert state_of(server, conn["id"]) == before
    # a retry of a seq already accepted takes no token: acknowledged again, not delivered
    assert post(app, "/echo/send", send_body(conn, 3)).json["ack"] == 5
    clock.advance(0.19)  # not yet one token back at 5 per second
    assert post(app, "/echo/send", send_body(conn, 6), status=429).json["error"] == "rate_limited"
    clock.advance(0.02)  # now one
    assert post(app, "/echo/send", send_body(conn, 6)).json["ack"] == 6
    assert [m for _, m in stored_events(server, conn["id"])] == ["x"] * 6


def test_a_batch_larger_than_the_burst_passes_once_then_waits_its_debt(data_dir) -> None:
    server = make_server(data_dir, max_rate=10, rate_burst=4)
    app = web_app(server)
    conn = new(app)
    batch = {"id": conn["id"], "token": conn["token"],
             "messages": [{"seq": n, "data": str(n)} for n in range(1, 21)]}
    assert post(app, "/echo/send", batch).json["ack"] == 20
    refused = post(app, "/echo/send", send_body(conn, 21), status=429)
    assert int(refused.headers["Retry-After"]) == 2  # 16 tokens of debt at 10 per second


def test_max_rate_zero_means_no_limit(data_dir) -> None:
    app = web_app(make_server(data_dir, max_rate=0))
    conn = new(app)
    for seq in range(1, 401):
        post(app, "/echo/send", send_body(conn, seq))


# --- undelivered events per connection -----------------------------------------------------

def test_a_client_that_never_reads_is_closed_with_1008(data_dir) -> None:
    server = make_server(data_dir, max_events_queued=5, max_rate=0)
    app = web_app(server)
    conn = new(app)
    for seq in range(1, 6):
        post(app, "/echo/send", send_body(conn, seq, str(seq)))
    assert post(app, "/echo/send", send_body(conn, 6, "6")).json["ack"] == 6
    events = stored_events(server, conn["id"])
    assert events[-1] == (7, (1008, "too many undelivered events"))
    assert [m for _, m in events[:-1]] == ["1", "2", "3", "4", "5", "6"]  # nothing dropped
    assert post(app, "/echo/send", send_body(conn, 7), status=410).json["error"] == "closed"


def _reading(data_dir: Any, max_events_queued: int) -> tuple[Any, Any, dict[str, Any], Any]:
    """A server, its web app, an echo connection and its stream's body, opened."""
    server = make_server(data_dir, max_events_queued=max_events_queued, max_rate=0)
    app = web_app(server)
    conn = new(app)
    stream = open_stream(server, Streams(), "echo", conn["id"], conn["token"], 0)
    assert stream is not None
    body = iter(stream)
    next(body)  # retry: and the opening comment
    return server, app, conn, body


def test_a_client_that_reads_is_never_closed(data_dir) -> None:
    server, app, conn, body = _reading(data_dir, 5)
    seq = 0
    for _ in range(6):  # 24 messages through, never more than 4 unread at once
        for _ in range(4):
            seq += 1
            post(app, "/echo/send", send_body(conn, seq, str(seq)))
        chunk = next(body)
        assert chunk.count(b"id: ") == 4
    assert server.storage.connection(conn["id"]).close_code is None
    body.close()  # type: ignore[attr-defined]


def test_an_older_streams_progress_leaves_the_waker_to_the_newer_stream(data_dir) -> None:
    """A stream records how far it got every ``max_events_queued / 4`` events. When a newer
    stream of the same connection (in another process) has become its waker meanwhile, that
    record must not name the older stream again: the connection's hints would go to it."""
    server, app, conn, body = _reading(data_dir, 8)
    ours = server.storage.connection(conn["id"]).waker
    for seq in (1, 2):
        post(app, "/echo/send", send_body(conn, seq, str(seq)))
    assert next(body).count(b"id: ") == 2
    assert server.storage.connection(conn["id"]).sent_event == 2  # (its own progress)
    with server.storage.transaction() as tx:  # a newer stream, elsewhere
        tx.set_waker(conn["id"], "newer-stream", 2)
    for seq in (3, 4):
        post(app, "/echo/send", send_body(conn, seq, str(seq)))
    send_hints({ours: [conn["id"]]})  # (as the process's poller finds a hint not sent)
    assert next(body).count(b"id: ") == 2  # (past the next report: 4)
    record = server.storage.connection(conn["id"])
    assert ours and record.waker == "newer-stream" and record.sent_event == 2
    body.close()  # type: ignore[attr-defined]


def test_a_chat_member_that_never_reads_is_closed_and_the_others_are_not(data_dir) -> None:
    server = make_server(data_dir, max_events_queued=8, max_rate=0)
    app = web_app(server)
    talker, silent = new(app, "chat"), new(app, "chat")
    for seq in range(1, 12):
        post(app, "/chat/send", send_body(talker, seq, f"m{seq}"))
        # the talker reads its stream: it resumes after what it has seen
        last = stored_events(server, talker["id"])[-1][0]
        server.storage.discard_events(talker["id"], last)
    assert server.storage.connection(silent["id"]).close_code == 1008
    assert server.storage.connection(talker["id"]).close_code is None


# --- connections per client address ----------------------------------------------------------

def test_connections_per_address_is_429_on_new(data_dir) -> None:
    server = make_server(data_dir, max_connections_per_ip=3)
    one = web_app(server, remote="10.0.0.1")
    conns = [new(one) for _ in range(3)]
    refused = new(one, status=429)
    assert refused["error"] == "rate_limited"
    assert new(web_app(server, remote="10.0.0.2"))["id"]  # another address is not affected
    # a spoofed X-Forwarded-For is ignored without trust_proxy
    new(one, status=429, headers={"X-Forwarded-For": "192.0.2.9"})
    post(one, "/echo/close", {"id": conns[0]["id"], "token": conns[0]["token"], "code": 1000})
    assert new(one)["id"]  # a closed connection frees its slot


def test_behind_a_trusted_proxy_the_last_forwarded_address_counts(data_dir) -> None:
    server = make_server(data_dir, max_connections_per_ip=1, trust_proxy=True)
    proxy = web_app(server, remote="127.0.0.1")
    new(proxy, headers={"X-Forwarded-For": "198.51.100.1"})
    # the client may prepend anything; the entry our proxy appended is the last one
    new(proxy, status=429, headers={"X-Forwarded-For": "203.0.113.5, 198.51.100.1"})
    new(proxy, headers={"X-Forwarded-For": "198.51.100.2"})
    row = sqlite3.connect(os.path.join(data_dir, "altws.db")).execute(
        "SELECT COUNT(*) FROM aws_connections WHERE client_addr = '198.51.100.1'").fetchone()
    assert row == (1,)


# --- the native daemon -------------------------------------------------------------------------

@pytest.fixture
def limited_daemon(data_dir):
    yield from serving(Daemon.on(data_dir, max_rate=40, rate_burst=10,
                                 max_connections_per_ip=2))


def test_daemon_slows_a_fast_sender_and_loses_nothing(limited_daemon) -> None:
    with ws_connect(limited_daemon.url + "/echo", open_timeout=TIMEOUT) as ws:
        started = time.monotonic()
        for number in range(50):
            ws.send(str(number))
        assert [ws.recv(timeout=3 * TIMEOUT) for _ in range(50)] == [str(n) for n in range(50)]
        assert time.monotonic() - started >= 0.8  # (50 - 10) / 40 s of backpressure


def test_daemon_refuses_connections_over_the_per_address_limit(limited_daemon) -> None:
    url = limited_daemon.url + "/echo"
    with ws_connect(url, open_timeout=TIMEOUT), ws_connect(url, open_timeout=TIMEOUT):
        with ws_connect(url, open_timeout=TIMEOUT) as third:
            with pytest.raises(ConnectionClosed):
                third.recv(timeout=TIMEOUT)
            assert third.close_code == 1013


# --- defaults, documented ------------------------------------------------------------------------

def test_limits_have_safe_defaults_and_are_documented() -> None:
    settings = Settings()
    assert settings.max_rate > 0 and settings.max_events_queued > 0
    assert settings.max_connections_per_ip > 0 and settings.max_streams > 0
    with open(os.path.join(ROOT, "docs", "protocol.md"), encoding="utf-8") as handle:
        protocol = handle.read()
    with open(os.path.join(ROOT, "docs", "security.md"), encoding="utf-8") as handle:
        security = handle.read()
    for name in ("max_message", "max_batch", "max_rate", "rate_burst", "max_events_queued",
                 "max_connections_per_ip", "max_streams"):
        assert name in FIELDS
        assert re.search(rf"`{name}`", protocol), name
        assert re.search(rf"`{name}`", security), name


# --- the schema migration -------------------------------------------------------------------

def test_a_version_1_database_is_migrated_in_place(data_dir) -> None:
    path = os.path.join(data_dir, "altws.db")
    AltWebSocketStorage("sqlite:///" + path).ensure_schema()
    db = sqlite3.connect(path)
    db.execute("DROP INDEX aws_connections_addr_state")
    for column in ("client_addr", "sent_event", "rate_tokens", "rate_at"):
        db.execute(f"ALTER TABLE aws_connections DROP COLUMN {column}")
    db.execute("INSERT INTO aws_connections (id, app, token_hash, protocol, state, created, "
               "last_seen, last_event, last_seq, transport) "
               "VALUES ('old', 'echo', 'x', '', 1, 0, 0, 0, 0, 'emulation')")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    server = make_server(data_dir, max_rate=5)
    assert server.storage.connection("old").sent_event == 0
    app = web_app(server)
    conn = new(app)
    assert post(app, "/echo/send", send_body(conn, 1)).json["ack"] == 1
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert check.execute("SELECT COUNT(*) FROM aws_connections").fetchone() == (2,)


def test_a_fast_client_is_not_throttled_on_a_persistent_server_but_is_under_cgi(data_dir) -> None:
    """The default ``max_rate`` (docs/security.md, "Why these defaults"): 1,000 messages
    back to back pass on a persistent server; under CGI the same client is held at 100/s."""
    from altwebsocket.config import convert
    from altwebsocket.transports.http.cgi import CGI_DEFAULTS

    app = web_app(make_server(data_dir))
    conn = new(app)
    for seq in range(1, 1001):
        post(app, "/echo/send", send_body(conn, seq, "x"))  # 200 each, none refused
    cgi = Settings(**{name: convert(name, str(value)) for name, value in CGI_DEFAULTS.items()})
    assert cgi.max_rate == 100 and Settings().max_rate == 5000
    cgi_app = web_app(make_server(os.path.join(data_dir, "cgi"), max_rate=cgi.max_rate))
    conn = new(cgi_app)
    statuses = [post(cgi_app, "/echo/send", send_body(conn, seq, "x"), status="*").status_int
                for seq in range(1, 301)]
    assert statuses.count(429) > 0 and statuses[:200] == [200] * 200  # the burst, then paced
