"""Events handed to a stream of the same process (issue 17): an operation that queued events
for a stream this process holds gives them to it after its commit and returns once they
are written out; the stream does not read them back. The storage stays the truth: a gap
(events committed elsewhere) or a stream that is not reading falls back to reading it, and
nothing is lost or repeated."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from altwebsocket import server as server_module
from altwebsocket.protocol.messages import InboundMessage, message_from_event
from altwebsocket.protocol.sse import SSEDecoder
from altwebsocket.transports.http import stream as stream_module
from altwebsocket.transports.http.stream import Streams, open_stream

from ..support import TIMEOUT, make_server, new, web_app


class Reader:
    """Iterates an SSE body in a thread; what it wrote out lands in :attr:`chunks`."""

    def __init__(self, body: Iterator[bytes]) -> None:
        self.body = body
        self.chunks: queue.Queue[bytes] = queue.Queue()
        self.go = threading.Event()
        self.go.set()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for chunk in self.body:  # (like a server: the next chunk only once this one is out)
            self.chunks.put(chunk)
            self.go.wait(TIMEOUT)

    def data(self, timeout: float = TIMEOUT, count: int = 1) -> list[Any]:
        """The next ``count`` messages."""
        decoder, out = SSEDecoder(), []
        while len(out) < count:
            out += [message_from_event(e) for e in decoder.feed(self.chunks.get(timeout=timeout))
                    if e.id]
        return out

    def written_now(self) -> list[Any]:
        """The messages already written, without waiting."""
        decoder, out = SSEDecoder(), []
        while True:
            try:
                chunk = self.chunks.get_nowait()
            except queue.Empty:
                return out
            out += [message_from_event(e) for e in decoder.feed(chunk) if e.id]


def count_reads(server: Any) -> list[int]:
    """Count the storage reads of events from now on (in ``[0]``)."""
    reads = [0]
    events_after = server.storage.events_after

    def counting(conn_id: str, after: int, limit: int = 200) -> Any:
        reads[0] += 1
        return events_after(conn_id, after, limit)

    server.storage.events_after = counting
    return reads


def settled(reader: Reader, reads: list[int]) -> None:
    """Wait until the stream wrote its first chunk and read the storage once: it waits
    for events now. Then count its reads from zero."""
    assert reader.chunks.get(timeout=TIMEOUT).startswith(b"retry:")
    deadline = time.monotonic() + TIMEOUT
    while reads[0] < 1 and time.monotonic() < deadline:
        time.sleep(0.001)
    reads[0] = 0


def text(seq: int, data: str) -> list[InboundMessage]:
    return [InboundMessage(seq, data)]


@pytest.fixture
def held(data_dir: str) -> Iterator[tuple[Any, dict[str, Any], Reader, list[int]]]:
    """A server, an echo connection, its stream iterated in this process, and a count of
    the stream's reads of the storage after it started."""
    server = make_server(data_dir, max_rate=0, heartbeat=30, poll_interval=30)
    conn = new(web_app(server))
    streams = Streams()
    stream = open_stream(server, streams, "echo", conn["id"], conn["token"], 0)
    assert stream is not None
    reads = count_reads(server)
    reader = Reader(iter(stream))
    settled(reader, reads)
    yield server, conn, reader, reads
    reader.go.set()
    streams.shutdown(TIMEOUT)
    reader.thread.join(TIMEOUT)
    assert streams.active == 0 and not reader.thread.is_alive()


def test_the_echo_is_written_before_the_operation_returns(held, monkeypatch) -> None:
    server, conn, reader, reads = held
    # (an operation waits 2 ms at most for a stream that is slow to write; a test machine
    # may be busy: wait as long as it takes)
    monkeypatch.setattr(server_module, "HANDOFF_WAIT", TIMEOUT)
    for seq in range(1, 21):
        reads_before = reads[0]
        assert server.receive("echo", conn["id"], text(seq, f"m{seq}")) == seq
        # out already: the POST's answer can only follow its echo
        assert reader.written_now() == [f"m{seq}"]
        assert reads[0] == reads_before  # handed over, not read back


def test_events_from_elsewhere_in_between_are_read_from_the_storage(held, data_dir) -> None:
    server, conn, reader, reads = held
    other = make_server(data_dir, max_rate=0)  # another process on the same database
    server.receive("echo", conn["id"], text(1, "a"))
    assert reader.data() == ["a"]
    reader.go.clear()  # the stream stops reading for a moment
    other.receive("echo", conn["id"], text(2, "b"))  # a hint, not a handoff
    server.receive("echo", conn["id"], text(3, "c"))  # handed, after a gap
    reader.go.set()
    got = reader.data(count=2)
    assert got == ["b", "c"]
    assert reads[0] >= 1  # the gap was read from the storage
    server.receive("echo", conn["id"], text(4, "d"))
    assert reader.data() == ["d"]
    assert reader.written_now() == []  # nothing twice


def test_a_stream_that_does_not_read_gets_everything_later_once(held, monkeypatch) -> None:
    server, conn, reader, _ = held
    monkeypatch.setattr(stream_module, "HANDED_MAX", 3)
    reader.go.clear()
    server.receive("echo", conn["id"], text(1, "m1"))
    reader.data()  # written: the reader is now stuck after it
    for seq in range(2, 31):  # the operations do not wait for a stuck stream for long
        server.receive("echo", conn["id"], text(seq, f"m{seq}"))
    reader.go.set()
    assert reader.data(count=29) == [f"m{seq}" for seq in range(2, 31)]
    assert reader.written_now() == []


def test_a_broadcast_is_handed_to_every_stream_held_here(data_dir, monkeypatch) -> None:
    server = make_server(data_dir, max_rate=0, heartbeat=30, poll_interval=30)
    app = web_app(server)
    members = [new(app, "chat") for _ in range(3)]
    streams, readers = Streams(), []
    for member in members:
        stream = open_stream(server, streams, "chat", member["id"], member["token"], 0)
        assert stream is not None
        readers.append(Reader(iter(stream)))
        readers[-1].chunks.get(timeout=TIMEOUT)
    monkeypatch.setattr(server_module, "HANDOFF_WAIT", TIMEOUT)  # (see the first test)
    assert server.push("chat", "news") == 3
    assert [reader.written_now() for reader in readers] == [["news"]] * 3
    streams.shutdown(TIMEOUT)
    assert streams.active == 0


def test_a_session_stream_gets_the_echo_then_a_copy_of_the_answer(data_dir) -> None:
    import json

    from altwebsocket.transports.http.stream import open_session_stream

    server = make_server(data_dir, max_rate=0, heartbeat=30, poll_interval=30)
    app = web_app(server)
    session = app.post("/_session/new", "{}").json
    streams = Streams()
    stream = open_session_stream(server, streams, session["session"], session["secret"], 0)
    assert stream is not None
    stream.start()  # as the WSGI transport does before it answers: the stream is held now
    reads = count_reads(server)
    reader = Reader(iter(stream))
    settled(reader, reads)

    def send(body: dict[str, Any]) -> Any:
        return app.post("/_session/send", json.dumps({**session, **body})).json

    opened = send({"rid": 1, "ops": [{"op": "open", "ref": "e", "app": "echo"}]})
    answered = send({"rid": 2, "ops": [{"op": "send", "ref": "e",
                                        "messages": [{"seq": 1, "data": "hi"}]}]})
    plain = send({"ops": [{"op": "send", "ref": "e", "messages": [{"seq": 2, "data": "ho"}]}]})
    events = []
    decoder = SSEDecoder()
    while len(events) < 4:
        events += decoder.feed(reader.chunks.get(timeout=TIMEOUT))
    seen = [(e.event or "message", json.loads(e.data)) for e in events]
    # Usually exactly answer 1, hi, answer 2, ho. A stream that had to read the storage
    # (a hint, a poll) writes what it read before what was said meanwhile: an answer may
    # come later than that, never before the events of its own operations.
    assert [item for item in seen if item[0] == "message"] == [
        ("message", {"ref": "e", "data": "hi"}),
        ("message", {"ref": "e", "data": "ho"}),  # no rid: no copy
    ]
    assert sorted((item for item in seen if item[0] == "answer"),
                  key=lambda item: item[1]["rid"]) == [
        ("answer", {"rid": 1, **opened}),
        ("answer", {"rid": 2, **answered}),
    ]
    assert seen.index(("answer", {"rid": 2, **answered})) > \
        seen.index(("message", {"ref": "e", "data": "hi"}))  # after the echo it answers
    assert plain["results"][0]["ack"] == 2
    streams.shutdown(TIMEOUT)
    assert streams.active == 0


class Written:
    """A WSGI ``write`` callable that records each chunk and the thread that wrote it."""

    def __init__(self) -> None:
        self.chunks: list[tuple[int, bytes]] = []

    def __call__(self, chunk: bytes) -> None:
        self.chunks.append((threading.get_ident(), chunk))

    def messages(self) -> list[tuple[int, Any]]:
        return [(thread, message_from_event(e)) for thread, chunk in self.chunks
                for e in SSEDecoder().feed(chunk) if e.id]


def direct_streams(server: Any, members: list[dict[str, Any]]
                   ) -> tuple[Streams, list[Written], list[threading.Thread], list[Any]]:
    """Chat streams of ``members`` that write directly (as under waitress), each iterated
    in a thread; returns once each wrote its first chunk and read the storage once, and
    counts its reads (``count_reads``) from before they opened."""
    streams, writes, threads, held = Streams(), [], [], []
    reads = count_reads(server)
    for member in members:
        stream = open_stream(server, streams, "chat", member["id"], member["token"], 0)
        assert stream is not None
        stream.writer = written = Written()
        held.append(stream)
        writes.append(written)
        body = iter(stream)
        thread = threading.Thread(target=lambda b=body: [*b], daemon=True)  # yields nothing
        thread.start()
        threads.append(thread)
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and (
            reads[0] < len(members) or not all(w.chunks for w in writes)
            or any(stream._writing.locked() for stream in held)):
        time.sleep(0.001)
    return streams, writes, threads, held


def test_a_request_writes_its_own_clients_events_itself(data_dir, monkeypatch) -> None:
    """With a ``write`` callable (``direct_writes``: waitress), the request of a client
    writes its events onto that client's stream in its own thread; the other clients'
    streams get theirs from the process's one fan-out thread (not the request's: a client
    that does not read cannot hold up anyone else's request; not each stream's own: a
    broadcast to a thousand streams does not wake a thousand threads)."""
    monkeypatch.setattr(server_module, "HANDOFF_WAIT", TIMEOUT)
    server = make_server(data_dir, max_rate=0, heartbeat=30, poll_interval=30)
    app = web_app(server)
    talker, listener = new(app, "chat"), new(app, "chat")
    streams, writes, threads, _ = direct_streams(server, [talker, listener])
    here = threading.get_ident()
    for seq in range(1, 4):
        server.receive("chat", talker["id"], text(seq, f"m{seq}"))
    mine, theirs = writes[0].messages(), writes[1].messages()
    assert mine == [(here, "m1"), (here, "m2"), (here, "m3")]  # written by the request
    assert [m for _, m in theirs] == ["m1", "m2", "m3"]
    assert streams.fanout_thread is not None
    assert {thread for thread, _ in theirs} == {streams.fanout_thread.ident}
    streams.shutdown(TIMEOUT)
    for thread in threads:
        thread.join(TIMEOUT)
    assert streams.active == 0


def test_a_broadcast_to_many_direct_streams_is_written_by_one_thread(data_dir,
                                                                     monkeypatch) -> None:
    """Fifty streams that write directly (waitress): one broadcast reaches each once, all
    written by the fan-out thread, none read back from the storage."""
    monkeypatch.setattr(server_module, "HANDOFF_WAIT", TIMEOUT)
    server = make_server(data_dir, max_rate=0, heartbeat=30, poll_interval=30)
    app = web_app(server)
    members = [new(app, "chat") for _ in range(50)]
    streams, writes, threads, _ = direct_streams(server, members)
    reads = count_reads(server)
    assert server.push("chat", "news") == 50
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and not all(w.messages() for w in writes):
        time.sleep(0.001)
    assert [[m for _, m in w.messages()] for w in writes] == [["news"]] * 50
    assert streams.fanout_thread is not None
    assert {thread for w in writes for thread, _ in w.messages()} == {
        streams.fanout_thread.ident}
    assert reads[0] == 0  # handed, not read back
    streams.shutdown(TIMEOUT)
    for thread in threads:
        thread.join(TIMEOUT)
    assert streams.active == 0
