"""The daemon's hot path (issue 14): a native frame whose handler only answers connections
held by this process runs no transaction; one that uses the storage still commits it all
together, and a connection another process closed is not served."""

from __future__ import annotations

import contextlib
import traceback

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from altwebsocket.protocol import messages as wire
from altwebsocket.storage.api import AltWebSocketStorage

from ..support import TIMEOUT, Daemon, serving


def count_frame_transactions(monkeypatch) -> list[int]:
    """Count the transactions started for native frames (by ``receive_held``)."""
    begun = [0]
    begin = AltWebSocketStorage.begin

    def counting(self):  # type: ignore[no-untyped-def]
        if any(frame.name == "receive_held" for frame in traceback.extract_stack()):
            begun[0] += 1
        return begin(self)

    monkeypatch.setattr(AltWebSocketStorage, "begin", counting)
    return begun


def test_an_echo_runs_no_transaction_and_chat_does(data_dir, monkeypatch) -> None:
    begun = count_frame_transactions(monkeypatch)
    for daemon in serving(Daemon.on(data_dir, heartbeat=30)):
        with connect(daemon.url + "/echo", open_timeout=TIMEOUT) as ws:
            for number in range(200):
                ws.send(f"m{number}")
            assert [ws.recv(timeout=TIMEOUT) for _ in range(200)] == [
                f"m{number}" for number in range(200)]
        assert begun[0] == 0  # echo only sends to its own socket, held here: in memory
        with connect(daemon.url + "/chat", open_timeout=TIMEOUT) as one, \
                connect(daemon.url + "/chat", open_timeout=TIMEOUT) as other:
            one.send("hello room")
            assert one.recv(timeout=TIMEOUT) == "hello room"
            assert other.recv(timeout=TIMEOUT) == "hello room"
        assert begun[0] == 1  # chat keeps its history: one transaction, committed


def test_a_connection_closed_elsewhere_is_not_served(data_dir, monkeypatch) -> None:
    """Another process closes the connection in the storage; the next frame that needs the
    storage finds it closed under the row's lock, and the client gets the close."""
    from altwebsocket import AltWebSocketServer
    from altwebsocket.config import Settings

    for daemon in serving(Daemon.on(data_dir, heartbeat=30, poll_interval=30)):
        with connect(daemon.url + "/chat", open_timeout=TIMEOUT) as ws:
            ws.send("first")
            assert ws.recv(timeout=TIMEOUT) == "first"
            elsewhere = AltWebSocketServer(settings=Settings(data=data_dir))
            with elsewhere.storage.transaction() as tx:
                [conn_id] = tx.open_connection_ids("chat")
            monkeypatch.setattr("altwebsocket.server.send_hints", lambda hints: None)
            elsewhere.close("chat", conn_id, 4001, "closed elsewhere")  # (no hint: lost)
            ws.send("second")  # chat stores it: the transaction sees the close
            try:
                while True:
                    assert ws.recv(timeout=TIMEOUT) != "second"
            except ConnectionClosed:
                pass
            assert ws.close_code == 4001


def test_a_broadcast_of_this_process_reaches_its_clients_without_a_read(data_dir,
                                                                       monkeypatch) -> None:
    """The events a broadcast stored for this daemon's own clients are handed to it after
    the commit, numbered (``AltWebSocketDaemon.offer``): no hint, no read back per client;
    and what reached them is the stored events, in order (a client that resumes from the
    storage would read the same)."""
    reads: list[str] = []
    events_after = AltWebSocketStorage.events_after

    def counting(self, conn_id, after, limit=200):  # type: ignore[no-untyped-def]
        reads.append(conn_id)
        return events_after(self, conn_id, after, limit)

    monkeypatch.setattr(AltWebSocketStorage, "events_after", counting)
    hinted: list[dict[str, list[str]]] = []
    monkeypatch.setattr("altwebsocket.server.send_hints", hinted.append)
    for daemon in serving(Daemon.on(data_dir, heartbeat=30, poll_interval=30)):
        with contextlib.ExitStack() as stack:
            clients = [stack.enter_context(connect(daemon.url + "/chat", open_timeout=TIMEOUT))
                       for _ in range(20)]
            clients[0].send("warm")  # (every client opened and was flushed once)
            for ws in clients:
                assert ws.recv(timeout=TIMEOUT) == "warm"
            reads.clear()
            for number in range(5):
                clients[number].send(f"m{number}")
            for ws in clients:
                assert [ws.recv(timeout=TIMEOUT) for _ in range(5)] == [
                    f"m{number}" for number in range(5)]
            assert reads == [] and hinted == []
    from altwebsocket.config import Settings

    storage = AltWebSocketStorage(Settings(data=data_dir).storage_url())
    conn_ids = [row[0] for row in storage._query(
        "SELECT id FROM aws_connections WHERE app = 'chat'")]
    assert len(conn_ids) == 20
    for conn_id in conn_ids:  # what they got is what is stored, in order
        stored = storage.events_after(conn_id, 0)
        assert [event[2] for event in stored if event[1] == wire.TEXT][-5:] == [
            f"m{number}".encode() for number in range(5)]
    storage.close()
