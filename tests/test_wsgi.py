"""The HTTP contract (docs/protocol.md) through WebTest, in-process."""

from __future__ import annotations

import json

import pytest
import webtest

from altwebsocket import AltWebSocketHandler, AltWebSocketServer, WSGIApp
from altwebsocket.config import Settings
from altwebsocket.protocol.sse import SSEDecoder

from .support import new, post, stored_events, web_app


@pytest.fixture
def app(server: AltWebSocketServer) -> webtest.TestApp:
    return web_app(server)


def test_info(app) -> None:
    info = app.get("/chat/info").json
    assert info["version"] == 1 and info["websocket"] is None
    assert info["max_message"] == 1024 * 1024


def test_new_returns_id_and_long_token(app) -> None:
    first, second = new(app), new(app)
    assert first["id"] != second["id"]
    assert len(first["token"]) >= 32  # 192 bits, base64url
    assert first["protocol"] == ""


@pytest.mark.parametrize("text", ["a\r\nb", "\n", "\u0000", "\U0001f600 caf\u00e9", ""])
def test_echo_round_trip_of_tricky_text(app, server, text) -> None:
    conn = new(app)
    body = {"id": conn["id"], "token": conn["token"], "seq": 1, "data": text}
    assert post(app, "/echo/send", body).json == {"ok": True, "ack": 1}
    assert stored_events(server, conn["id"]) == [(1, text)]


def test_binary_round_trip(app, server) -> None:
    conn = new(app)
    data = bytes(range(256))
    import base64

    post(app, "/echo/send", {**conn, "seq": 1, "binary": base64.b64encode(data).decode()})
    assert stored_events(server, conn["id"]) == [(1, data)]


def test_duplicate_seq_is_delivered_once_and_gap_is_409(app, server) -> None:
    conn = new(app)
    creds = {"id": conn["id"], "token": conn["token"]}
    assert post(app, "/echo/send", {**creds, "seq": 1, "data": "a"}).json["ack"] == 1
    assert post(app, "/echo/send", {**creds, "seq": 1, "data": "a"}).json["ack"] == 1
    gap = post(app, "/echo/send", {**creds, "seq": 3, "data": "c"}, status=409).json
    assert gap == {"error": "seq_gap", "message": gap["message"], "expected": 2}
    batch = {**creds, "messages": [{"seq": 1, "data": "a"}, {"seq": 2, "data": "b"}]}
    assert post(app, "/echo/send", batch).json["ack"] == 2
    assert stored_events(server, conn["id"]) == [(1, "a"), (2, "b")]


def test_wrong_token_is_403_and_changes_nothing(app, server) -> None:
    conn = new(app)
    body = {"id": conn["id"], "token": "x" * 32, "seq": 1, "data": "a"}
    assert post(app, "/echo/send", body, status=403).json["error"] == "forbidden"
    assert post(app, "/echo/close", {"id": conn["id"], "token": "nope"}, status=403).json
    app.get(f"/echo/?id={conn['id']}&token=nope", status=403)
    assert stored_events(server, conn["id"]) == []
    assert server.storage.connection(conn["id"]).last_seq == 0


def test_echo_connections_never_see_each_other(app, server) -> None:
    one, two = new(app), new(app)
    post(app, "/echo/send", {**one, "seq": 1, "data": "from one"})
    post(app, "/echo/send", {**two, "seq": 1, "data": "from two"})
    assert stored_events(server, one["id"]) == [(1, "from one")]
    assert stored_events(server, two["id"]) == [(1, "from two")]


def test_chat_history_is_the_last_ten_oldest_first(app, server) -> None:
    sender = new(app, "chat")
    for i in range(1, 13):
        post(app, "/chat/send", {**sender, "seq": i, "data": f"m{i}"})
    late = new(app, "chat")
    assert [m for _, m in stored_events(server, late["id"])] == [f"m{i}" for i in range(3, 13)]
    # the sender got all its own messages
    assert [m for _, m in stored_events(server, sender["id"])] == [f"m{i}" for i in range(1, 13)]


def test_chat_goes_to_everyone_sender_included(app, server) -> None:
    a, b = new(app, "chat"), new(app, "chat")
    post(app, "/chat/send", {**a, "seq": 1, "data": "hello"})
    assert stored_events(server, a["id"]) == [(1, "hello")]
    assert stored_events(server, b["id"]) == [(1, "hello")]


def test_close_runs_once_and_queues_close_event(app, server) -> None:
    conn = new(app)
    assert post(app, "/echo/close", {**conn, "code": 4000, "reason": "bye"}).json == {"ok": True}
    again = post(app, "/echo/close", {**conn, "code": 4000, "reason": "bye"}).json
    assert again["already_closed"] is True
    assert stored_events(server, conn["id"]) == [(1, (4000, "bye"))]
    late = post(app, "/echo/send", {**conn, "seq": 1, "data": "late"}, status=410).json
    assert late["error"] == "closed"


def test_close_without_code_is_1005(app, server) -> None:
    conn = new(app)
    post(app, "/echo/close", {"id": conn["id"], "token": conn["token"]})
    assert stored_events(server, conn["id"]) == [(1, (1005, ""))]


def test_stream_of_closed_connection(app, server) -> None:
    conn = new(app)
    post(app, "/echo/send", {**conn, "seq": 1, "data": "x"})
    post(app, "/echo/close", {**conn, "code": 1000})
    url = f"/echo/?id={conn['id']}&token={conn['token']}"
    body = app.get(url).body  # not yet seen: the rest, then the close, then the end
    got = [(e.id, e.event) for e in SSEDecoder().feed(body)]
    assert got == [("1", None), ("2", "close")]
    app.get(url, headers={"Last-Event-ID": "2"}, status=204)


def test_stream_headers_and_opening(app) -> None:
    conn = new(app)
    app.post(
        "/echo/close", json.dumps({**conn, "code": 1000})
    )
    response = app.get(f"/echo/?id={conn['id']}&token={conn['token']}")
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["Cache-Control"] == "no-cache, no-transform"
    assert response.headers["X-Accel-Buffering"] == "no"
    assert "Connection" not in response.headers
    assert response.body.startswith(b"retry: 1000\n\n: altws\n\n")


@pytest.mark.parametrize(
    "method, path, body, status, error",
    [
        ("GET", "/nope/info", None, 404, "unknown"),
        ("GET", "/echo/nothing", None, 404, "unknown"),
        ("GET", "/echo/send", None, 405, "method_not_allowed"),
        ("POST", "/echo/send", b"{", 400, "bad_request"),
        ("POST", "/echo/send", b"\xff", 400, "bad_request"),
        ("POST", "/echo/send", b'{"id": "nope", "token": "x", "seq": 1, "data": "a"}', 404,
         "unknown"),
        ("POST", "/echo/new", b'{"protocols": 3}', 400, "bad_request"),
        ("GET", "/echo/?id=x", None, 400, "bad_request"),
        ("GET", "/echo/?id=nope&token=x", None, 404, "unknown"),
    ],
)
def test_errors_are_json(app, method, path, body, status, error) -> None:
    response = app.request(path, method=method, body=body or b"", status=status)
    assert response.json["error"] == error
    assert response.json["message"]
    assert "Traceback" not in response.text


def test_garbage_last_event_id_is_400(app) -> None:
    conn = new(app)
    url = f"/echo/?id={conn['id']}&token={conn['token']}"
    assert app.get(url, headers={"Last-Event-ID": "abc"}, status=400).json["error"] == \
        "bad_request"
    assert app.get(url, headers={"Last-Event-ID": "99"}, status=400)


def test_message_over_limit_is_413(data_dir) -> None:
    server = AltWebSocketServer(settings=Settings(data=data_dir, max_message=10))
    app = webtest.TestApp(WSGIApp(server))
    conn = new(app)
    body = {**conn, "seq": 1, "data": "x" * 11}
    assert post(app, "/echo/send", body, status=413).json["error"] == "too_big"
    app.post("/echo/send", b"x" * 200000, status=413)
    assert server.storage.connection(conn["id"]).last_seq == 0


def test_origin_same_origin_by_default_and_allow_list(data_dir) -> None:
    server = AltWebSocketServer(
        settings=Settings(data=data_dir, allowed_origins=("https://friend.example",)))
    app = webtest.TestApp(WSGIApp(server), extra_environ={"HTTP_HOST": "srv.example"})
    app.post("/echo/new", headers={"Origin": "http://srv.example"}, status=200)
    friend = app.post("/echo/new", headers={"Origin": "https://friend.example"}, status=200)
    assert friend.headers["Access-Control-Allow-Origin"] == "https://friend.example"
    refused = app.post("/echo/new", headers={"Origin": "https://evil.example"}, status=403)
    assert refused.json["error"] == "origin"
    pre = app.options("/echo/send", headers={"Origin": "https://friend.example"}, status=204)
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]


class Proto(AltWebSocketHandler):
    protocols = ("v2", "v1")

    def on_open(self, conn):
        conn.send(f"protocol={conn.protocol}")


def test_subprotocol_negotiation(data_dir) -> None:
    server = AltWebSocketServer({"p": Proto()}, settings=Settings(data=data_dir))
    app = webtest.TestApp(WSGIApp(server))
    assert new(app, "p", body={"protocols": ["v1", "v2"]})["protocol"] == "v2"
    assert new(app, "p", body={"protocols": ["v1"]})["protocol"] == "v1"
    assert new(app, "p", body={"protocols": ["x"]})["protocol"] == ""


class Broken(AltWebSocketHandler):
    def on_message(self, conn, message):
        conn.send("before the bug")
        raise RuntimeError("bug")


def test_handler_error_closes_with_1011_and_no_500(data_dir) -> None:
    server = AltWebSocketServer({"b": Broken()}, settings=Settings(data=data_dir))
    app = webtest.TestApp(WSGIApp(server))
    conn = new(app, "b")
    assert post(app, "/b/send", {**conn, "seq": 1, "data": "x"}).json["ack"] == 1
    assert stored_events(server, conn["id"]) == [(1, "before the bug"),
                                                 (2, (1011, "internal error"))]


def test_head_on_the_stream_answers_its_status_without_streaming(app) -> None:
    conn = new(app)
    url = f"/echo/?id={conn['id']}&token={conn['token']}"
    response = app.head(url, status=200)
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.body == b""
    app.head(f"/echo/?id={conn['id']}&token=wrong", status=403)
    post(app, "/echo/close", {**conn, "code": 1000})
    app.head(url, headers={"Last-Event-ID": "1"}, status=204)
