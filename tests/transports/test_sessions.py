"""Sessions (wire protocol version 2) in-process: what the real-server tests cannot reach
quickly — the sweep, the undelivered-events limit, broadcasts across v1 and v2, and that a
v1 token can never act on a session's connection."""

from __future__ import annotations

import json
from typing import Any

import webtest

from altwebsocket import AltWebSocketServer, WSGIApp
from altwebsocket.config import Settings
from altwebsocket.protocol.session import session_event_for
from altwebsocket.protocol.sse import SSEDecoder

from ..support import FakeClock


def post(app: webtest.TestApp, path: str, body: dict[str, Any], status: Any = 200) -> Any:
    return app.post(path, json.dumps(body), status=status).json


def session_events(server: AltWebSocketServer, session: str) -> list[Any]:
    raw = b"".join(session_event_for(*event).encode()
                   for event in server.storage.events_after(session, 0, limit=10000))
    return [(e.event or "message", json.loads(e.data)) for e in SSEDecoder().feed(raw)]


def start(app: webtest.TestApp, *apps: str) -> dict[str, Any]:
    session = post(app, "/_session/new", {})
    ops = [{"op": "open", "ref": f"r{i}", "app": name} for i, name in enumerate(apps)]
    if ops:
        results = post(app, "/_session/send", {**session, "ops": ops})["results"]
        assert all(r["ok"] for r in results)
    return session


def test_a_gone_session_closes_its_connections_with_1006(data_dir) -> None:
    clock = FakeClock()
    server = AltWebSocketServer(settings=Settings(data=data_dir, gone_timeout=10), clock=clock)
    app = webtest.TestApp(WSGIApp(server))
    session = start(app, "echo", "chat")
    clock.advance(5)
    assert server.sweep()[0] == 0  # not gone yet
    clock.advance(6)
    closed, _ = server.sweep()
    assert closed >= 1
    events = session_events(server, session["session"])
    assert sorted(body["ref"] for kind, body in events if kind == "close") == ["r0", "r1"]
    assert all(body["code"] == 1006 for kind, body in events if kind == "close")
    assert events[-1][0] == "end"
    assert server.sweep()[0] == 0  # closed once


def test_a_session_that_does_not_read_is_closed_with_1008(data_dir) -> None:
    server = AltWebSocketServer(settings=Settings(data=data_dir, max_events_queued=5,
                                                  max_rate=0))
    app = webtest.TestApp(WSGIApp(server))
    session = start(app, "echo", "echo")
    for seq in range(1, 4):
        post(app, "/_session/send", {**session, "ops": [
            {"op": "send", "ref": "r0", "messages": [{"seq": seq, "data": "x"}]},
            {"op": "send", "ref": "r1", "messages": [{"seq": seq, "data": "y"}]}]})
    closes = [body for kind, body in session_events(server, session["session"])
              if kind == "close"]
    assert {body["ref"]: body["code"] for body in closes} == {"r0": 1008, "r1": 1008}
    refused = post(app, "/_session/send", {**session, "ops": [
        {"op": "send", "ref": "r0", "messages": [{"seq": 4, "data": "x"}]}]}, status=410)
    assert refused["error"] == "closed"


def test_a_broadcast_reaches_v1_and_v2_connections_once_each(data_dir) -> None:
    server = AltWebSocketServer(settings=Settings(data=data_dir))
    app = webtest.TestApp(WSGIApp(server))
    v1 = post(app, "/chat/new", {})
    session = start(app, "chat", "chat", "echo")
    assert server.push("chat", "news") == 3  # one v1, two in the session, not the echo
    mine = [(body["ref"], body["data"]) for kind, body in session_events(
        server, session["session"]) if kind == "message"]
    assert mine == [("r0", "news"), ("r1", "news")]
    assert [e[2] for e in server.storage.events_after(v1["id"], 0)] == [b"news"]


def test_a_v1_request_cannot_reach_a_session_connection(data_dir) -> None:
    server = AltWebSocketServer(settings=Settings(data=data_dir))
    app = webtest.TestApp(WSGIApp(server))
    session = start(app, "echo")
    record = server.storage.session_connection(session["session"], "r0")
    assert record is not None and record.token_hash == ""
    for token in ("", session["secret"], "anything"):
        body = {"id": record.id, "token": token or "x", "seq": 1, "data": "x"}
        assert app.post("/echo/send", json.dumps(body), status=403).json["error"] == "forbidden"
    # nor another session's secret a connection of this one
    other = start(app)
    answer = post(app, "/_session/send", {**other, "ops": [
        {"op": "send", "ref": "r0", "messages": [{"seq": 1, "data": "x"}]}]})
    assert answer["results"][0]["status"] == 404  # other has no r0: refs are per session


def test_malformed_operations_fail_alone(data_dir) -> None:
    server = AltWebSocketServer(settings=Settings(data=data_dir, max_message=10))
    app = webtest.TestApp(WSGIApp(server))
    session = start(app, "echo")
    results = post(app, "/_session/send", {**session, "ops": [
        {"op": "send", "ref": "r0", "messages": [{"seq": 1, "data": "x" * 11}]},
        {"op": "jump", "ref": "r1"},
        {"op": "close", "ref": "r2", "code": 1006},
    ]})["results"]
    assert [r["status"] for r in results] == [413, 400, 400]
    assert post(app, "/_session/send", {**session, "ops": [{"op": "send"}]},
                status=400)["error"] == "bad_request"  # no ref: nothing to answer it by
    assert post(app, "/_session/send", {"session": session["session"], "ops": []},
                status=400)["error"] == "bad_request"
