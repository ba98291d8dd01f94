"""One reader per process for what hints miss (``Streams._poll``): the streams of a process
do not poll the storage each; one thread reads where their connections stand, hints those
left behind, and records for all of them at once that they live."""

from __future__ import annotations

import time

from altwebsocket.transports.http.stream import Streams, open_stream

from ..support import TIMEOUT, make_server, new, web_app
from .test_handoff import Reader, count_reads, settled, text


def held_streams(data_dir, count, **settings):
    server = make_server(data_dir, max_rate=0, **settings)
    app = web_app(server)
    streams, readers, conns = Streams(), [], []
    reads = count_reads(server)
    for _ in range(count):
        conn = new(app)
        stream = open_stream(server, streams, "echo", conn["id"], conn["token"], 0)
        assert stream is not None
        reader = Reader(iter(stream))
        settled(reader, reads)
        readers.append(reader)
        conns.append(conn)
    return server, streams, readers, conns, reads


def test_a_dropped_hint_is_found_by_the_process_poller(data_dir, monkeypatch) -> None:
    server, streams, [reader], [conn], reads = held_streams(
        data_dir, 1, poll_interval=0.2, heartbeat=30)
    time.sleep(0.6)
    assert reads[0] == 0  # idle: the stream itself never reads the storage
    elsewhere = make_server(data_dir, max_rate=0)  # another process, whose hint is lost
    monkeypatch.setattr("altwebsocket.server.send_hints", lambda hints: None)
    failed = [0]
    last_events = server.storage.last_events

    def failing_once(ids):  # the poller's round fails once (the storage busy): no matter
        if not failed[0]:
            failed[0] = 1
            raise OSError("busy")
        return last_events(ids)

    monkeypatch.setattr(server.storage, "last_events", failing_once)
    elsewhere.receive("echo", conn["id"], text(1, "found"))
    assert reader.data() == ["found"]  # no hint came: the poller's (after a failed round)
    assert failed[0] == 1 and reads[0] == 1  # one read, by the stream the poller hinted
    streams.shutdown(TIMEOUT)


def test_one_transaction_a_heartbeat_records_that_every_stream_lives(data_dir,
                                                                   monkeypatch) -> None:
    from altwebsocket.storage.api import Transaction

    touched: list[list[str]] = []
    touch = Transaction.touch_streams

    def recording(self, rows):  # type: ignore[no-untyped-def]
        ids = sorted(conn_id for conn_id, _, _ in rows)
        if mine.intersection(ids):  # (not a stream of another test still in this process)
            touched.append(ids)
        return touch(self, rows)

    mine: set[str] = set()

    monkeypatch.setattr(Transaction, "touch_streams", recording)
    server, streams, readers, conns, _ = held_streams(
        data_dir, 5, poll_interval=0.1, heartbeat=0.3)
    before = {conn["id"]: server.storage.connection(conn["id"]).last_seen for conn in conns}
    touched.clear()  # (a beat while they opened holds some of them only)
    mine.update(before)
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and not touched:
        time.sleep(0.05)
    assert touched and touched[0] == sorted(before)  # all five, one transaction
    for conn_id, seen in before.items():
        assert server.storage.connection(conn_id).last_seen > seen
    for reader in readers:  # each stream still beats on its own wire (a comment)
        assert reader.chunks.get(timeout=TIMEOUT).startswith(b":")
    streams.shutdown(TIMEOUT)
