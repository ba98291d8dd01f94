"""Wire protocol version 2 (one session per browser) against real servers on 127.0.0.1 —
``altws serve`` and Apache CGI — read by an independent SSE client: one stream for many
connections of several apps, batched operations, resume, the end of a session."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from .support import HTTP, TIMEOUT, Stream, new_connection, send, start_deployment, stream_url


@pytest.fixture(scope="module", params=["wsgi", "cgi"])
def deployment(request, tmp_path_factory):
    data = str(tmp_path_factory.mktemp(f"data-v2-{request.param}"))
    running = start_deployment(request.param, data, heartbeat=1, max_streams=100)
    try:
        yield running
    finally:
        running.stop()


class Session:
    """A version-2 client as docs/protocol.md describes it, written from the document."""

    def __init__(self, base: str) -> None:
        self.base = base  # S
        answer = HTTP.post(base + "/new")
        answer.raise_for_status()
        body = answer.json()
        assert body["version"] == 2
        self.id, self.secret = body["session"], body["secret"]
        self.seqs: dict[str, int] = {}

    def headers(self) -> dict[str, str]:
        return {"X-AltWS-Session": self.id, "X-AltWS-Secret": self.secret}

    def stream(self, last_event_id: Any = None) -> Stream:
        return Stream(self.base + "/", last_event_id=last_event_id, headers=self.headers())

    def ops(self, *ops: dict[str, Any]) -> list[dict[str, Any]]:
        answer = HTTP.post(self.base + "/send", content=json.dumps(
            {"session": self.id, "secret": self.secret, "ops": list(ops)}))
        assert answer.status_code == 200, answer.text
        return answer.json()["results"]  # type: ignore[no-any-return]

    def text(self, ref: str, *messages: str) -> dict[str, Any]:
        first = self.seqs.get(ref, 0) + 1
        self.seqs[ref] = first + len(messages) - 1
        return {"op": "send", "ref": ref, "messages": [
            {"seq": first + i, "data": m} for i, m in enumerate(messages)]}


def events_of(stream: Stream, count: int) -> list[tuple[int, str, dict[str, Any]]]:
    out = []
    for event in stream.take(count):
        out.append((int(event.id), event.event or "message", json.loads(event.data)))
    return out


def session_base(deployment) -> str:
    return deployment.base("_session")


def test_info_says_both_versions(deployment) -> None:
    info = HTTP.get(deployment.base("echo") + "/info").json()
    assert info["version"] == 1 and info["versions"] == [1, 2]


def test_one_stream_carries_many_connections_of_several_apps(deployment) -> None:
    session = Session(session_base(deployment))
    stream = session.stream()
    assert stream.status == 200
    results = session.ops({"op": "open", "ref": "e1", "app": "echo"},
                          {"op": "open", "ref": "e2", "app": "echo"},
                          {"op": "open", "ref": "c1", "app": "chat"})
    assert [r["ok"] for r in results] == [True, True, True]
    # one POST carries messages of three connections
    acks = session.ops(session.text("e1", "one", "two"), session.text("e2", "é\u2028x"),
                       session.text("c1", "hello chat"))
    assert [r.get("ack") for r in acks] == [2, 1, 1]
    got = events_of(stream, 4)
    assert [e[0] for e in got] == [1, 2, 3, 4]  # ids per session, without gaps
    by_ref: dict[str, list[str]] = {}
    for _, kind, body in got:
        assert kind == "message"
        by_ref.setdefault(body["ref"], []).append(body["data"])
    assert by_ref == {"e1": ["one", "two"], "e2": ["é\u2028x"], "c1": ["hello chat"]}
    assert "\u2028" not in stream.raw.decode("utf-8")  # escaped on the wire
    stream.close()


def test_v1_and_v2_clients_share_a_chat_room(deployment) -> None:
    chat = deployment.base("chat")
    conn_id, token = new_connection(chat)
    v1 = Stream(stream_url(chat, conn_id, token))
    session = Session(session_base(deployment))
    stream = session.stream()
    session.ops({"op": "open", "ref": "room", "app": "chat"})
    # the chat history (up to 10 earlier messages) may come first: read until ours
    send(chat, conn_id, token, 1, "from v1")
    for _ in range(12):
        _, _, body = events_of(stream, 1)[0]
        if body.get("data") == "from v1":
            break
    else:
        pytest.fail("the v2 socket never got the v1 message")
    session.ops(session.text("room", "from v2"))
    for _ in range(12):
        if json.loads(v1.next().data) == "from v2":
            break
    else:
        pytest.fail("the v1 socket never got the v2 message")
    v1.close()
    stream.close()


def test_resume_with_last_event_id_loses_and_repeats_nothing(deployment) -> None:
    session = Session(session_base(deployment))
    first = session.stream()
    session.ops({"op": "open", "ref": "a", "app": "echo"}, session.text("a", "1", "2", "3"))
    assert [b["data"] for _, _, b in events_of(first, 3)] == ["1", "2", "3"]
    first.close()
    session.ops(session.text("a", "4", "5"))
    second = session.stream(last_event_id=2)
    assert [(i, b["data"]) for i, _, b in events_of(second, 3)] == [(3, "3"), (4, "4"),
                                                                    (5, "5")]
    second.close()


def test_retries_are_harmless_and_failures_stay_with_their_connection(deployment) -> None:
    session = Session(session_base(deployment))
    stream = session.stream()
    open_a = {"op": "open", "ref": "a", "app": "echo"}
    assert session.ops(open_a, {"op": "open", "ref": "b", "app": "echo"})[0]["ok"]
    assert session.ops(open_a) == [{"ref": "a", "ok": True, "protocol": "", "extensions": ""}]
    again = {"op": "send", "ref": "a", "messages": [{"seq": 1, "data": "once"}]}
    assert session.ops(again)[0]["ack"] == 1
    assert session.ops(again)[0]["ack"] == 1  # a retried seq is acknowledged, not delivered
    results = session.ops(
        {"op": "send", "ref": "b", "messages": [{"seq": 5, "data": "gap"}]},
        {"op": "send", "ref": "b", "messages": [{"seq": 6, "data": "after the gap"}]},
        {"op": "open", "ref": "z", "app": "no-such-app"},
        {"op": "send", "ref": "a", "messages": [{"seq": 2, "data": "still fine"}]})
    assert (results[0]["status"], results[0]["error"], results[0]["expected"]) == (
        409, "seq_gap", 1)
    assert (results[1]["status"], results[1]["error"]) == (424, "skipped")
    assert results[2]["status"] == 404
    assert results[3] == {"ref": "a", "ok": True, "ack": 2}
    assert [b["data"] for _, _, b in events_of(stream, 2)] == ["once", "still fine"]
    stream.close()


def test_closing_one_connection_leaves_the_others_open(deployment) -> None:
    session = Session(session_base(deployment))
    stream = session.stream()
    session.ops({"op": "open", "ref": "a", "app": "echo"},
                {"op": "open", "ref": "b", "app": "echo"})
    closed = session.ops({"op": "close", "ref": "a", "code": 4000, "reason": "bye"})
    assert closed == [{"ref": "a", "ok": True}]
    assert session.ops(session.text("b", "alive"))[0]["ack"] == 1
    got = events_of(stream, 2)
    assert got[0][1:] == ("close", {"ref": "a", "code": 4000, "reason": "bye"})
    assert got[1][1:] == ("message", {"ref": "b", "data": "alive"})
    refused = session.ops(session.text("a", "too late"))[0]
    assert (refused["status"], refused["error"]) == (410, "closed")
    assert not stream.ended.is_set()
    stream.close()


def until_end(stream: Stream) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    """The (event type, body) of every event up to the session's ``end``, and its id."""
    got = []
    while True:
        event = stream.next()
        got.append((event.event or "message", json.loads(event.data)))
        if event.event == "end":
            return got, int(event.id)


def test_closing_the_session_closes_every_connection_then_204(deployment) -> None:
    session = Session(session_base(deployment))
    stream = session.stream()
    session.ops({"op": "open", "ref": "a", "app": "echo"},
                {"op": "open", "ref": "b", "app": "chat"})
    bye = HTTP.post(session.base + "/close", content=json.dumps(
        {"session": session.id, "secret": session.secret}))
    assert bye.json() == {"ok": True}
    got, last = until_end(stream)
    closes = {body["ref"]: body["code"] for kind, body in got if kind == "close"}
    assert closes == {"a": 1001, "b": 1001}
    assert stream.ended.wait(TIMEOUT)
    after = httpx.get(session.base + "/", headers={**session.headers(),
                                                   "Last-Event-ID": str(last)},
                      timeout=TIMEOUT)
    assert after.status_code == 204
    assert HTTP.post(session.base + "/send", content=json.dumps(
        {"session": session.id, "secret": session.secret,
         "ops": [session.text("a", "x")]})).status_code == 410


def test_a_close_unless_open_keeps_the_session_while_a_named_socket_may_live(deployment
                                                                             ) -> None:
    """``unless_open``: the goodbye of a tab that is not sure it is the last. The session is
    kept while a named connection is open or not known yet (its open may be on its way), and
    closed once every named one is closed; a malformed list is a 400 that closes nothing."""
    session = Session(session_base(deployment))
    stream = session.stream()
    session.ops({"op": "open", "ref": "mine", "app": "echo"},
                {"op": "open", "ref": "theirs", "app": "echo"})

    def close(**extra: Any) -> httpx.Response:
        return HTTP.post(session.base + "/close", content=json.dumps(
            {"session": session.id, "secret": session.secret, **extra}))

    for bad in ("theirs", [""], ["x" * 65], [1], ["ok"] * 1001):
        refused = close(unless_open=bad)
        assert refused.status_code == 400, (bad, refused.text)
        assert "unless_open" in refused.json()["message"]
    assert close(unless_open=["theirs"]).json() == {"ok": True, "kept": True}
    assert close(unless_open=["not-opened-yet"]).json() == {"ok": True, "kept": True}
    assert session.ops(session.text("mine", "still here"))[0]["ack"] == 1
    assert session.ops({"op": "close", "ref": "theirs"}) == [{"ref": "theirs", "ok": True}]
    assert close(unless_open=["theirs"]).json() == {"ok": True}
    got, _ = until_end(stream)
    assert got == [("message", {"ref": "mine", "data": "still here"}),
                   ("close", {"ref": "theirs", "code": 1005, "reason": ""}),
                   ("close", {"ref": "mine", "code": 1001, "reason": ""}),
                   ("end", {"code": 1001, "reason": ""})]
    assert close(unless_open=["theirs"]).json() == {"ok": True, "already_closed": True}


def test_the_secret_is_checked_and_never_needed_in_a_url(deployment) -> None:
    session = Session(session_base(deployment))
    wrong = httpx.get(session.base + "/", headers={"X-AltWS-Session": session.id,
                                                   "X-AltWS-Secret": "x" + session.secret},
                      timeout=TIMEOUT)
    assert wrong.status_code == 403
    missing = httpx.get(session.base + f"/?session={session.id}&secret={session.secret}",
                        timeout=TIMEOUT)
    assert missing.status_code == 400  # the query string is not a way to pass it
    post = HTTP.post(session.base + "/send", content=json.dumps(
        {"session": session.id, "secret": "nope", "ops": [session.text("a", "x")]}))
    assert post.status_code == 403
    unknown = HTTP.post(session.base + "/send", content=json.dumps(
        {"session": "nope", "secret": "nope", "ops": [session.text("a", "x")]}))
    assert unknown.status_code == 404


def test_a_wrong_secret_is_refused_while_the_stream_is_held(deployment) -> None:
    """A process that holds the session's stream remembers the secret it checked (it reads
    no session row per POST); a wrong one is still a 403, and nothing it carries runs."""
    session = Session(session_base(deployment))
    stream = session.stream()
    assert session.ops({"op": "open", "ref": "a", "app": "echo"})[0]["ok"]
    assert session.ops(session.text("a", "one"))[0]["ok"]
    assert [body["data"] for _, _, body in events_of(stream, 1)] == ["one"]
    for secret in ("x" + session.secret, session.secret[:-1], ""):
        post = HTTP.post(session.base + "/send", content=json.dumps(
            {"session": session.id, "secret": secret,
             "ops": [{"op": "send", "ref": "a", "messages": [{"seq": 2, "data": "bad"}]}]}))
        assert post.status_code in (400, 403), post.text
    assert session.ops(session.text("a", "two"))[0]["ack"] == 2
    assert [body["data"] for _, _, body in events_of(stream, 1)] == ["two"]
    stream.close()
