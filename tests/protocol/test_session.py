"""Version 2's wire format: operations parsed one by one, session events as bytes."""

from __future__ import annotations

import pytest

from altwebsocket.exceptions import MessageTooBig, ProtocolError
from altwebsocket.protocol import messages as wire
from altwebsocket.protocol.session import (
    MAX_RID,
    answer_event,
    is_ref,
    parse_session_request,
    session_event_for,
)

CREDS = {"session": "s1", "secret": "k"}


def parse(*ops, max_message=100, max_batch=10):
    return parse_session_request({**CREDS, "ops": list(ops)}, max_message, max_batch)


def test_operations_in_order() -> None:
    request = parse({"op": "open", "ref": "a", "app": "chat", "protocols": ["p"]},
                    {"op": "send", "ref": "a", "messages": [{"seq": 1, "data": "x"},
                                                            {"seq": 2, "binary": "AAE="}]},
                    {"op": "close", "ref": "a", "code": 4000, "reason": "r"},
                    {"op": "close", "ref": "b"})
    assert (request.session, request.secret) == ("s1", "k")
    kinds = [(op.kind, op.ref, op.error) for op in request.ops]
    assert kinds == [("open", "a", None), ("send", "a", None), ("close", "a", None),
                     ("close", "b", None)]
    assert request.ops[0].protocols == ("p",) and request.ops[0].app == "chat"
    assert [m.data for m in request.ops[1].messages] == ["x", b"\x00\x01"]
    assert (request.ops[2].code, request.ops[2].reason) == (4000, "r")
    assert request.ops[3].code == 1005


@pytest.mark.parametrize("op, error", [
    ({"op": "send", "ref": "a", "messages": [{"seq": 1, "data": "x" * 101}]}, MessageTooBig),
    ({"op": "send", "ref": "a", "messages": []}, ProtocolError),
    ({"op": "open", "ref": "a", "app": "_session"}, ProtocolError),
    ({"op": "open", "ref": "a", "app": "a/b"}, ProtocolError),
    ({"op": "close", "ref": "a", "code": 1001}, ProtocolError),
    ({"op": "close", "ref": "a", "reason": "no code"}, ProtocolError),
    ({"op": "fly", "ref": "a"}, ProtocolError),
])
def test_a_bad_operation_is_its_own_error(op, error) -> None:
    (parsed,) = parse(op).ops
    assert isinstance(parsed.error, error)


@pytest.mark.parametrize("body", [
    {"ops": [{"op": "close", "ref": "a"}]},                      # no credentials
    {**CREDS, "ops": []},
    {**CREDS, "ops": "x"},
    {**CREDS, "ops": [{"op": "close"}]},                          # no ref to answer by
    {**CREDS, "ops": [{"op": "close", "ref": "a"}] * 11},         # over max_batch
    {**CREDS, "ops": [{"op": "send", "ref": "a", "messages": [
        {"seq": n, "data": "x"} for n in range(1, 7)]}] * 2},     # 12 messages in all
    {**CREDS, "rid": -1, "ops": [{"op": "close", "ref": "a"}]},
    {**CREDS, "rid": True, "ops": [{"op": "close", "ref": "a"}]},
    {**CREDS, "rid": "7", "ops": [{"op": "close", "ref": "a"}]},
    {**CREDS, "rid": 1.5, "ops": [{"op": "close", "ref": "a"}]},
    {**CREDS, "rid": MAX_RID + 1, "ops": [{"op": "close", "ref": "a"}]},
])
def test_a_bad_request_is_a_400(body) -> None:
    with pytest.raises(ProtocolError):
        parse_session_request(body, 100, 10)


@pytest.mark.parametrize("ref, ok", [("a", True), ("k3:tab-1.x_y", True), ("", False),
                                     ("a" * 64, True), ("a" * 65, False), ("a b", False),
                                     (3, False), ("é", False)])
def test_refs(ref, ok) -> None:
    assert is_ref(ref) is ok


EVENTS = [
    ((1, wire.TEXT, b"hi", "a"), b'id: 1\ndata: {"ref": "a", "data": "hi"}\n\n'),
    ((2, wire.BINARY, b"\x00\xff", "b"),
     b'id: 2\nevent: binary\ndata: {"ref": "b", "data": "AP8="}\n\n'),
    ((3, wire.CLOSE, wire.close_payload(4000, "bye")[1], "a"),
     b'id: 3\nevent: close\ndata: {"ref": "a", "code": 4000, "reason": "bye"}\n\n'),
    ((4, wire.CLOSE, wire.close_payload(1001, "")[1], None),
     b'id: 4\nevent: end\ndata: {"code": 1001, "reason": ""}\n\n'),
    ((5, wire.TEXT, "\u2028".encode(), "a"), b'id: 5\ndata: {"ref": "a", "data": "\\u2028"}\n\n'),
]


@pytest.mark.parametrize("stored, expected", EVENTS)
def test_session_event_bytes(stored, expected) -> None:
    assert session_event_for(*stored).encode() == expected


def test_the_request_number_and_the_answer_on_the_stream() -> None:
    assert parse({"op": "close", "ref": "a"}).rid is None
    body = {**CREDS, "rid": MAX_RID, "ops": [{"op": "close", "ref": "a"}]}
    assert parse_session_request(body, 100, 10).rid == MAX_RID
    answer = {"ok": True, "results": [{"ref": "a", "ok": True, "ack": 3}]}
    # no id: the copy is never stored, never replayed, and moves no Last-Event-ID
    assert answer_event(7, answer).encode() == (
        b'event: answer\ndata: {"rid": 7, "ok": true, "results": [{"ref": "a", "ok": true, '
        b'"ack": 3}]}\n\n')
