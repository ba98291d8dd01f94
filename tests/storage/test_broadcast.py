"""A broadcast (``Transaction.enqueue_app``, a chat message) on every engine: each
recipient's event numbered after its queue's last — several connections of one session on
the session's queue in the order they were opened — in a number of statements that does
not grow with the recipients."""

from __future__ import annotations

from typing import Any

import pytest

from altwebsocket.protocol import messages as wire
from altwebsocket.storage.api import Transaction

from ..support import make_server, new, post, send_body, web_app


def _session(app: Any, *opens: tuple[str, str]) -> dict[str, Any]:
    """A session with connections ``(ref, app)`` opened in order."""
    session = post(app, "/_session/new", {}).json
    answer = post(app, "/_session/send", {
        "session": session["session"], "secret": session["secret"],
        "ops": [{"op": "open", "ref": ref, "app": name} for ref, name in opens]}).json
    assert [result["ok"] for result in answer["results"]] == [True] * len(opens)
    return dict(session)


def _texts(server: Any, queue: str) -> list[tuple[int, str | None, str]]:
    return [(event_id, target, payload.decode())
            for event_id, kind, payload, target in server.storage.events_after(queue, 0)
            if kind == wire.TEXT]


def test_session_events_of_a_broadcast_follow_each_sessions_last(database_url,
                                                                tmp_path) -> None:
    server = make_server(str(tmp_path), storage=database_url)
    server.storage.ensure_schema()
    app = web_app(server)
    first = _session(app, ("e", "echo"), ("a1", "chat"), ("a2", "chat"))
    post(app, "/_session/send", {"session": first["session"], "secret": first["secret"],
                                 "ops": [{"op": "send", "ref": "e",
                                          "messages": [{"seq": 1, "data": "x"}]}]})
    second = _session(app, ("b1", "chat"))
    v1 = new(app, "chat")
    post(app, "/chat/send", send_body(v1, 1, "hi"))
    assert _texts(server, first["session"]) == [(1, "e", "x"), (2, "a1", "hi"),
                                                (3, "a2", "hi")]
    assert _texts(server, second["session"]) == [(1, "b1", "hi")]
    assert _texts(server, v1["id"]) == [(1, None, "hi")]
    post(app, "/chat/send", send_body(v1, 2, "again"))  # the counters moved on
    assert [event[0] for event in _texts(server, first["session"])] == [1, 2, 3, 4, 5]
    assert [event[0] for event in _texts(server, second["session"])] == [1, 2]


def _statements_of_a_broadcast(folder: str, crowd: int,
                               monkeypatch: pytest.MonkeyPatch) -> int:
    """How many statements a chat message to ``crowd`` sessions (and its sender) runs."""
    server = make_server(folder)
    server.storage.ensure_schema()
    app = web_app(server)
    sessions = [_session(app, ("c", "chat"))["session"] for _ in range(crowd)]
    sender = new(app, "chat")
    post(app, "/chat/send", send_body(sender, 1, "warm"))  # (the history row exists)
    counted: list[str] = []
    run, run_many = Transaction._run, Transaction._run_many

    def counting_run(self: Transaction, statement: str, params: Any = ()) -> Any:
        counted.append(statement)
        return run(self, statement, params)

    def counting_run_many(self: Transaction, statement: str, rows: Any) -> None:
        counted.append(statement)
        run_many(self, statement, rows)

    with monkeypatch.context() as patch:
        patch.setattr(Transaction, "_run", counting_run)
        patch.setattr(Transaction, "_run_many", counting_run_many)
        post(app, "/chat/send", send_body(sender, 2, "to all"))
    for session in sessions:  # every one got both messages
        assert [text for _, _, text in _texts(server, session)] == ["warm", "to all"]
    return len(counted)


def test_a_broadcast_runs_as_many_statements_for_twenty_sessions_as_for_two(
        tmp_path, monkeypatch) -> None:
    two = _statements_of_a_broadcast(str(tmp_path / "two"), 2, monkeypatch)
    twenty = _statements_of_a_broadcast(str(tmp_path / "twenty"), 20, monkeypatch)
    assert two == twenty
