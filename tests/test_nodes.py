"""Several nodes on one database, no sticky sessions (docs/scaling.md): two ``altws serve``
processes (each with its daemon) on the same PostgreSQL, MariaDB or SQLite storage."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.sync.client import connect as ws_connect

from altwebsocket.protocol import messages as wire

from .support import (
    HTTP,
    TIMEOUT,
    Deployment,
    Stream,
    new_connection,
    send,
    start_deployment,
    stream_url,
)


def _folder(tmp_path: Any, name: str) -> str:
    """A data folder of the test's own (pytest removes old ones), not one left in /tmp."""
    folder = tmp_path / name
    folder.mkdir()
    return str(folder)


@pytest.fixture
def nodes(database_url, tmp_path) -> Iterator[tuple[Deployment, Deployment]]:
    """Two nodes on one fresh database; a poll interval far above every wait of the tests,
    so what arrives in time arrived through a wake-up (hint or NOTIFY), or a resume."""
    started = []
    try:
        for n in range(2):
            started.append(start_deployment("wsgi", _folder(tmp_path, f"node{n}"),
                                            storage=database_url, heartbeat=1,
                                            poll_interval=2 * TIMEOUT))
        yield started[0], started[1]
    finally:
        for node in started:
            node.stop()


def read(stream: Stream, count: int):
    return [(int(e.id), wire.message_from_event(e)) for e in stream.take(count)]


def test_sends_alternating_between_nodes_arrive_once_and_in_order(nodes) -> None:
    a, b = nodes
    conn_id, token = new_connection(a.base("echo"))
    stream = Stream(stream_url(b.base("echo"), conn_id, token))  # held by the other node
    for seq in range(1, 61):
        node = a if seq % 2 else b
        assert send(node.base("echo"), conn_id, token, seq, f"m{seq}").json()["ack"] == seq
    assert read(stream, 60) == [(n, f"m{n}") for n in range(1, 61)]
    stream.close()


def test_a_chat_message_on_either_node_reaches_streams_on_both(nodes) -> None:
    a, b = nodes
    on_a, on_b = new_connection(a.base("chat")), new_connection(b.base("chat"))
    streams = [Stream(stream_url(a.base("chat"), *on_a)), Stream(stream_url(b.base("chat"),
                                                                           *on_b))]
    send(a.base("chat"), *on_a, 1, "from a")
    send(b.base("chat"), *on_b, 1, "from b")
    for stream in streams:
        assert [m for _, m in read(stream, 2)] == ["from a", "from b"]
        stream.close()


def test_kill_the_node_holding_the_stream_then_resume_on_the_other(nodes) -> None:
    a, b = nodes
    conn_id, token = new_connection(b.base("echo"))
    stream = Stream(stream_url(a.base("echo"), conn_id, token))
    for seq in range(1, 6):
        send(b.base("echo"), conn_id, token, seq, f"m{seq}")
    seen = read(stream, 3)
    a.proc.stop(signal.SIGKILL)  # the node holding the stream dies mid-exchange
    for seq in range(6, 11):
        send(b.base("echo"), conn_id, token, seq, f"m{seq}")
    resumed = Stream(stream_url(b.base("echo"), conn_id, token), last_event_id=seen[-1][0])
    assert seen + read(resumed, 7) == [(n, f"m{n}") for n in range(1, 11)]
    resumed.close()


def test_a_native_client_on_one_node_chats_with_an_emulated_one_on_the_other(nodes) -> None:
    a, b = nodes
    native_url = HTTP.get(b.base("chat") + "/info").json()["websocket"]
    assert native_url
    emulated = new_connection(a.base("chat"))
    stream = Stream(stream_url(a.base("chat"), *emulated))
    with ws_connect(native_url, open_timeout=TIMEOUT) as native:
        send(a.base("chat"), *emulated, 1, "hello native")
        assert native.recv(timeout=TIMEOUT) == "hello native"
        native.send("hello emulated")
        got = [m for _, m in read(stream, 2)]
        assert got == ["hello native", "hello emulated"]
    stream.close()


def test_starting_several_processes_at_once_on_a_fresh_database(database_url, tmp_path
                                                                ) -> None:
    """The race of a systemd unit and its daemon (or two first visitors): every process
    creates the tables at the same moment; none dies, all serve."""
    started = []
    try:
        import threading

        errors = []

        def start(n: int) -> None:
            try:
                started.append(start_deployment(
                    "wsgi", _folder(tmp_path, f"race{n}"), storage=database_url))
            except Exception as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=start, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(6 * TIMEOUT)
        assert errors == [] and len(started) == 4
        for node in started:
            conn_id, token = new_connection(node.base("echo"))
            assert send(node.base("echo"), conn_id, token, 1, "x").json()["ack"] == 1
            assert "Traceback" not in "".join(node.proc.output)
    finally:
        for node in started:
            node.stop()
