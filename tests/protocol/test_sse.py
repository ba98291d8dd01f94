"""SSE encoding and decoding: byte tables and a round-trip property."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from altwebsocket.protocol.sse import ServerSentEvent, SSEDecoder, encode_comment, encode_retry

ENCODE_TABLE = [
    (ServerSentEvent("hi"), b"data: hi\n\n"),
    (ServerSentEvent("hi", id="7"), b"id: 7\ndata: hi\n\n"),
    (ServerSentEvent("x", event="close", id="3"), b"id: 3\nevent: close\ndata: x\n\n"),
    (ServerSentEvent("a\nb"), b"data: a\ndata: b\n\n"),
    (ServerSentEvent("a\r\nb\rc"), b"data: a\ndata: b\ndata: c\n\n"),
    (ServerSentEvent(""), b"data: \n\n"),
    (ServerSentEvent(" lead"), b"data:  lead\n\n"),
    (ServerSentEvent("\u00e9\U0001f600"), "data: \u00e9\U0001f600\n\n".encode()),
]


@pytest.mark.parametrize("event, expected", ENCODE_TABLE)
def test_encode(event: ServerSentEvent, expected: bytes) -> None:
    assert event.encode() == expected


@pytest.mark.parametrize("bad", [{"id": "1\n2"}, {"id": "a\0"}, {"event": "x\ry"}])
def test_encode_refuses_fields_that_would_break_framing(bad) -> None:
    with pytest.raises(ValueError):
        ServerSentEvent("x", **bad).encode()


def test_comment_and_retry() -> None:
    assert encode_comment() == b":\n\n"
    assert encode_comment("altws") == b": altws\n\n"
    assert encode_retry(1500) == b"retry: 1500\n\n"


DECODE_TABLE = [
    (b"data: hi\n\n", [ServerSentEvent("hi")]),
    (b"data:hi\r\n\r\n", [ServerSentEvent("hi")]),
    (b"data: a\rdata: b\r\r", [ServerSentEvent("a\nb")]),
    (b"id: 5\nevent: binary\ndata: \"AA==\"\n\n", [ServerSentEvent('"AA=="', "binary", "5")]),
    (b": comment\n\ndata: x\n\n", [ServerSentEvent("x")]),
    (b"event: only\n\n", []),  # no data: nothing dispatched
    (b"data: x\nunknown: y\n\n", [ServerSentEvent("x")]),
    (b"\xef\xbb\xbfdata: bom\n\n", [ServerSentEvent("bom")]),
    (b"data: incomplete\n", []),
]


@pytest.mark.parametrize("raw, expected", DECODE_TABLE)
def test_decode(raw: bytes, expected) -> None:
    assert SSEDecoder().feed(raw) == expected


def test_decoder_keeps_last_event_id_retry_and_counts_comments() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"retry: 2500\n\n: hb\n\nid: 9\ndata: x\n\n:\n\n")
    assert decoder.retry == 2500
    assert decoder.last_event_id == "9"
    assert decoder.comments == 2


def test_decoder_handles_crlf_split_across_chunks() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n\r\n") == [ServerSentEvent("a")]


events = st.builds(
    ServerSentEvent,
    data=st.text(),
    event=st.none() | st.text(
        alphabet=st.characters(blacklist_characters="\r\n:", blacklist_categories=("Cs",)),
        min_size=1).filter(lambda s: s.strip() == s),
    id=st.none() | st.integers(min_value=0, max_value=2**53).map(str),
)


def _normalized(event: ServerSentEvent) -> ServerSentEvent:
    # SSE has no way to carry a lone "\r": every line break arrives as "\n".
    data = event.data.replace("\r\n", "\n").replace("\r", "\n")
    return ServerSentEvent(data, event.event, event.id)


@given(st.lists(events, max_size=5), st.integers(min_value=1, max_value=7))
def test_round_trip_in_any_chunking(sent, chunk_size) -> None:
    wire = b"".join(event.encode() for event in sent)
    decoder = SSEDecoder()
    received = []
    for start in range(0, len(wire), chunk_size):
        received.extend(decoder.feed(wire[start : start + chunk_size]))
    assert received == [_normalized(event) for event in sent]
