"""Which wake socket waits for a connection (its row's ``waker``), on every engine: the
heartbeat of a process's streams (``touch_streams``, written from a list taken before its
transaction) records that they live, and never names again a stream that was let go of
or replaced meanwhile — the connection's hints would go to a closed socket."""

from __future__ import annotations

from altwebsocket.storage import AltWebSocketStorage

from .test_log import Clock, _open, _storage


def _row(storage: AltWebSocketStorage, conn_id: str) -> tuple[str | None, float, int]:
    record = storage.connection(conn_id)
    assert record is not None
    return record.waker, record.last_seen, record.sent_event


def test_a_heartbeat_records_a_live_stream_and_brings_back_no_other(database_url) -> None:
    storage = _storage(database_url, Clock())
    live, released, replaced = (_open(storage, "echo") for _ in range(3))
    with storage.transaction() as tx:
        for conn_id in (live, released, replaced):
            tx.set_waker(conn_id, f"old-{conn_id}", 1)
    # the process's heartbeat takes its list of streams; meanwhile one stream ends and
    # another connection's client resumes on a new stream (elsewhere)
    beat = [(conn_id, f"old-{conn_id}", 5) for conn_id in (live, released, replaced)]
    with storage.transaction() as tx:
        tx.set_waker(released, None, 3)
        tx.set_waker(replaced, "new", 4)
    before = {conn_id: _row(storage, conn_id) for conn_id in (live, released, replaced)}
    with storage.transaction() as tx:
        tx.touch_streams(beat)
    waker, seen, sent = _row(storage, live)
    assert waker == f"old-{live}" and seen > before[live][1] and sent == 5
    assert _row(storage, released) == before[released] == (None, before[released][1], 3)
    assert _row(storage, replaced) == before[replaced] == ("new", before[replaced][1], 4)
    storage.close()
