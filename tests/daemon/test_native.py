"""The daemon as a native WebSocket server: echo, handshake rules, limits, shutdown."""

from __future__ import annotations

import contextlib
import signal
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from altwebsocket.protocol.messages import message_from_event

from ..support import TIMEOUT, Process, new_connection, open_stream, send, write_config


def test_echo_text_and_binary(daemon: Process) -> None:
    with connect(daemon.url + "/echo", open_timeout=TIMEOUT) as ws:
        for message in ["hello", "a\r\nb\x00é☃", "", b"\x00\xff" * 1000, b""]:
            ws.send(message)
            assert ws.recv(timeout=TIMEOUT) == message


def test_echo_keeps_order(daemon: Process) -> None:
    with connect(daemon.url + "/echo", open_timeout=TIMEOUT) as ws:
        for i in range(200):
            ws.send(str(i))
        assert [ws.recv(timeout=TIMEOUT) for _ in range(200)] == [str(i) for i in range(200)]


@pytest.mark.parametrize("offered, chosen", [
    (["v1.chat", "v2.chat"], "v2.chat"),  # the app's preference wins
    (["v1.chat", "other"], "v1.chat"),
    (["other"], None),
])
def test_subprotocol_negotiation(daemon: Process, offered: list, chosen: object) -> None:
    with connect(daemon.url + "/presence", subprotocols=offered, open_timeout=TIMEOUT) as ws:
        assert ws.subprotocol == chosen
        ws.send("protocol?")
        assert ws.recv(timeout=TIMEOUT) == f"protocol={chosen or ''}"


def test_a_message_sent_just_before_a_close_arrives_first(daemon: Process) -> None:
    """send() then close() in one on_message: the message (in memory on a native socket)
    and the close (through the storage) reach the client in the order the app made them."""
    for _ in range(5):
        with connect(daemon.url + "/presence", open_timeout=TIMEOUT) as ws:
            ws.send("bye?")
            assert ws.recv(timeout=TIMEOUT) == "Goodbye"
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=TIMEOUT)
            assert (ws.close_code, ws.close_reason) == (4000, "done")


def test_the_same_last_word_over_the_emulation(http: Process) -> None:
    base = http.url + "/presence"
    conn_id, token, stream = open_stream(base)
    send(base, conn_id, token, 1, "bye?")
    events = [e for e in stream.take(2) if e.id]
    assert [message_from_event(e) for e in events] == ["Goodbye", (4000, "done")]
    stream.close()


def test_foreign_origin_is_refused_at_handshake(daemon: Process) -> None:
    with pytest.raises(InvalidStatus) as info:
        connect(daemon.url + "/echo", origin="https://evil.example", open_timeout=TIMEOUT)
    assert info.value.response.status_code == 403


def test_own_origin_and_no_origin_pass(daemon: Process) -> None:
    own = daemon.url.replace("ws://", "http://")
    with connect(daemon.url + "/echo", origin=own, open_timeout=TIMEOUT) as ws:
        ws.send("x")
        assert ws.recv(timeout=TIMEOUT) == "x"
    with connect(daemon.url + "/echo", open_timeout=TIMEOUT) as ws:
        ws.send("y")
        assert ws.recv(timeout=TIMEOUT) == "y"


def test_allow_listed_origin_passes(data_dir: str) -> None:
    from .conftest import start_daemon

    proc = start_daemon(data_dir, "--allow-origin", "https://app.example")
    try:
        with connect(proc.url + "/echo", origin="https://app.example",
                     open_timeout=TIMEOUT) as ws:
            ws.send("z")
            assert ws.recv(timeout=TIMEOUT) == "z"
    finally:
        proc.stop()


def test_unknown_app_is_404(daemon: Process) -> None:
    with pytest.raises(InvalidStatus) as info:
        connect(daemon.url + "/nope", open_timeout=TIMEOUT)
    assert info.value.response.status_code == 404


def test_oversized_message_closes_1009(daemon: Process, http: Process) -> None:
    base = http.url + "/presence"
    conn_id, token, stream = open_stream(base)
    with connect(daemon.url + "/presence", open_timeout=TIMEOUT, max_size=None) as ws:
        ws.send("x" * (1024 * 1024 + 1))
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=TIMEOUT)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    # The app saw the same close code (on_close ran with 1009 in the daemon).
    assert message_from_event(stream.next()) == "websocket left 1009"
    stream.close()


def test_app_close_reaches_the_native_client(daemon: Process) -> None:
    with connect(daemon.url + "/chat", open_timeout=TIMEOUT) as ws:
        ws.send(b"binary is not chat")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=TIMEOUT)
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (1003, "chat takes text messages only")


def test_client_close_code_reaches_the_app(daemon: Process, http: Process) -> None:
    base = http.url + "/presence"
    conn_id, token, stream = open_stream(base)
    with connect(daemon.url + "/presence", open_timeout=TIMEOUT) as ws:
        ws.close(4321, "bye")
    assert message_from_event(stream.next()) == "websocket left 4321"
    stream.close()


def test_sigterm_closes_clients_with_1001(daemon: Process, http: Process) -> None:
    base = http.url + "/presence"
    conn_id, token, stream = open_stream(base)
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(connect(daemon.url + "/presence", open_timeout=TIMEOUT))
                   for _ in range(3)]
        daemon.stop(signal.SIGTERM)
        assert daemon.proc.returncode == 0
        for ws in clients:
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=TIMEOUT)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1001
        # on_close ran with 1001 for each of them, in the daemon, before it exited.
        notes = [message_from_event(stream.next()) for _ in range(3)]
        assert notes == ["websocket left 1001"] * 3
    stream.close()


def test_info_advertises_the_daemon(daemon: Process, http: Process) -> None:
    info = httpx.get(http.url + "/chat/info", timeout=TIMEOUT).json()
    assert info["websocket"] == daemon.url + "/chat"
    with connect(info["websocket"], open_timeout=TIMEOUT) as ws:
        ws.send("via info")
        deadline = time.monotonic() + TIMEOUT
        while ws.recv(timeout=TIMEOUT) != "via info":  # the history may come first
            assert time.monotonic() < deadline


def test_threaded_mode_echo_and_broadcast(data_dir: str, http: Process) -> None:
    from .conftest import start_daemon

    proc = start_daemon(data_dir, "--threaded")
    base = http.url + "/chat"
    conn_id, token = new_connection(base)
    try:
        with connect(proc.url + "/echo", open_timeout=TIMEOUT) as ws:
            for message in ["t", b"\x01"]:
                ws.send(message)
                assert ws.recv(timeout=TIMEOUT) == message
        with connect(proc.url + "/chat", open_timeout=TIMEOUT) as ws:
            assert send(base, conn_id, token, 1, "from emulation").json()["ack"] == 1
            assert ws.recv(timeout=TIMEOUT) == "from emulation"
    finally:
        proc.stop()


def test_slow_reader_is_closed_1008(data_dir: str, http: Process) -> None:
    from .conftest import start_daemon

    proc = start_daemon(data_dir, "--config", write_config(data_dir, "slow", data=data_dir,
                                                            max_events_queued=20))
    base = http.url + "/chat"
    conn_id, token = new_connection(base)
    big = "x" * 50_000
    try:
        # max_queue=1: the client stops reading from its socket at once.
        with connect(proc.url + "/chat", open_timeout=TIMEOUT, max_queue=1) as ws:
            seq = 0
            for _ in range(4):  # 200 messages of 50 kB: ~10 MB, more than socket buffers
                messages = [{"seq": seq + i + 1, "data": big} for i in range(50)]
                seq += 50
                response = httpx.post(base + "/send", json={"id": conn_id, "token": token,
                                                            "messages": messages},
                                      timeout=TIMEOUT)
                assert response.json()["ack"] == seq
            time.sleep(1.5)  # the daemon's poll or hints queue them all meanwhile
            received = 0
            with pytest.raises(ConnectionClosed) as info:
                while True:
                    ws.recv(timeout=TIMEOUT)
                    received += 1
        assert info.value.rcvd is not None and info.value.rcvd.code == 1008, info.value
        assert received < 200
    finally:
        proc.stop()
