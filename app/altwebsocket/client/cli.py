"""``altws client``: the command-line test client, interactive or piped, with a debug mode.

The rules it keeps (also in ``altws client --help`` and ``docs/cli.md``):

- A line is sent as one text message, without its line end. ``/binary HEX`` sends bytes,
  ``/close [CODE [REASON]]`` closes, ``/quit`` closes with 1000; a line starting with
  ``//`` sends the text after the first ``/``. Any other line is sent as it is.
- Received messages go to stdout: text as it is, binary as ``[binary] `` and the hex of the
  bytes. Interactive mode prefixes them with ``< ``. Status and ``--debug`` lines go to
  stderr.
- Piped (stdin or stdout not a terminal): after the end of input (or a ``/close`` or
  ``/quit`` line, which ends the input), the client waits until every message it sent is
  accepted by the server, then until it has received at least as many messages as it sent
  **and** no message arrived for ``--quiet`` seconds; at most ``--wait`` seconds in all.
  Then it closes (with 1000, or as the ``/close`` line says) and exits.
- Exit status: 0 when the session ended normally (closed by the client, or by the server
  with 1000, 1001, 1005 or an application code 3000–4999); 1 when the server cannot be
  reached or refuses the connection; 2 for a usage error; 3 when the connection was lost
  (1006) or the server closed it with an error code (1002–1015 but 1005).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, TextIO, cast

from ..exceptions import ProtocolError
from ..protocol.close import validate_client_close as validate_close
from .connection import Client, connect
from .errors import Closed, ConnectFailed
from .transport import Message

__all__ = ["add_parser", "run", "Command", "parse_command", "format_message", "exit_status"]

PROMPT = "> "

EPILOG = """\
modes:
  interactive   stdin and stdout are a terminal: each line you type is sent as a text
                message; messages are printed as they arrive ("< " in front) above the
                line you are typing, which stays intact. Ctrl-D (or Ctrl-C) closes with
                1000 and exits.
  piped         otherwise: every input line is sent; at the end of input (or at a /close
                or /quit line, which ends it) the client waits until the server accepted
                them all, then until it has received at least as many messages as it sent
                and none arrived for --quiet seconds (at most --wait seconds in all); then
                it closes (with 1000, or as /close says) and exits.

lines:
  TEXT                    sent as a text message (without the line end)
  /binary HEX             send bytes, e.g. /binary 00ff (spaces allowed between bytes)
  /close [CODE [REASON]]  close (CODE 1000 or 3000-4999; none: no status, seen as 1005)
  /quit                   close with 1000 and exit
  //TEXT                  send "/TEXT" (to send a line that starts with "/")

output:
  stdout   received messages: text as is; binary as "[binary] " + hex (e.g. "[binary] 00ff")
  stderr   connection status, errors and, with --debug, the traffic:
           emulation: POST /new, /send (seq, ack), /close and their statuses, each stream
           (re)connect with its Last-Event-ID, each SSE event (id, type, size), heartbeat
           comments, retries; native: handshake request and response headers, every frame
           (opcode, length, close code)

transports:
  default       auto: native WebSocket when GET URL/info advertises a daemon and it
                connects, otherwise the emulation (SSE + POST)
  --emulate     always SSE + POST
  --native      always native WebSocket (the URL /info advertises, or a ws:// URL)

exit status:
  0  normal end (closed by you, or by the server with 1000, 1001, 1005 or 3000-4999)
  1  the server cannot be reached, or refused the connection
  2  usage error
  3  connection lost (1006) or closed by the server with an error code (1002-1015)

examples:
  altws client http://127.0.0.1:8000/echo
  printf 'a\\nb\\n' | altws client http://127.0.0.1:8000/echo        # prints a, b
  altws client --emulate --debug http://127.0.0.1:8000/chat
"""


@dataclass(frozen=True)
class Command:
    """One input line, parsed: ``kind`` is text, binary, close, quit or error."""

    kind: str
    data: str | bytes = ""
    code: int | None = None
    reason: str = ""


def parse_command(line: str) -> Command:
    """What an input line asks for (see the module docstring)."""
    if line.startswith("//"):
        return Command("text", line[1:])
    word, _, rest = line.partition(" ")
    if word == "/binary":
        try:
            return Command("binary", bytes.fromhex(rest))
        except ValueError:
            return Command("error", "usage: /binary HEX (e.g. /binary 00ff)")
    if word == "/close":
        code_text, _, reason = rest.strip().partition(" ")
        if not code_text:
            return Command("close")
        if not code_text.isdigit():
            return Command("error", "usage: /close [CODE [REASON]]")
        try:
            validate_close(int(code_text), reason)
        except ProtocolError as exc:
            return Command("error", exc.message)
        return Command("close", code=int(code_text), reason=reason)
    if word == "/quit" and not rest.strip():
        return Command("quit")
    return Command("text", line)


def format_message(message: Message, terminal: bool = False) -> str:
    """How a received message is printed; on a terminal, control characters are escaped."""
    if isinstance(message, bytes):
        return "[binary] " + message.hex()
    if terminal:
        return "".join(ch if ch.isprintable() or ch in "\n\t" else ascii(ch)[1:-1]
                       for ch in message)
    return message


def exit_status(client: Client, by_user: bool) -> int:
    """0, or 3 for a lost connection or an error close by the server (see the docstring)."""
    code = client.close_code
    if code == 1006:
        return 3
    if not by_user and code is not None and 1002 <= code <= 1015 and code != 1005:
        return 3
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``altws client`` on the ``altws`` subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "client",
        help="talk to an app from the terminal (test client with a debug mode)",
        description="Connect to an AltWebSocket app, send the lines you type (or pipe in) "
                    "as messages and print the messages that arrive.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("url", metavar="URL",
                        help="the app's base URL, e.g. http://127.0.0.1:8000/echo "
                             "(or ws://host:port/echo for a native daemon)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--emulate", "-e", dest="emulate", action="store_const", const=True,
                      default=None, help="use the emulation (SSE + POST)")
    mode.add_argument("--native", "-n", dest="emulate", action="store_const", const=False,
                      help="use native WebSocket")
    parser.add_argument("--debug", "-d", action="store_true",
                        help="show the traffic on stderr (requests, events, frames)")
    parser.add_argument("--protocol", "-p", action="append", default=[], metavar="NAME",
                        help="offer this subprotocol (repeatable, in order of preference)")
    parser.add_argument("--wait", type=float, default=10.0, metavar="SECONDS",
                        help="piped: wait at most this long after the end of input "
                             "(default 10)")
    parser.add_argument("--quiet", type=float, default=0.5, metavar="SECONDS",
                        help="piped: the silence that ends the wait once the replies "
                             "arrived (default 0.5)")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="time allowed to connect and to close (default 10)")
    parser.set_defaults(func=run)
    return parser


class Screen:
    """Writes lines to stdout/stderr; in interactive mode, above the prompt, then redraws
    the prompt and the half-typed line (``readline.get_line_buffer()``)."""

    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive
        self.prompt_shown = False
        self.reading = False
        self._dirty = False
        self.lock = threading.RLock()
        self.started = time.monotonic()
        self._readline: Any = None
        if interactive:
            try:
                import readline
            except ImportError:  # pragma: no cover - no readline on this platform
                readline = None  # type: ignore[assignment]
            self._readline = readline

    def message(self, text: str) -> None:
        """A received message (stdout)."""
        self._write(sys.stdout, text)

    def info(self, text: str) -> None:
        """A status or error line (stderr)."""
        self._write(sys.stderr, text)

    def debug(self, text: str) -> None:
        """A ``--debug`` line (stderr), with the seconds since the start."""
        self._write(sys.stderr, f"[{time.monotonic() - self.started:8.3f}] {text}")

    def _write(self, stream: TextIO, text: str) -> None:
        if not self.interactive:
            with self.lock:
                stream.write(text + "\n")
                stream.flush()
            return
        with self.lock:
            # One write() per stream, each starting with "erase this line": readline may
            # draw its prompt between two writes, and must not end up in front of a message.
            line = "\r\x1b[K" + text + "\n"
            after = ""
            if self.prompt_shown:
                buffer = self._readline.get_line_buffer() if self._readline else ""
                after = PROMPT + buffer
            elif self.reading:
                self._dirty = True  # the pre-input hook draws the prompt again
            if stream is sys.stdout:
                self._raw(sys.stdout, line + after)
            else:
                self._raw(sys.stdout, "\r\x1b[K")
                self._raw(stream, line)
                self._raw(sys.stdout, after)

    @staticmethod
    def _raw(stream: TextIO, text: str) -> None:
        """Write ``text`` with one system call (the terminal sees it whole)."""
        if not text:
            return
        stream.flush()
        data = text.encode(stream.encoding or "utf-8", "backslashreplace")
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            stream.write(text)
            stream.flush()
            return
        while data:
            data = data[os.write(fd, data):]

    def read_line(self) -> str:
        """``input()`` with the prompt; messages may be written while it waits."""
        if self._readline is not None:
            self._readline.set_pre_input_hook(self._prompt_on)
        else:
            self._prompt_on()
        with self.lock:
            self.reading = True
            self._dirty = False
        try:
            return input(PROMPT)
        finally:
            with self.lock:
                self.prompt_shown = False
                self.reading = False

    def _prompt_on(self) -> None:
        # readline's pre-input hook: the prompt is drawn, no key is read yet.
        with self.lock:
            self.prompt_shown = True
            if self._dirty:
                self._dirty = False
                sys.stdout.write("\r\x1b[K" + PROMPT)
                sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    """Run ``altws client`` with parsed arguments; return the exit status."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    if hasattr(sys.stdin, "reconfigure"):
        sys.stdin.reconfigure(errors="surrogateescape")
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    screen = Screen(interactive)
    try:
        client = connect(args.url, emulate=args.emulate, protocols=args.protocol,
                         debug=screen.debug if args.debug else None, timeout=args.timeout)
    except ConnectFailed as exc:
        screen.info(f"altws client: cannot connect to {args.url}: {exc.message}")
        return 1
    except ValueError as exc:
        screen.info(f"altws client: {exc}")
        return 2
    if interactive:
        return _interactive(client, args, screen)
    return _piped(client, args, screen)


def _send(client: Client, command: Command, screen: Screen) -> bool:
    """Send a text or binary command; False when the connection is closed."""
    try:
        client.send(command.data)
    except Closed:
        return False
    return True


def _piped(client: Client, args: argparse.Namespace, screen: Screen) -> int:
    cond = threading.Condition()
    state = {"printed": 0, "last": time.monotonic()}

    def receive() -> None:
        for message in client:
            with cond:
                screen.message(format_message(message))
                state["printed"] += 1
                state["last"] = time.monotonic()
                cond.notify_all()
        with cond:
            cond.notify_all()

    receiver = threading.Thread(target=receive, name="altws-client-printer", daemon=True)
    receiver.start()

    def wait_for_replies(sent: int) -> None:
        """The rule of the module docstring: flush, then replies and a quiet period."""
        deadline = time.monotonic() + max(0.0, args.wait)
        client.flush(timeout=max(0.0, deadline - time.monotonic()))
        flushed = time.monotonic()
        with cond:
            while not client.closed:
                now = time.monotonic()
                if now >= deadline:
                    break
                silent = now - max(state["last"], flushed)
                if state["printed"] >= sent and silent >= args.quiet:
                    break
                cond.wait(min(deadline - now, max(0.02, args.quiet - silent)))

    sent = 0
    by_user = False
    close: tuple[int | None, str] = (1000, "")
    for raw in sys.stdin:
        if client.closed:
            break
        line = raw[:-1] if raw.endswith("\n") else raw
        if line.endswith("\r"):
            line = line[:-1]
        command = parse_command(line)
        if command.kind in ("text", "binary"):
            if not _send(client, command, screen):
                break
            sent += 1
        elif command.kind == "error":
            screen.info(f"altws client: {cast(str, command.data)}")  # an error's is its message
        else:
            if command.kind == "close":
                close = (command.code, command.reason)
            break
    if not client.closed:
        wait_for_replies(sent)
    if not client.closed:
        by_user = True
        client.close(*close, timeout=args.timeout)
    receiver.join(args.timeout)
    if not by_user:
        screen.info(f"altws client: closed by the server: {client.close_code}"
                    + (f" {client.close_reason}" if client.close_reason else ""))
    return exit_status(client, by_user)


def _interactive(client: Client, args: argparse.Namespace, screen: Screen) -> int:
    protocol = f", protocol {client.protocol}" if client.protocol else ""
    screen.info(f"connected to {args.url} over {client.transport}{protocol}")
    screen.info("type a line to send it; /binary HEX, /close [CODE [REASON]], /quit; "
                "Ctrl-D closes")
    by_user = threading.Event()
    woken = threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        # The printer thread wakes a blocked input() with SIGINT when the server closes;
        # outside input() that wake-up is ignored, a real Ctrl-C is not.
        if woken.is_set() and not screen.reading:
            return
        raise KeyboardInterrupt

    def receive() -> None:
        for message in client:
            screen.message("< " + format_message(message, terminal=True))
        reason = f" {client.close_reason}" if client.close_reason else ""
        if by_user.is_set():
            screen.info(f"closed: {client.close_code}{reason}")
            return
        screen.info(f"closed by the server: {client.close_code}{reason}")
        with screen.lock:
            woken.set()
            if screen.reading:
                os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGINT, on_sigint)
    receiver = threading.Thread(target=receive, name="altws-client-printer", daemon=True)
    receiver.start()
    try:
        while not client.closed:
            try:
                line = screen.read_line()
            except EOFError:
                screen.message("")
                by_user.set()
                client.close(1000, timeout=args.timeout)
                break
            except KeyboardInterrupt:
                if not client.closed:  # Ctrl-C: like Ctrl-D
                    screen.message("")
                    by_user.set()
                    client.close(1000, timeout=args.timeout)
                else:  # woken up by the printer: erase the prompt it redrew
                    sys.stdout.write("\r\x1b[K")
                    sys.stdout.flush()
                break
            command = parse_command(line)
            if command.kind in ("text", "binary"):
                if not _send(client, command, screen):
                    break
            elif command.kind == "error":
                screen.info(str(command.data))
            else:
                by_user.set()
                if command.kind == "close":
                    client.close(command.code, command.reason, timeout=args.timeout)
                else:
                    client.close(1000, timeout=args.timeout)
                break
        receiver.join(args.timeout)
    finally:
        woken.set()
        signal.signal(signal.SIGINT, previous)
    return exit_status(client, by_user.is_set())
