"""``altws client`` in a real terminal (tmux): typing, messages arriving mid-line, commands."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Callable

import pytest

from altwebsocket.client import connect

from ..support import ALTWS, TIMEOUT, Site
from .conftest import cli_flag, emulate_flag

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


class Terminal:
    """A tmux session of its own (private socket) running one command."""

    def __init__(self, command: list[str]) -> None:
        self.socket = f"altws-test-{uuid.uuid4().hex[:12]}"
        shell = " ".join(shlex.quote(part) for part in command)
        # Keep the pane after the command ends, to read its exit status.
        script = f"{shell}; echo EXIT=$?; sleep {int(TIMEOUT * 6)}"
        self._tmux("-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", "120", "-y", "40",
                   "sh", "-c", script)

    def _tmux(self, *args: str) -> str:
        env = {k: v for k, v in os.environ.items() if k != "TMUX"}
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True,
                              text=True, timeout=TIMEOUT, env=env, check=True).stdout

    def keys(self, *keys: str, literal: bool = False) -> None:
        """Type ``keys`` (tmux key names, or literal text)."""
        self._tmux("send-keys", "-t", "t", *(["-l"] if literal else []), *keys)

    def screen(self) -> list[str]:
        """The visible lines, trailing blanks removed."""
        lines = self._tmux("capture-pane", "-p", "-t", "t").rstrip("\n").split("\n")
        while lines and not lines[-1].strip():
            lines.pop()
        return [line.rstrip() for line in lines]

    def wait(self, test: Callable[[list[str]], bool], what: str) -> list[str]:
        """Poll the screen until ``test`` holds (at most a few TIMEOUTs)."""
        deadline = time.monotonic() + 3 * TIMEOUT
        while True:
            lines = self.screen()
            if test(lines):
                return lines
            if time.monotonic() > deadline:
                raise AssertionError(f"screen never showed {what}:\n" + "\n".join(lines))
            time.sleep(0.05)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True,
                       timeout=TIMEOUT)


@pytest.fixture
def terminal() -> Iterator[Callable[[list[str]], Terminal]]:
    opened: list[Terminal] = []

    def start(args: list[str]) -> Terminal:
        term = Terminal(ALTWS + ["client"] + args)
        opened.append(term)
        term.wait(lambda lines: any(line.startswith("connected to") for line in lines)
                  and bool(lines) and lines[-1] == ">", "the prompt")
        return term

    yield start
    for term in opened:
        term.close()


def has(text: str) -> Callable[[list[str]], bool]:
    return lambda lines: text in lines


def test_echo_lines_binary_and_ctrl_d(site: Site, transport: str, terminal) -> None:
    term = terminal([cli_flag(transport), site.base("echo")])
    assert f"connected to {site.base('echo')} over {transport}" in term.screen()
    term.keys("hello there", literal=True)
    term.keys("Enter")
    term.wait(has("< hello there"), "the echo")
    term.keys("/binary 00ff10", literal=True)
    term.keys("Enter")
    term.wait(has("< [binary] 00ff10"), "the binary echo")
    term.keys("C-d")
    lines = term.wait(has("EXIT=0"), "the exit")
    assert "closed: 1000" in lines
    assert lines.index("> hello there") < lines.index("< hello there")


def test_a_message_arriving_while_typing_keeps_the_half_line(site: Site, transport: str,
                                                            terminal) -> None:
    term = terminal([cli_flag(transport), site.base("chat")])
    term.keys("half typed", literal=True)
    term.wait(lambda lines: lines[-1] == "> half typed", "the half line")
    with connect(site.base("chat"), emulate=not emulate_flag(transport)) as bob:
        bob.send("from bob")
        lines = term.wait(has("< from bob"), "bob's message")
        # The message is above the prompt, and the half-typed line is still there, intact.
        assert lines[-1] == "> half typed"
        assert lines[-2] == "< from bob"
        term.keys(" line", literal=True)
        term.keys("Enter")
        assert bob.recv(TIMEOUT) == "from bob"
        assert bob.recv(TIMEOUT) == "half typed line"
    lines = term.wait(has("< half typed line"), "our own message back")
    assert "> half typed line" in lines
    term.keys("/quit", literal=True)
    term.keys("Enter")
    term.wait(has("EXIT=0"), "the exit")


def test_history_arriving_with_the_first_prompt(site: Site, transport: str,
                                                terminal) -> None:
    with connect(site.base("chat"), emulate=True) as alice:
        for number in range(10):
            alice.send(f"old {number}")
        for _ in range(10):
            alice.recv(TIMEOUT)
    for _attempt in range(3):  # a race with the first prompt: try it a few times
        term = terminal([cli_flag(transport), site.base("chat")])
        lines = term.wait(lambda lines: "< old 9" in lines and lines[-1] == ">",
                          "the history, then the prompt")
        assert [line for line in lines if line.startswith("<")] == \
            [f"< old {n}" for n in range(10)]
        assert not any(line.startswith("><") or line.startswith("> <") for line in lines)
        term.keys("typed", literal=True)
        term.wait(lambda lines: lines[-1] == "> typed", "the typed text on the prompt line")
        term.close()


def test_close_command_with_code_and_reason(site: Site, transport: str, terminal) -> None:
    term = terminal([cli_flag(transport), site.base("echo")])
    term.keys("/close 4000 see you", literal=True)
    term.keys("Enter")
    lines = term.wait(has("EXIT=0"), "the exit")
    assert "closed: 4000 see you" in lines


def test_server_close_ends_the_session(site: Site, transport: str, terminal) -> None:
    term = terminal([cli_flag(transport), site.base("chat")])
    term.keys("/binary 00", literal=True)  # chat closes with 1003
    term.keys("Enter")
    lines = term.wait(has("EXIT=3"), "the exit")
    assert "closed by the server: 1003 chat takes text messages only" in lines


def test_debug_lines_do_not_mangle_the_prompt(site: Site, terminal) -> None:
    term = terminal(["--emulate", "--debug", site.base("echo")])
    term.keys("abc", literal=True)
    term.keys("Enter")
    lines = term.wait(has("< abc"), "the echo")
    assert any("> POST /echo/send seq=1" in line for line in lines)
    term.wait(lambda lines: lines[-1] == ">", "the prompt back at the bottom")
    term.keys("C-d")
    term.wait(has("EXIT=0"), "the exit")
