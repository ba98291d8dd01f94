"""The Python client's API against real servers, every scenario over both transports."""

from __future__ import annotations

import pytest

from altwebsocket.client import CLOSED, OPEN, Closed, ConnectFailed, connect
from altwebsocket.exceptions import ProtocolError

from ..support import TIMEOUT, Site
from .conftest import emulate_flag


def test_echo_text_and_binary(site: Site, transport: str) -> None:
    with connect(site.base("echo"), emulate=emulate_flag(transport)) as ws:
        assert ws.transport == transport
        assert ws.ready_state == OPEN
        samples = ["hello", "a\r\nb", "nul\x00", "ünïcödé ☃ 🎉", "", b"\x00\xff", b""]
        for message in samples:
            ws.send(message)
        assert [ws.recv(TIMEOUT) for _ in samples] == samples
    assert ws.ready_state == CLOSED
    assert ws.close_code == 1000


def test_many_messages_arrive_in_order(site: Site, transport: str) -> None:
    with connect(site.base("echo"), emulate=emulate_flag(transport)) as ws:
        for number in range(300):
            ws.send(str(number))
        assert [ws.recv(TIMEOUT) for _ in range(300)] == [str(n) for n in range(300)]


def test_chat_reaches_every_client_and_keeps_history(site: Site, transport: str) -> None:
    flag = emulate_flag(transport)
    with connect(site.base("chat"), emulate=flag) as alice, \
            connect(site.base("chat"), emulate=not flag) as bob:
        alice.send("hi from alice")
        assert alice.recv(TIMEOUT) == "hi from alice"
        assert bob.recv(TIMEOUT) == "hi from alice"
        bob.send("hi from bob")
        assert alice.recv(TIMEOUT) == "hi from bob"
        assert bob.recv(TIMEOUT) == "hi from bob"
    with connect(site.base("chat"), emulate=flag) as carol:
        assert [carol.recv(TIMEOUT), carol.recv(TIMEOUT)] == ["hi from alice", "hi from bob"]


def test_close_with_code_and_reason(site: Site, transport: str) -> None:
    ws = connect(site.base("echo"), emulate=emulate_flag(transport))
    ws.send("last")
    assert ws.recv(TIMEOUT) == "last"
    ws.close(4000, "bye now")
    assert ws.closed and ws.ready_state == CLOSED
    assert (ws.close_code, ws.close_reason) == (4000, "bye now")
    with pytest.raises(Closed) as info:
        ws.recv(TIMEOUT)
    assert info.value.close_code == 4000
    with pytest.raises(Closed):
        ws.send("too late")
    assert list(ws) == []


def test_emulation_sends_queued_messages_before_the_close(site: Site) -> None:
    ws = connect(site.base("echo"), emulate=True)
    for number in range(20):
        ws.send(str(number))
    ws.close(4000, "bye")
    assert list(ws) == [str(n) for n in range(20)]
    assert ws.close_code == 4000


def test_close_without_code_is_1005(site: Site, transport: str) -> None:
    ws = connect(site.base("echo"), emulate=emulate_flag(transport))
    ws.close()
    assert (ws.close_code, ws.close_reason) == (1005, "")


@pytest.mark.parametrize("code, reason", [(999, ""), (1001, ""), (2999, ""), (5000, ""),
                                          (1000, "x" * 124)])
def test_close_refuses_what_websocket_close_refuses(site: Site, code: int,
                                                   reason: str) -> None:
    with connect(site.base("echo"), emulate=True) as ws:
        with pytest.raises(ProtocolError):
            ws.close(code, reason)
        assert ws.ready_state == OPEN


def test_server_close_reaches_the_client(site: Site, transport: str) -> None:
    ws = connect(site.base("chat"), emulate=emulate_flag(transport))
    ws.send(b"\x00")  # chat takes text only: it closes with 1003
    with pytest.raises(Closed):
        ws.recv(TIMEOUT)
    assert ws.close_code == 1003
    assert ws.close_reason == "chat takes text messages only"


def test_offered_protocol_not_chosen_fails(site: Site, transport: str) -> None:
    with pytest.raises(ConnectFailed, match="subprotocol"):
        connect(site.base("echo"), emulate=emulate_flag(transport), protocols=["v1.chat"])


def test_unreachable_server() -> None:
    for emulate in (True, None):
        with pytest.raises(ConnectFailed, match="connection refused"):
            connect("http://127.0.0.1:1/echo", emulate=emulate, timeout=TIMEOUT)
    with pytest.raises(ConnectFailed, match="refused"):
        connect("ws://127.0.0.1:1/echo", timeout=TIMEOUT)


def test_unknown_app_is_refused(site: Site, transport: str) -> None:
    with pytest.raises(ConnectFailed) as info:
        connect(site.base("nope"), emulate=emulate_flag(transport))
    assert info.value.http_status == 404


def test_bad_urls() -> None:
    with pytest.raises(ValueError):
        connect("ftp://127.0.0.1/echo")
    with pytest.raises(ValueError):
        connect("ws://127.0.0.1:1/echo", emulate=True)


def test_auto_prefers_native_when_advertised(site: Site) -> None:
    lines: list = []
    with connect(site.base("echo"), debug=lines.append) as ws:
        assert ws.transport == "native"
        ws.send("x")
        assert ws.recv(TIMEOUT) == "x"
    assert any("auto: trying native WebSocket" in line for line in lines)


def test_auto_uses_emulation_without_a_daemon(live_server) -> None:
    with connect(live_server.url + "/echo") as ws:
        assert ws.transport == "emulation"
    with pytest.raises(ConnectFailed, match="advertises no native WebSocket"):
        connect(live_server.url + "/echo", emulate=False)


def test_auto_falls_back_when_the_daemon_is_down(data_dir: str) -> None:
    running = Site(data_dir, websocket_url="ws://127.0.0.1:1")
    try:
        lines: list = []
        with connect(running.base("echo"), debug=lines.append) as ws:
            assert ws.transport == "emulation"
            ws.send("still works")
            assert ws.recv(TIMEOUT) == "still works"
        assert any("auto: native failed" in line for line in lines)
    finally:
        running.stop()


def test_native_with_a_ws_url(site: Site) -> None:
    assert site.ws is not None
    with connect(site.ws + "/echo") as ws:
        assert ws.transport == "native"
        ws.send(b"\x01")
        assert ws.recv(TIMEOUT) == b"\x01"


def test_recv_timeout(site: Site, transport: str) -> None:
    with connect(site.base("echo"), emulate=emulate_flag(transport)) as ws:
        with pytest.raises(TimeoutError):
            ws.recv(0.2)
