"""Native and emulated clients in the same room, each side in its own process."""

from __future__ import annotations

import signal
import statistics
import threading
import time

from websockets.sync.client import ClientConnection, connect

from altwebsocket.config import Settings
from altwebsocket.protocol.messages import message_from_event
from altwebsocket.server import AltWebSocketServer

from ..support import TIMEOUT, Process, Stream, open_stream, send
from .conftest import start_daemon


def recv_until(ws: ClientConnection, last: str) -> list[str]:
    """Messages received up to and including ``last``."""
    out: list[str] = []
    while not out or out[-1] != last:
        out.append(ws.recv(timeout=TIMEOUT))  # type: ignore[arg-type]
    return out


def stream_until(stream: Stream, last: str) -> list[str]:
    """Text messages of an SSE stream up to and including ``last`` (ids checked: no gaps)."""
    out: list[str] = []
    while not out or out[-1] != last:
        event = stream.next()
        assert event.id == str(stream.seen + 1), "event ids must count 1, 2, 3…"
        stream.seen += 1
        out.append(message_from_event(event))  # type: ignore[arg-type]
    return out


def test_chat_both_ways_within_milliseconds(daemon: Process, http: Process) -> None:
    base = http.url + "/chat"
    conn_id, token, stream = open_stream(base)
    with connect(daemon.url + "/chat", open_timeout=TIMEOUT) as ws:
        to_emulated, to_native = [], []
        for i in range(5):
            start = time.monotonic()
            ws.send(f"native {i}")
            assert stream_until(stream, f"native {i}") == [f"native {i}"]
            to_emulated.append(time.monotonic() - start)
            assert ws.recv(timeout=TIMEOUT) == f"native {i}"  # the sender gets it too

            start = time.monotonic()
            assert send(base, conn_id, token, i + 1, f"emulated {i}").json()["ack"] == i + 1
            assert ws.recv(timeout=TIMEOUT) == f"emulated {i}"
            to_native.append(time.monotonic() - start)
            assert stream_until(stream, f"emulated {i}") == [f"emulated {i}"]
    # Woken by hints, not by the 1 s poll.
    assert statistics.median(to_emulated) < 0.3, to_emulated
    assert statistics.median(to_native) < 0.3, to_native
    stream.close()


def test_native_client_gets_the_history_on_join(daemon: Process, http: Process) -> None:
    base = http.url + "/chat"
    conn_id, token, stream = open_stream(base)
    for seq in range(1, 13):
        send(base, conn_id, token, seq, f"m{seq}").raise_for_status()
    stream_until(stream, "m12")
    with connect(daemon.url + "/chat", open_timeout=TIMEOUT) as ws:
        assert [ws.recv(timeout=TIMEOUT) for _ in range(10)] == [f"m{i}" for i in range(3, 13)]
        ws.send("hello")
        assert ws.recv(timeout=TIMEOUT) == "hello"  # nothing else came in between
    stream.close()


def test_kill_9_and_restart_loses_nothing(data_dir: str, daemon: Process, http: Process
                                          ) -> None:
    base = http.url + "/chat"
    conn_id, token, stream = open_stream(base)
    sent: list[str] = []
    failures: list[BaseException] = []

    def keep_chatting() -> None:  # the emulated client goes on while the daemon dies
        try:
            for seq in range(1, 41):
                text = f"e{seq}"
                assert send(base, conn_id, token, seq, text).json()["ack"] == seq
                sent.append(text)
                time.sleep(0.05)
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    with connect(daemon.url + "/chat", open_timeout=TIMEOUT) as old:
        old.send("a1")
        assert "a1" in recv_until(old, "a1")
        chatter = threading.Thread(target=keep_chatting)
        chatter.start()
        while len(sent) < 10:
            time.sleep(0.01)
        daemon.stop(signal.SIGKILL)
    restarted = start_daemon(data_dir)
    try:
        with connect(restarted.url + "/chat", open_timeout=TIMEOUT) as new:
            chatter.join(3 * TIMEOUT)
            assert not failures and len(sent) == 40
            new.send("b1")
            seen_by_native = recv_until(new, "b1")
            # The connection of the killed daemon was closed (1006) when the new one
            # started: the only native connection left open is this one.
            server = AltWebSocketServer(settings=Settings(data=data_dir))
            with server.storage.transaction() as tx:
                records = [tx.connection(i) for i in tx.open_connection_ids("chat")]
            assert [r.transport for r in records if r is not None].count("websocket") == 1
        everything = stream_until(stream, "b1")
        # The emulated client got every message of the room, in one order, no gaps.
        assert sorted(everything) == sorted(["a1", "b1"] + sent)
        assert [m for m in everything if m.startswith("e")] == sent
        # The new native client got the last 10 before it joined, then everything after.
        assert len(seen_by_native) >= 11
        assert everything[-len(seen_by_native):] == seen_by_native
    finally:
        restarted.stop()
        stream.close()
