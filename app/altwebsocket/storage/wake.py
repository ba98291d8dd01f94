"""Wake-up hints between processes: one datagram to a Unix socket per waiting stream.

A stream that waits for events binds a datagram socket in the wake folder and records its
path on the connection's row. A writer that queued events for the connection sends the
connection id to that path after its commit. The hint only shortens the wait: the database
is the truth, and what a lost hint missed is still found (the daemon polls ``PRAGMA
data_version``; the HTTP streams of a process have one poller, ``Streams._poll``), so a lost
hint costs latency, never a message. Sockets left by killed processes are removed when a
send finds no one listening (``ECONNREFUSED``).

The same folder counts the streams of all processes (one socket per stream), which is how a
host-wide cap on concurrent streams works without a daemon, and the clients that poll because
the cap was reached (one ``<id>.p`` file each, touched at every poll; see
:mod:`..protocol.crowd`).

What a row records as its waker is the socket's :attr:`WakeSocket.address`,
``host:path``: several hosts may share one database (PostgreSQL, MySQL), and a path means
something only on its own host. Hints go only to this host's sockets; other hosts hear of
their events through :mod:`.notify` or their poll.
"""

from __future__ import annotations

# the C module: socket.py imports selectors and builds its enums, ~1.5 ms of every CGI request
import _socket as socket
import errno
import os
import select
import time

from .._lazy import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["HOST", "POKE", "wake_folder", "WakeSocket", "send_hints", "count_streams", "local_path",
           "mark_polling", "unmark_polling", "polling_ages"]

HOST = socket.gethostname()
"""This host's name, the prefix of its wakers' addresses."""


def local_path(address: str) -> str | None:
    """The socket path of a waker address if it is on this host, else ``None`` (a bare path,
    as older versions recorded, counts as local)."""
    if address.startswith("/"):
        return address
    host, _, path = address.partition(":")
    return path if host == HOST and path.startswith("/") else None

POKE = "+"
"""What :meth:`WakeSocket.poke` sends: no connection id, only "look at what you were handed"."""

_MAX_PATH = 100  # sun_path holds 108 bytes; keep a margin
_MAX_DATAGRAM = 60000


def wake_folder(data_dir: str) -> str:
    """The folder for wake sockets of ``data_dir``: inside it if the paths fit, else in /tmp."""
    preferred = os.path.join(os.path.abspath(data_dir), "wake")
    if len(preferred) + 20 <= _MAX_PATH:
        folder = preferred
    else:
        import hashlib
        import tempfile

        digest = hashlib.sha256(os.path.abspath(data_dir).encode()).hexdigest()[:16]
        folder = os.path.join(tempfile.gettempdir(), f"altws-{digest}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    return folder


_poll = getattr(select, "poll", None)


class WakeSocket:
    """A bound datagram socket a stream (or the daemon) waits on for hints."""

    def __init__(self, folder: str) -> None:
        self.path = os.path.join(folder, os.urandom(6).hex() + ".s")
        self.address = f"{HOST}:{self.path}"  # what rows record as their waker
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._sock.bind(self.path)

    def fileno(self) -> int:
        """The socket's file descriptor (for ``select`` or an event loop)."""
        return self._sock.fileno()

    def wait(self, timeout: float) -> list[str]:
        """Wait up to ``timeout`` s for hints; returns the connection ids hinted (maybe [])."""
        if _poll is not None:  # select() fails on descriptors above 1023 (a busy server)
            poller = _poll()
            poller.register(self._sock.fileno(), select.POLLIN)
            ready = poller.poll(max(0.0, timeout) * 1000)
        else:  # pragma: no cover - no poll() on this platform
            ready, _, _ = select.select([self._sock], [], [], max(0.0, timeout))
        return self.drain() if ready else []

    def poke(self) -> None:
        """Wake whoever waits on this socket (from another thread of this process)."""
        try:
            _send_socket().sendto(POKE.encode("ascii"), self.path)
        except OSError:  # its queue is full: it is awake anyway
            pass

    def drain(self) -> list[str]:
        """Read every pending hint without waiting."""
        ids: list[str] = []
        while True:
            try:
                data = self._sock.recv(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return ids
            except OSError:
                return ids
            ids.extend(part for part in data.decode("ascii", "replace").split("\n") if part)

    def close(self) -> None:
        """Close the socket and remove its file."""
        try:
            self._sock.close()
        finally:
            try:
                os.unlink(self.path)
            except OSError:
                pass

    def __enter__(self) -> WakeSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_sender: socket.socket | None = None


def _send_socket() -> socket.socket:
    global _sender
    if _sender is None:
        _sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        _sender.setblocking(False)
    return _sender


def send_hints(targets: dict[str, list[str]]) -> None:
    """Send each waker of this host the ids of its connections that have new events
    (``targets``: waker address or path -> ids; wakers of other hosts are left out)."""
    sender = _send_socket()
    for address, ids in targets.items():
        path = local_path(address)
        if path is None:
            continue
        payload = "\n".join(ids).encode("ascii")
        for start in range(0, max(1, len(payload)), _MAX_DATAGRAM):
            chunk = payload[start : start + _MAX_DATAGRAM]
            try:
                sender.sendto(chunk, path)
            except OSError as exc:
                if exc.errno == errno.ECONNREFUSED:
                    _remove(path)  # a killed process left it behind
                break  # ENOENT: already gone; EAGAIN: its queue is full, it will wake anyway


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def count_streams(folder: str, clean: bool = False) -> int:
    """How many live wake sockets (streams) the folder holds; ``clean`` drops dead ones."""
    try:
        names = [name for name in os.listdir(folder) if name.endswith(".s")]
    except OSError:
        return 0
    if not clean:
        return len(names)
    alive = 0
    probe = _send_socket()
    for name in names:
        path = os.path.join(folder, name)
        try:
            probe.sendto(b"", path)
            alive += 1
        except OSError as exc:
            if exc.errno == errno.ECONNREFUSED:
                _remove(path)
            elif exc.errno == errno.EAGAIN:
                alive += 1
    return alive


def _marker(folder: str, name: str) -> str:
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError(f"not a connection id: {name!r}")
    return os.path.join(folder, f"{name}.p")


def mark_polling(folder: str, name: str) -> None:
    """Record that the client of connection (or session) ``name`` polls now."""
    path = _marker(folder, name)
    try:
        os.utime(path)
    except FileNotFoundError:
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        except OSError:
            pass  # a full or read-only folder: the crowd is counted a little short
    except OSError:
        pass


def unmark_polling(folder: str, name: str) -> None:
    """The client of ``name`` holds a stream now: it no longer polls."""
    _remove(_marker(folder, name))


def polling_ages(folder: str, forget_after: float) -> list[float]:
    """How long ago each polling client last polled, in seconds; markers older than
    ``forget_after`` are removed (those clients left, or hold a stream)."""
    now = time.time()
    ages: list[float] = []
    try:
        names = [name for name in os.listdir(folder) if name.endswith(".p")]
    except OSError:
        return ages
    for name in names:
        path = os.path.join(folder, name)
        try:
            age = max(0.0, now - os.stat(path).st_mtime)
        except OSError:
            continue
        if age > forget_after:
            _remove(path)
        else:
            ages.append(age)
    return ages


def paths(folder: str) -> Iterable[str]:
    """The wake socket paths in ``folder`` (for diagnostics)."""
    try:
        return [os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".s")]
    except OSError:
        return []
