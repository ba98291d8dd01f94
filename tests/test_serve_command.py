"""``altws serve`` as the README runs it: the emulation, the daemon beside it, the pages."""

from __future__ import annotations

import re
import time

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from .support import ALTWS, HTTP, TIMEOUT, Process, start_altws


@pytest.fixture
def serve(data_dir):
    proc = start_altws("serve", data_dir)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not any("daemon on" in line for line in proc.output):
            assert time.monotonic() < deadline, proc.output
            time.sleep(0.05)
        yield proc
    finally:
        proc.stop()


def daemon_url(proc: Process) -> str:
    line = next(line for line in proc.output if "daemon on" in line)
    match = re.search(r"ws://[\d.]+:\d+", line)
    assert match, line
    return match.group(0)


def test_serve_starts_the_daemon_and_advertises_it(serve) -> None:
    info = HTTP.get(serve.url + "/chat/info").json()
    assert info["websocket"] == daemon_url(serve) + "/chat"


def test_pages_served_here_may_use_the_daemon_and_others_may_not(serve) -> None:
    with connect(daemon_url(serve) + "/echo", origin=serve.url) as ws:  # type: ignore[arg-type]
        ws.send("from the chat page's origin")
        assert ws.recv(timeout=TIMEOUT) == "from the chat page's origin"
    with pytest.raises(InvalidStatus):
        connect(daemon_url(serve) + "/echo", origin="http://evil.example")  # type: ignore


def test_a_native_and_an_emulated_client_share_the_chat(serve) -> None:
    from altwebsocket.client import connect as client

    with client(serve.url + "/chat", emulate=True) as emulated, \
            connect(daemon_url(serve) + "/chat") as native:
        native.send("hello from native")
        assert emulated.recv(timeout=TIMEOUT) == "hello from native"
        emulated.send("hello from emulation")
        got = [native.recv(timeout=TIMEOUT) for _ in range(2)]
        assert got == ["hello from native", "hello from emulation"]


def test_no_daemon_flag(data_dir) -> None:
    proc = start_altws("serve", data_dir, "--no-daemon")
    try:
        assert HTTP.get(proc.url + "/chat/info").json()["websocket"] is None
    finally:
        proc.stop()


def test_sigterm_stops_it_promptly(serve) -> None:
    started = time.monotonic()
    serve.stop()
    assert serve.proc.returncode == 0
    assert time.monotonic() - started < 2 * TIMEOUT


def test_a_relative_data_folder_on_the_command_line_is_the_working_directorys(tmp_path
                                                                              ) -> None:
    """``--data var --config conf/altws.ini`` puts the database in ./var, not conf/var
    (a relative ``data`` inside the INI file stays relative to the file)."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "altws.ini").write_text("[altws]\nheartbeat = 5\n")
    (tmp_path / "conf" / "inside.ini").write_text("[altws]\ndata = there\n")
    for args, folder in ((["--data", "var", "--config", "conf/altws.ini"], "var"),
                         (["--config", "conf/inside.ini"], "conf/there")):
        proc = Process(ALTWS + ["serve", "--port", "0", "--no-daemon", *args],
                       timeout=3 * TIMEOUT, cwd=str(tmp_path))
        try:
            assert HTTP.post(proc.url + "/echo/new", content=b"").status_code == 200
            deadline = time.monotonic() + TIMEOUT
            while not any("storage:" in line for line in proc.output):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            storage = next(line for line in proc.output if "storage:" in line)
            assert storage.strip().endswith(f"sqlite:///{tmp_path / folder / 'altws.db'}")
            assert (tmp_path / folder / "altws.db").is_file()
        finally:
            proc.stop()
    assert not (tmp_path / "conf" / "var").exists()
