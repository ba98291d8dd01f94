"""The contract against real servers on 127.0.0.1 — ``altws serve`` (persistent WSGI) and
``altws cgi-server`` (Apache running the CGI made from deploy/) — read by an independent SSE
client (httpx + a line parser): streaming, resume, big messages, real sockets, concurrent
senders. Every scenario runs on both deployments (the ``deployment`` fixture,
tests/conftest.py)."""

from __future__ import annotations

import base64
import threading
import time

import httpx
import pytest

from altwebsocket.protocol import messages as wire

from .support import (
    TIMEOUT,
    Stream,
    new_connection,
    open_stream,
    resume_after_a_cut,
    send,
    send_body,
    start_deployment,
    stream_url,
)


def read_until(stream: Stream, message: str) -> bool:
    """Read chat events until ``message``, past at most the 10 history messages that earlier
    tests on the same deployment left."""
    for _ in range(11):
        if wire.message_from_event(stream.next()) == message:
            return True
    return False


def test_index_and_info(deployment) -> None:
    index = httpx.get(deployment.url + "/", timeout=TIMEOUT)
    assert index.status_code == 200 and "chat" in index.text
    info = httpx.get(deployment.base("echo") + "/info", timeout=TIMEOUT).json()
    assert info["version"] == 1


def test_events_arrive_one_by_one_while_the_stream_is_open(deployment) -> None:
    base = deployment.base("echo")
    conn_id, token, stream = open_stream(base)
    assert stream.status == 200
    for seq in (1, 2, 3):
        assert send(base, conn_id, token, seq, f"m{seq}").json()["ack"] == seq
        event = stream.next()  # each arrives before the next is even sent
        assert (event.id, wire.message_from_event(event)) == (str(seq), f"m{seq}")
    assert not stream.ended.is_set()
    stream.close()


def test_one_mebibyte_text_and_binary_round_trip(deployment) -> None:
    base = deployment.base("echo")
    conn_id, token, stream = open_stream(base)
    text = ("\u00e9\U0001f600a\r\n\x00" * 200000)[: 1024 * 1024 // 4]
    big = b"\x00\xff" * (512 * 1024)
    assert send(base, conn_id, token, 1, text).status_code == 200
    assert send(base, conn_id, token, 2, binary=base64.b64encode(big).decode()).status_code == 200
    first, second = stream.take(2)
    assert wire.message_from_event(first) == text
    assert wire.message_from_event(second) == big
    stream.close()


def test_stream_cut_and_resumed_loses_and_repeats_nothing(deployment) -> None:
    base = deployment.base("echo")
    # the client goes away mid-conversation
    conn_id, token, resumed = resume_after_a_cut(base, lambda conn_id, stream: stream.close(),
                                                 during=3)
    send(base, conn_id, token, 7, "m7")
    assert wire.message_from_event(resumed.next()) == "m7"
    resumed.close()


def test_twenty_concurrent_senders_lose_nothing_and_get_no_5xx(deployment) -> None:
    base = deployment.base("echo")
    clients = [open_stream(base) for _ in range(20)]
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def sender(conn_id: str, token: str) -> None:
        with httpx.Client(timeout=3 * TIMEOUT) as client:
            for seq in range(1, 6):
                body = send_body((conn_id, token), seq, f"{conn_id}:{seq}")
                status = client.post(base + "/send", json=body).status_code
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=sender, args=client[:2]) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(6 * TIMEOUT)
    assert statuses == {200: 100}, "".join(deployment.proc.output[-40:])
    for conn_id, _, stream in clients:
        got = [wire.message_from_event(e) for e in stream.take(5, timeout=3 * TIMEOUT)]
        assert got == [f"{conn_id}:{seq}" for seq in range(1, 6)]
        stream.close()


@pytest.mark.parametrize("kind", ["wsgi", "cgi", "passenger"])
def test_stream_ends_after_its_lifetime_and_resumes(kind, tmp_path) -> None:
    running = start_deployment(kind, str(tmp_path), stream_lifetime=1, heartbeat=0.3)
    try:
        base = running.base("echo")
        conn_id, token = new_connection(base)
        url = stream_url(base, conn_id, token)
        stream = Stream(url)
        send(base, conn_id, token, 1, "before")
        assert wire.message_from_event(stream.next()) == "before"
        assert stream.ended.wait(TIMEOUT)  # the server rotated it
        assert stream.decoder.comments >= 2  # the opening comment and heartbeats
        send(base, conn_id, token, 2, "between")
        again = Stream(url, last_event_id=1)
        assert wire.message_from_event(again.next()) == "between"
        again.close()
    finally:
        running.stop()


def test_chat_between_two_clients(deployment) -> None:
    base = deployment.base("chat")
    a_id, a_token, a = open_stream(base)
    b = open_stream(base)[2]
    send(base, a_id, a_token, 1, "<script>alert(1)</script>")
    assert read_until(a, "<script>alert(1)</script>")
    assert read_until(b, "<script>alert(1)</script>")
    a.close()
    b.close()


def test_close_ends_the_stream_and_then_204(deployment) -> None:
    base = deployment.base("echo")
    conn_id, token, stream = open_stream(base)
    httpx.post(base + "/close", json={"id": conn_id, "token": token, "code": 4001,
                                      "reason": "done"}, timeout=TIMEOUT)
    event = stream.next()
    assert event.event == "close" and wire.message_from_event(event) == (4001, "done")
    assert stream.ended.wait(TIMEOUT)
    after = httpx.get(stream_url(base, conn_id, token), headers={"Last-Event-ID": event.id},
                      timeout=TIMEOUT)
    assert after.status_code == 204


def test_many_open_streams_at_once(deployment) -> None:
    base = deployment.base("chat")
    clients = [open_stream(base) for _ in range(40)]
    streams = [stream for _, _, stream in clients]
    started = time.monotonic()
    send(base, clients[0][0], clients[0][1], 1, "all")
    for stream in streams:
        assert read_until(stream, "all")
    assert time.monotonic() - started < TIMEOUT
    for stream in streams:
        stream.close()
