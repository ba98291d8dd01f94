"""One thread that holds many event streams: the *detached* streams of ``altws serve``.

A stream served the plain WSGI way holds one of the server's threads from its first byte to
its last, and spends nearly all of it waiting on its wake socket: 5,000 idle browser tabs
would be 5,000 threads. Under ``altws serve`` (waitress, :mod:`.waitress_channel`) a stream
is detached instead: the request's thread writes the headers and the first chunk, hands the
stream to its process's :class:`StreamKeeper` and goes back to waitress's pool. The keeper
waits for the wake sockets and deadlines of all its streams at once (one ``epoll``); when
one is due — a hint came, or its next heartbeat or end is near — it runs the stream's own
loop (:meth:`.EventStream.advance`) up to its next wait on one of a few worker threads, so a
stream that reads the storage or writes to a slow client does not hold up the others. A
held stream then costs a socket, a wake socket and a suspended generator, not a thread.
The keeper also watches the stream's connection itself (the client's end, and writability
while output waits in the buffer) and closes it when the stream is over: waitress's main
loop, which visits every connection in its map on every pass, no longer sees held streams
(at 3,000 of them an emulated echo took 3.5 ms instead of 0.5 ms while it still did).

Events handed over by this process's operations (an echo, a broadcast) do not wait for the
keeper: they are written by the operation's thread or the process's fan-out thread straight
onto the stream (:meth:`.EventStream.offer`), as for any stream that writes directly.

Only the keeper's thread touches its selector and its heap of deadlines; other threads send
it commands through a queue and a self-pipe. Only one worker at a time runs a given stream;
hints that arrive meanwhile wait for the next step.
"""

from __future__ import annotations

import heapq
import itertools
import os
import selectors
import threading
import time
from collections import deque
from queue import SimpleQueue

from ..._lazy import TYPE_CHECKING, logger

if TYPE_CHECKING:
    from collections.abc import Callable, Generator
    from typing import Protocol

    from ...storage.wake import WakeSocket

    Steps = Generator[bytes | float, list[str] | None, None]

    class Stream(Protocol):
        """What the keeper needs of a stream (:class:`.stream.EventStream`)."""

        def advance(self, steps: Steps, hints: list[str] | None) -> float | None: ...

        def release(self) -> None: ...

    class Response(Protocol):
        """What the keeper needs of a response that outlived its request's thread
        (:class:`.waitress_channel.DetachedResponse`)."""

        fd: int
        on_buffered: Callable[[], None] | None

        @property
        def buffered(self) -> bool: ...

        def read(self) -> bool: ...

        def flush(self) -> bool: ...

        def finish(self) -> None: ...

        def close(self) -> None: ...

__all__ = ["StreamKeeper", "WORKERS"]

WORKERS = 4
"""Threads that run the keeper's due streams (each up to its next wait)."""


class _Held:
    """A stream the keeper holds, and where it stands."""

    __slots__ = ("stream", "steps", "response", "wake", "hints", "taken", "running",
                 "due_again", "serial", "fd", "watching", "closing")

    def __init__(self, stream: Stream, steps: Steps, response: Response,
                 wake: WakeSocket) -> None:
        self.stream = stream
        self.steps = steps
        self.response = response  # its connection: watched here, ended and closed here
        self.wake = wake
        self.hints: list[str] = []  # drained from the wake socket, for the next step
        self.taken: list[str] = []  # the hints of the step running now
        self.running = False  # a worker runs it now
        self.due_again = False  # became due while running: run again at once
        self.serial = 0  # which heap entry is current (older ones are stale)
        self.fd = wake.fileno()
        self.watching = 0  # the events the keeper watches the connection's socket for
        self.closing = False  # the response ended: close the connection once flushed


class StreamKeeper:
    """The detached streams of one process: one thread waits for all of them, and
    ``workers`` threads run those that are due (module doc)."""

    def __init__(self, workers: int = WORKERS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._commands: deque[tuple[str, _Held, float | threading.Event | None]] = deque()
        self._heap: list[tuple[float, int, int, _Held]] = []  # (deadline, serial, tie, held)
        self._tie = itertools.count()
        self._held: dict[int, _Held] = {}  # by the wake socket's descriptor
        self._due: SimpleQueue[_Held | None] = SimpleQueue()
        self.stopping = False
        self._thread = threading.Thread(target=self._run, name="altws-keeper", daemon=True)
        self._thread.start()
        self._workers = [threading.Thread(target=self._work, name=f"altws-stream-{n}",
                                          daemon=True) for n in range(max(1, workers))]
        for worker in self._workers:
            worker.start()

    @property
    def holding(self) -> int:
        """How many streams the keeper holds now."""
        return len(self._held)

    def adopt(self, stream: Stream, wake: WakeSocket, steps: Steps, wait: float,
              response: Response) -> None:
        """Hold ``stream``, whose loop ``steps`` now waits up to ``wait`` s for ``wake``,
        and its HTTP ``response``, whose connection the keeper watches (the client's
        end; writability while output is buffered) and closes once the loop is over."""
        held = _Held(stream, steps, response, wake)
        response.on_buffered = lambda: self._command("write", held, None)
        self._command("add", held, wait)

    def stop(self) -> None:
        """Stop the keeper's threads (the streams should have ended: ``Streams.shutdown``).
        Its selector and self-pipe stay open: closed while another thread might still
        poke the pipe, their numbers could be reused and the byte written into another
        file."""
        self.stopping = True
        self._poke()
        for _ in self._workers:
            self._due.put(None)

    # -- other threads -> the keeper's thread

    def _command(self, what: str, held: _Held, wait: float | threading.Event | None
                 ) -> None:
        self._commands.append((what, held, wait))
        self._poke()

    def _poke(self) -> None:
        try:
            os.write(self._wake_w, b"!")
        except BlockingIOError:  # the pipe is full: the keeper is awake anyway
            pass

    # -- the keeper's thread

    def _run(self) -> None:
        log = logger("altwebsocket.stream")
        while not self.stopping:
            try:
                self._round()
            except Exception:  # (a bug here must not orphan every stream of the process)
                log.exception("the stream keeper's round failed")
                time.sleep(0.1)

    def _round(self) -> None:
        heap = self._heap
        timeout = None if not heap else max(0.0, heap[0][0] - self.clock())
        for key, events in self._selector.select(timeout):
            if key.data is None:  # the self-pipe
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
                continue
            held, connection = key.data
            if not connection:
                held.hints.extend(held.wake.drain())  # (level-triggered: drained here)
                self._make_due(held)
                continue
            if events & selectors.EVENT_READ and not held.response.read():
                self._close_connection(held)  # the client is gone: its stream ends
                continue
            if events & selectors.EVENT_WRITE:
                if held.response.flush():
                    self._watch_connection(held)
                else:  # the connection failed: its stream ends
                    self._close_connection(held)
        commands = self._commands
        while commands:
            what, held, wait = commands.popleft()
            if what == "add":
                assert isinstance(wait, float)
                self._held[held.fd] = held
                try:
                    self._selector.register(held.fd, selectors.EVENT_READ, (held, False))
                except (KeyError, ValueError, OSError) as exc:  # (a bug: never seen)
                    # held on its deadlines alone: it beats and ends; what a hint would
                    # have brought, the process's poller finds (Streams._poll)
                    logger("altwebsocket.stream").warning("keeper: %s", exc)
                self._watch_connection(held)
                self._schedule(held, wait)
            elif what == "write":  # output waits in its buffer: send it when it can go
                self._watch_connection(held)
            elif what == "close":  # its response ended: close once the buffer is empty
                held.closing = True
                self._watch_connection(held)
            elif what == "drop":  # it is over: out of the selector before its socket closes
                assert isinstance(wait, threading.Event)
                self._drop(held)
                wait.set()
            else:  # "waited": a worker ran it up to its next wait
                assert isinstance(wait, float)
                held.running = False
                if held.due_again or held.hints:
                    held.due_again = False
                    self._make_due(held)
                else:
                    self._schedule(held, wait)
        now = self.clock()
        while heap and heap[0][0] <= now:
            _, serial, _, held = heapq.heappop(heap)
            if serial == held.serial and self._held.get(held.fd) is held:
                self._make_due(held)

    def _schedule(self, held: _Held, wait: float) -> None:
        held.serial += 1
        deadline = self.clock() + wait
        heapq.heappush(self._heap, (deadline, held.serial, next(self._tie), held))

    def _make_due(self, held: _Held) -> None:
        if held.running:
            held.due_again = True
            return
        held.running = True
        held.serial += 1  # its deadline is stale: the step computes the next
        held.taken, held.hints = held.hints, []  # (later hints: for the next step)
        self._due.put(held)

    def _watch_connection(self, held: _Held) -> None:
        """Watch the connection for what it needs now: its end (always), writability
        while output is buffered; closed once its response ended and the buffer is
        empty."""
        response = held.response
        if held.watching < 0:  # closed already
            return
        buffered = response.buffered
        if held.closing and not buffered:
            self._close_connection(held)
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if buffered else 0)
        if events == held.watching:
            return
        try:
            if held.watching:
                self._selector.modify(response.fd, events, (held, True))
            else:
                self._selector.register(response.fd, events, (held, True))
            held.watching = events
        except (KeyError, ValueError, OSError):  # (its socket is closed already)
            self._close_connection(held)

    def _close_connection(self, held: _Held) -> None:
        """Stop watching the connection, then close it (in that order: a closed
        descriptor's number may be reused at once)."""
        if held.watching < 0:
            return
        if held.watching:
            try:
                self._selector.unregister(held.response.fd)
            except (KeyError, ValueError, OSError):
                pass
        held.watching = -1
        try:
            held.response.close()  # (tells the stream if its client left first)
        except Exception:
            logger("altwebsocket.stream").exception("closing a held stream's connection")

    def _drop(self, held: _Held) -> None:
        if self._held.pop(held.fd, None) is not None:
            try:
                self._selector.unregister(held.fd)
            except (KeyError, ValueError, OSError):
                pass

    # -- the workers

    def _work(self) -> None:
        due = self._due
        while True:
            held = due.get()
            if held is None:
                return
            wait: float | None = None
            try:
                wait = held.stream.advance(held.steps, held.taken)
            except Exception:  # (advance ends the loop itself; this is a last resort)
                logger("altwebsocket.stream").exception("a held stream failed")
            if wait is not None:
                self._command("waited", held, wait)
                continue
            # Over. Out of the selector before its wake socket is closed (and the
            # descriptor's number reused): the keeper's thread drops it first; then the
            # stream lets go of the storage and the HTTP response ends.
            dropped = threading.Event()
            self._command("drop", held, dropped)
            dropped.wait(5.0)
            try:
                held.stream.release()
            except Exception:
                logger("altwebsocket.stream").exception("a held stream's release failed")
            finally:
                try:
                    held.response.finish()
                except Exception:  # (the client is gone already)
                    pass
                self._command("close", held, None)
