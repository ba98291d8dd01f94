"""``altws client`` with piped input: exact output, exit statuses, ``--debug``."""

from __future__ import annotations

import subprocess

from ..support import ALTWS, TIMEOUT, Site
from .conftest import cli_flag


def client(args: list[str], text: str, timeout: float = 6 * TIMEOUT
           ) -> subprocess.CompletedProcess:
    """Run ``altws client`` with ``text`` on stdin."""
    return subprocess.run(ALTWS + ["client"] + args, input=text, capture_output=True,
                          text=True, timeout=timeout)


def test_echo_prints_the_replies_and_exits_0(site: Site, transport: str) -> None:
    done = client([cli_flag(transport), site.base("echo")],
                  "a\nb\n\nünï ☃\n/binary 00ff\n//slash\n")
    assert done.stdout == "a\nb\n\nünï ☃\n[binary] 00ff\n/slash\n"
    assert done.stderr == ""
    assert done.returncode == 0


def test_chat_output_and_close_command(site: Site, transport: str) -> None:
    done = client([cli_flag(transport), site.base("chat")], "hello\n/close 4001 done\nnot sent\n")
    assert done.stdout == "hello\n"
    assert done.returncode == 0
    again = client([cli_flag(transport), site.base("chat")], "")
    assert again.stdout == "hello\n"  # the history; "not sent" was not
    assert again.returncode == 0


def test_server_error_close_exits_3(site: Site, transport: str) -> None:
    done = client([cli_flag(transport), site.base("chat")], "/binary 00\n")
    assert done.returncode == 3
    assert done.stderr == "altws client: closed by the server: 1003 chat takes text messages only\n"


def test_unreachable_server_exits_1() -> None:
    done = client(["http://127.0.0.1:1/echo"], "a\n")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == ("altws client: cannot connect to http://127.0.0.1:1/echo: "
                           "cannot reach 127.0.0.1:1: connection refused\n")


def test_unknown_app_exits_1(site: Site, transport: str) -> None:
    done = client([cli_flag(transport), site.base("nope")], "a\n")
    assert done.returncode == 1
    assert done.stderr.startswith(f"altws client: cannot connect to {site.base('nope')}: ")
    assert "404" in done.stderr and done.stderr.count("\n") == 1


def test_native_without_a_daemon_exits_1(live_server) -> None:
    done = client(["--native", live_server.url + "/echo"], "a\n")
    assert done.returncode == 1
    assert "advertises no native WebSocket" in done.stderr


def test_bad_url_and_bad_options_exit_2() -> None:
    assert client(["ftp://127.0.0.1/echo"], "").returncode == 2
    assert client(["--emulate", "--native", "http://127.0.0.1:1/echo"], "").returncode == 2


def test_bad_command_is_reported_and_skipped(site: Site) -> None:
    done = client(["--emulate", site.base("echo")], "/binary zz\n/close 1001\nok\n")
    assert done.stdout == "ok\n"
    assert done.returncode == 0
    assert "usage: /binary HEX" in done.stderr
    assert "close code must be 1000 or between 3000 and 4999" in done.stderr


def test_wait_bounds_the_wait_for_replies(site: Site) -> None:
    # A quiet period longer than --wait: --wait ends the wait (and it is no error).
    done = client(["--emulate", "--wait", "0.5", "--quiet", "30", site.base("echo")], "a\n",
                  timeout=TIMEOUT * 3)
    assert done.stdout == "a\n"
    assert done.returncode == 0


def test_help_explains_everything() -> None:
    done = subprocess.run(ALTWS + ["client", "--help"], capture_output=True, text=True,
                          timeout=TIMEOUT * 3)
    assert done.returncode == 0
    for needle in ["--emulate", "--native", "--debug", "--wait", "/close [CODE [REASON]]",
                   "/binary HEX", "/quit", "Ctrl-D", "interactive", "piped", "exit status",
                   "Last-Event-ID", "[binary]"]:
        assert needle in done.stdout, needle


def test_debug_emulation_shows_the_http_traffic(site: Site) -> None:
    done = client(["--emulate", "--debug", site.base("echo")], "a\n/close 4000 bye\n")
    assert done.stdout == "a\n"
    err = done.stderr
    for needle in ["> POST /echo/new", "< 200 id=", "> GET /echo/?id=", "< stream 200",
                   "> POST /echo/send seq=1", "< 200 ack=1", "< : comment (heartbeat)",
                   "< event id=1 message 1 bytes", "> POST /echo/close code=4000 reason='bye'",
                   "< event id=2 close code=4000 reason='bye'"]:
        assert needle in err, (needle, err)
    assert all(line.startswith("[") for line in err.splitlines())


def test_debug_emulation_shows_resumes(short_streams: Site) -> None:
    # --quiet longer than a stream: the client waits through a reconnect.
    done = client(["--emulate", "--debug", "--quiet", "2.5", short_streams.base("echo")], "a\n")
    assert done.stdout == "a\n"
    assert "stream ended by the server" in done.stderr
    assert "Last-Event-ID: 1" in done.stderr


def test_debug_native_shows_handshake_and_frames(site: Site) -> None:
    done = client(["--native", "--debug", site.base("echo")], "a\n/close 4000 bye\n")
    assert done.stdout == "a\n"
    err = done.stderr
    for needle in ["> GET /echo HTTP/1.1", "> Upgrade: websocket", "> Sec-WebSocket-Key: ",
                   "< HTTP/1.1 101 Switching Protocols", "< Sec-WebSocket-Accept: ",
                   "> TEXT 'a' [1 byte]", "< TEXT 'a' [1 byte]",
                   "> CLOSE 4000 (private use) bye", "< CLOSE 4000 (private use) bye"]:
        assert needle in err, (needle, err)
