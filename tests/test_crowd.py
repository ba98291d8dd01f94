"""More clients than stream slots: the ones beyond poll (answered at once with what waits,
and a ``retry:`` for the crowd), lose nothing, and share the slots with the holders
(app/altwebsocket/protocol/crowd.py, docs/deploy-shared-hosting.md "When the slots run out")."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

from altwebsocket.protocol import crowd
from altwebsocket.protocol import messages as wire
from altwebsocket.protocol.sse import SSEDecoder
from altwebsocket.storage.wake import WakeSocket, mark_polling
from altwebsocket.transports.http.stream import Streams, open_stream
from benchmarks.loadgen import crowd_emulated

from .support import (
    TIMEOUT,
    make_server,
    new,
    post,
    send_body,
    start_deployment,
    web_app,
)


def test_the_crowd_polls_less_often_as_it_grows() -> None:
    assert crowd.poll_delay(1, floor=1.0, rate=10.0, ceiling=15.0) == 1.0
    assert crowd.poll_delay(40, floor=1.0, rate=10.0, ceiling=15.0) == 4.0
    assert crowd.poll_delay(1000, floor=1.0, rate=10.0, ceiling=15.0) == 15.0
    assert crowd.poll_horizon(1.0) > 1.0
    assert crowd.gives_up(held_for=21, share_after=20, pollers=1)
    assert not crowd.gives_up(held_for=21, share_after=20, pollers=0)  # nobody waits
    assert not crowd.gives_up(held_for=19, share_after=20, pollers=5)  # not yet
    assert not crowd.gives_up(held_for=1e9, share_after=0, pollers=5)  # never


def poll(app, conn, last: int | None = None):
    """``GET B/`` of ``conn`` with ``Last-Event-ID``: the answer and its events."""
    headers = {"Last-Event-ID": str(last)} if last is not None else {}
    answer = app.get(f"/echo/?id={conn['id']}&token={conn['token']}", headers=headers)
    decoder = SSEDecoder()
    events = decoder.feed(answer.body)
    return answer, decoder, events


def test_a_stream_beyond_the_slots_is_a_poll_that_loses_nothing(data_dir) -> None:
    server = make_server(data_dir, max_rate=0, max_streams=1)
    app = web_app(server)
    holder = WakeSocket(server.wake_dir)  # the one slot, held by a stream of another process
    try:
        conn = new(app)
        post(app, "/echo/send", send_body(conn, 1, "one"))
        answer, decoder, events = poll(app, conn)
        assert answer.status_int == 200  # not 503: the slots are taken, the client polls
        assert answer.headers["Content-Type"].startswith("text/event-stream")
        assert decoder.retry == 1000  # come back in a second (a small crowd: crowd_poll)
        assert b": altws poll" in answer.body
        assert [wire.message_from_event(e) for e in events] == ["one"]
        post(app, "/echo/send", send_body(conn, 2, "two"))
        post(app, "/echo/send", send_body(conn, 3, "three"))
        _, _, events = poll(app, conn, last=int(events[-1].id))
        assert [wire.message_from_event(e) for e in events] == ["two", "three"]  # none twice
        _, _, events = poll(app, conn, last=int(events[-1].id))
        assert events == []  # nothing waits: an empty poll
        assert server.storage.events_after(conn["id"], 0) == []  # the seen ones are gone
        post(app, "/echo/close", {"id": conn["id"], "token": conn["token"], "code": 1000})
        _, _, events = poll(app, conn, last=3)
        assert [e.event for e in events] == ["close"]
    finally:
        holder.close()


def test_the_wait_grows_with_the_crowd_within_gone_timeout(data_dir) -> None:
    server = make_server(data_dir, max_rate=0, max_streams=0, crowd_rate=2.0, gone_timeout=40)
    app = web_app(server)
    conns = [new(app) for _ in range(6)]
    for conn in conns[1:]:
        mark_polling(server.wake_dir, conn["id"])  # five others poll already
    _, decoder, _ = poll(app, conns[0])
    assert decoder.retry == 3000  # six pollers, two polls a second in all
    many = make_server(data_dir, max_rate=0, max_streams=0, crowd_rate=0.1, gone_timeout=40)
    _, decoder, _ = poll(web_app(many), conns[0])
    assert decoder.retry == 10_000  # at most a quarter of gone_timeout: never "gone"


def test_max_streams_0_makes_every_client_poll(data_dir) -> None:
    server = make_server(data_dir, max_rate=0, max_streams=0)
    app = web_app(server)
    conn = new(app)
    answer, decoder, _ = poll(app, conn)
    assert b": altws poll" in answer.body and decoder.retry == 1000
    assert os.listdir(server.wake_dir) == [f"{conn['id']}.p"]  # no socket: no slot taken


def test_a_held_stream_gives_its_slot_up_when_others_poll(data_dir) -> None:
    server = make_server(data_dir, max_rate=0, share_after=0.3, poll_interval=0.1,
                         stream_lifetime=60, heartbeat=30)
    app = web_app(server)
    conn = new(app)
    streams = Streams()
    stream = open_stream(server, streams, "echo", conn["id"], conn["token"], 0)
    assert stream is not None and not stream.poll
    body = iter(stream)
    assert next(body).startswith(b"retry:")
    ended: list[bytes] = []
    started = time.monotonic()

    def read_rest() -> None:
        ended.extend(body)

    reader = threading.Thread(target=read_rest, daemon=True)
    reader.start()
    reader.join(1.0)
    assert reader.is_alive()  # held past share_after: nobody polls, it keeps its slot
    other = new(app)
    mark_polling(server.wake_dir, other["id"])
    reader.join(TIMEOUT)
    assert not reader.is_alive(), "the stream did not give its slot up"
    assert ended and ended[-1].startswith(b"retry: 1000") and b": altws share" in ended[-1]
    assert time.monotonic() - started >= 0.3
    assert streams.active == 0 and os.listdir(server.wake_dir) == [f"{other['id']}.p"]


@pytest.mark.parametrize("kind", ["wsgi", "cgi", "passenger"])
def test_twelve_clients_on_three_slots_all_get_every_message(kind, tmp_path) -> None:
    """The shared-host scenario: room for 3 streams, 12 chat clients behaving like
    EventSource; every client gets every message and is never told to wait long. Under
    Passenger the pool (8 processes) leaves room for the polls and POSTs beside the 3."""
    running = start_deployment(kind, str(tmp_path), pool=8 if kind == "passenger" else None,
                               max_streams=3, heartbeat=1, share_after=3, max_rate=0)
    results: list = []
    try:
        # in a thread of its own: the browser tests' Playwright keeps an event loop running
        # in this one
        def crowd() -> None:
            try:
                results.append(asyncio.run(crowd_emulated(
                    running.base("chat"), clients=12, messages=10, interval=0.5,
                    timeout=3 * TIMEOUT)))
            except BaseException as exc:  # raised below, in the test's thread
                results.append(exc)

        worker = threading.Thread(target=crowd)
        worker.start()
        worker.join(10 * TIMEOUT)
    finally:
        running.stop()
    assert results, "the crowd did not finish"
    if isinstance(results[0], BaseException):
        raise results[0]
    result = results[0]
    assert result["lost"] == 0, result
    assert result["answers"]["refused"] == 0 and result["answers"]["failed"] == 0, result
    assert result["answers"]["poll"] > 0, result  # the crowd did go beyond the slots
    assert result["max_told_ms"] <= 3000, result


def test_a_session_stream_beyond_the_slots_is_a_poll_too(data_dir) -> None:
    import json

    server = make_server(data_dir, max_rate=0, max_streams=0)
    app = web_app(server)
    session = app.post("/_session/new", "{}").json
    headers = {"X-AltWS-Session": session["session"], "X-AltWS-Secret": session["secret"]}
    app.post("/_session/send", json.dumps({**session, "ops": [
        {"op": "open", "ref": "e", "app": "echo"},
        {"op": "send", "ref": "e", "messages": [{"seq": 1, "data": "hi"}]}]}))
    answer = app.get("/_session/", headers=headers)
    decoder = SSEDecoder()
    events = decoder.feed(answer.body)
    assert decoder.retry == 1000 and b": altws poll" in answer.body
    assert [json.loads(e.data) for e in events if e.id] == [{"ref": "e", "data": "hi"}]
    again = app.get("/_session/", headers={**headers, "Last-Event-ID": events[-1].id})
    assert [e for e in SSEDecoder().feed(again.body) if e.id] == []
