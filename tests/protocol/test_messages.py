"""The wire format of requests and events: tables of input → result or error."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from altwebsocket.exceptions import MessageTooBig, ProtocolError
from altwebsocket.protocol import messages as wire
from altwebsocket.protocol.sse import SSEDecoder

LIMIT = 16


@pytest.mark.parametrize(
    "body, error",
    [
        (b"{", ProtocolError),
        (b"[]", ProtocolError),
        (b"\xff\xfe", ProtocolError),
        (b"1" * (LIMIT + 1), MessageTooBig),
        (b"[" * 5 + b"]" * 5, ProtocolError),
    ],
)
def test_parse_json_body_errors(body: bytes, error) -> None:
    with pytest.raises(error):
        wire.parse_json_body(body, LIMIT)


def test_parse_json_body_empty_is_empty_object() -> None:
    assert wire.parse_json_body(b"  ", LIMIT) == {}


def test_deeply_nested_json_is_a_400_not_a_crash() -> None:
    with pytest.raises(ProtocolError):
        wire.parse_json_body(b"[" * 100000 + b"]" * 100000, 10**6)


OK_SEND = [
    ({"id": "a", "token": "t", "seq": 1, "data": "x"}, [(1, "x")]),
    ({"id": "a", "token": "t", "seq": 2, "binary": "AP8="}, [(2, b"\x00\xff")]),
    ({"id": "a", "token": "t", "seq": 1, "data": "\u00e9" * 8}, [(1, "\u00e9" * 8)]),
    (
        {"id": "a", "token": "t", "messages": [{"seq": 4, "data": ""}, {"seq": 5, "binary": ""}]},
        [(4, ""), (5, b"")],
    ),
]


@pytest.mark.parametrize("body, expected", OK_SEND)
def test_parse_send(body, expected) -> None:
    request = wire.parse_send(body, LIMIT)
    assert [(m.seq, m.data) for m in request.messages] == expected
    assert (request.id, request.token) == ("a", "t")


BAD_SEND = [
    ({"token": "t", "seq": 1, "data": "x"}, ProtocolError),
    ({"id": 5, "token": "t", "seq": 1, "data": "x"}, ProtocolError),
    ({"id": "a", "token": "t", "seq": 0, "data": "x"}, ProtocolError),
    ({"id": "a", "token": "t", "seq": True, "data": "x"}, ProtocolError),
    ({"id": "a", "token": "t", "seq": 2**53, "data": "x"}, ProtocolError),
    ({"id": "a", "token": "t", "seq": 1.5, "data": "x"}, ProtocolError),
    ({"id": "a", "token": "t", "seq": 1}, ProtocolError),
    ({"id": "a", "token": "t", "seq": 1, "data": "x", "binary": ""}, ProtocolError),
    ({"id": "a", "token": "t", "seq": 1, "data": 3}, ProtocolError),
    ({"id": "a", "token": "t", "seq": 1, "binary": "!!!"}, ProtocolError),
    ({"id": "a", "token": "t", "seq": 1, "binary": "AP8"}, ProtocolError),
    ({"id": "a", "token": "t", "seq": 1, "data": "\ud800"}, ProtocolError),
    ({"id": "a", "token": "t", "seq": 1, "data": "x" * (LIMIT + 1)}, MessageTooBig),
    ({"id": "a", "token": "t", "seq": 1, "data": "\u00e9" * 9}, MessageTooBig),
    ({"id": "a", "token": "t", "seq": 1,
      "binary": base64.b64encode(b"x" * (LIMIT + 1)).decode()}, MessageTooBig),
    ({"id": "a", "token": "t", "messages": []}, ProtocolError),
    ({"id": "a", "token": "t", "messages": [{"seq": 1, "data": "a"}, {"seq": 3, "data": "b"}]},
     ProtocolError),
]


@pytest.mark.parametrize("body, error", BAD_SEND)
def test_parse_send_errors(body, error) -> None:
    with pytest.raises(error):
        wire.parse_send(body, LIMIT)


@pytest.mark.parametrize(
    "body, expected",
    [
        ({"id": "a", "token": "t"}, (1005, "")),
        ({"id": "a", "token": "t", "code": 1000}, (1000, "")),
        ({"id": "a", "token": "t", "code": 4000, "reason": "bye"}, (4000, "bye")),
        ({"id": "a", "token": "t", "code": 3000, "reason": "\u00e9" * 61}, (3000, "\u00e9" * 61)),
    ],
)
def test_parse_close(body, expected) -> None:
    request = wire.parse_close(body)
    assert (request.code, request.reason) == expected


@pytest.mark.parametrize(
    "body",
    [
        {"id": "a", "token": "t", "code": 1001},
        {"id": "a", "token": "t", "code": 1006},
        {"id": "a", "token": "t", "code": 5000},
        {"id": "a", "token": "t", "code": "1000"},
        {"id": "a", "token": "t", "code": 1000, "reason": "x" * 124},
        {"id": "a", "token": "t", "reason": "needs a code"},
    ],
)
def test_parse_close_errors(body) -> None:
    with pytest.raises(ProtocolError):
        wire.parse_close(body)


@pytest.mark.parametrize(
    "body, expected",
    [({}, ()), ({"protocols": ["a", "b.c"]}, ("a", "b.c")), ({"protocols": "x"}, ("x",))],
)
def test_parse_new(body, expected) -> None:
    assert wire.parse_new(body).protocols == expected


@pytest.mark.parametrize(
    "body", [{"protocols": ["a b"]}, {"protocols": ["a", "a"]}, {"protocols": [""]},
             {"protocols": 5}, {"protocols": ["é"]}]
)
def test_parse_new_errors(body) -> None:
    with pytest.raises(ProtocolError):
        wire.parse_new(body)


@pytest.mark.parametrize("value, expected", [(None, 0), ("", 0), ("0", 0), (" 42 ", 42)])
def test_last_event_id(value, expected) -> None:
    assert wire.parse_last_event_id(value) == expected


@pytest.mark.parametrize("value", ["-1", "abc", "1.5", "\u0661", "9" * 17])
def test_last_event_id_garbage_is_a_400(value) -> None:
    with pytest.raises(ProtocolError):
        wire.parse_last_event_id(value)


EVENT_TABLE = [
    ((1, wire.TEXT, b"hi"), b'id: 1\ndata: "hi"\n\n'),
    ((2, wire.TEXT, b"a\r\nb"), b'id: 2\ndata: "a\\r\\nb"\n\n'),
    ((3, wire.TEXT, b"\x00"), b'id: 3\ndata: "\\u0000"\n\n'),
    ((4, wire.BINARY, b"\x00\xff"), b'id: 4\nevent: binary\ndata: "AP8="\n\n'),
    ((5, wire.CLOSE, b'{"code": 1000, "reason": ""}'),
     b'id: 5\nevent: close\ndata: {"code": 1000, "reason": ""}\n\n'),
    # characters some SSE readers split lines on are escaped (JSON allows them raw)
    ((6, wire.TEXT, "a\u2028b\u2029c\u0085d\u00e9".encode()),
     'id: 6\ndata: "a\\u2028b\\u2029c\\u0085d\u00e9"\n\n'.encode()),
    ((7, wire.CLOSE, wire.close_payload(4000, "x\u2028y")[1]),
     b'id: 7\nevent: close\ndata: {"code": 4000, "reason": "x\\u2028y"}\n\n'),
]


@pytest.mark.parametrize("text", ["a\u2028b", "\u2029", "x\u0085y", "\u2028\u2029\u0085"])
def test_line_like_characters_survive_a_splitlines_reader(text) -> None:
    """Python's str.splitlines and httpx's iter_lines split on U+2028/2029/0085: a reader
    of that kind still gets the message whole."""
    raw = wire.event_for(1, *wire.payload_for(text)).encode().decode("utf-8")
    data = [line[len("data: "):] for line in raw.splitlines() if line.startswith("data: ")]
    assert len(data) == 1 and json.loads(data[0]) == text


@pytest.mark.parametrize("stored, expected", EVENT_TABLE)
def test_event_bytes(stored, expected) -> None:
    assert wire.event_for(*stored).encode() == expected


messages = st.text() | st.binary()


@given(st.lists(messages, max_size=6))
def test_messages_survive_the_event_stream_exactly(sent) -> None:
    raw = b"".join(
        wire.event_for(i + 1, *wire.payload_for(message)).encode()
        for i, message in enumerate(sent)
        if not (isinstance(message, str) and any(0xD800 <= ord(c) <= 0xDFFF for c in message))
    )
    expected = [m for m in sent
                if not (isinstance(m, str) and any(0xD800 <= ord(c) <= 0xDFFF for c in m))]
    got = [wire.message_from_event(event) for event in SSEDecoder().feed(raw)]
    assert got == expected


def test_close_round_trip() -> None:
    event = wire.event_for(9, *wire.close_payload(4001, "r\u00e9ason"))
    (decoded,) = SSEDecoder().feed(event.encode())
    assert wire.message_from_event(decoded) == (4001, "r\u00e9ason")
