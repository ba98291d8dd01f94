"""The SSE body of ``GET B/?id=…&token=…`` (one connection's events, wire version 1) and of
``GET S/`` (a session's events, version 2), as they are queued.

:func:`open_stream` and :func:`open_session_stream` check the request (the secret, the resume
point, the host's stream slots) and return an :class:`EventStream`; :class:`Streams` counts
this process's streams so a server shutting down can end them. The loop's deadlines come
from the pure :class:`~altwebsocket.protocol.schedule.StreamSchedule`, fed by an injected
monotonic clock.

A stream registers with the server (:meth:`~altwebsocket.server.AltWebSocketServer.hold_stream`)
while it waits: an operation of this process that queued events for it hands them over after
its commit (:meth:`EventStream.offer`), so the stream writes them without reading them back,
and the operation answers its client once they are out. Handed events are used only when they
follow the stream's cursor without a gap; else (events of other processes in between, or
too many waiting) the stream reads the storage, which stays the truth.

On a WSGI server whose ``write`` callable may be called from any thread (waitress, which
``altws serve`` runs; :attr:`EventStream.writer`), the operation of the stream's own client
writes the events onto the stream itself, when the stream is not writing at that moment:
no thread switch between the commit and the bytes on the wire. Events for other clients'
streams (a broadcast) are written by the process's one fan-out thread
(:meth:`Streams.write_soon`), never by the operation's own thread (a client that does not
read blocks only its own stream and its own requests): a broadcast to a thousand streams
wakes one thread, not a thousand. Without such a ``write`` (and when the fan-out thread
finds a stream busy) the stream's driver writes what it was handed.

A stream's loop (:meth:`EventStream._events`) yields where it waits instead of waiting, so
two drivers run it: the request's thread, which waits on the stream's wake socket (any WSGI
server), or — under ``altws serve``, whose waitress lets a response outlive its request's
thread — the process's :class:`~.keeper.StreamKeeper`, which holds thousands of streams on
a few threads (:meth:`EventStream.run_detached`). "The stream's own thread" below is
whichever drives it.
"""

from __future__ import annotations

import time
from _thread import allocate_lock
from collections import deque

from ..._lazy import TYPE_CHECKING, logger
from ...exceptions import AltWebSocketError, Forbidden, UnknownConnection
from ...protocol import crowd
from ...protocol import messages as wire
from ...protocol.schedule import BEAT, END, StreamSchedule
from ...protocol.session import SESSION_APP, session_event_for
from ...protocol.sse import encode_comment, encode_retry
from ...protocol.state import Input, State, check_resume, transition
from ...server import LocalStream
from ...storage import EVENT_PAGE
from ...storage.wake import (
    POKE,
    WakeSocket,
    count_streams,
    mark_polling,
    polling_ages,
    send_hints,
    unmark_polling,
)
from .auth import token_matches

if TYPE_CHECKING:
    import threading
    from _thread import LockType
    from collections.abc import Generator, Iterator, Sequence
    from typing import Callable

    from ...protocol.sse import ServerSentEvent
    from ...server import AltWebSocketServer
    from ...storage import ConnectionRecord
    from ...storage.api import StoredEvent
    from .keeper import Response, StreamKeeper

__all__ = ["Streams", "EventStream", "open_stream", "open_session_stream"]

HANDED_MAX = 64
"""Batches of handed events a stream holds at most; more, and it reads the storage."""

POLL_PAGES = 5
"""Pages of events a poll answers with at most (the client comes back at once for more)."""


def _following(events: list[StoredEvent], after: int) -> list[StoredEvent] | None:
    """The events with ids above ``after``, if they follow it without a gap (ids after+1,
    after+2, …); ``None`` if one is missing (it is in the storage, not here)."""
    fresh = [event for event in events if event[0] > after]
    if any(event[0] != after + 1 + n for n, event in enumerate(fresh)):
        return None
    return fresh


def _v1_event(event: StoredEvent) -> ServerSentEvent:
    return wire.event_for(event[0], event[1], event[2])


def _v1_final(event: StoredEvent) -> bool:
    return event[1] == wire.CLOSE


def _v2_event(event: StoredEvent) -> ServerSentEvent:
    return session_event_for(*event)


def _v2_final(event: StoredEvent) -> bool:
    return event[1] == wire.CLOSE and event[3] is None  # the session's own end


class Streams:
    """The streams this process serves: how many, and whether they should end now; and the
    one thread that writes, for the streams that write directly (:attr:`EventStream.writer`),
    the events handed to them by operations of other clients (a broadcast): one thread
    writes them all, rather than each stream's own thread waking to write its own."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.stopping = False
        # the wake sockets of the open streams, and the streams (None: counted only)
        self._waiting: dict[WakeSocket, EventStream | None] = {}
        self._lock = allocate_lock()
        self.poller_thread: threading.Thread | None = None  # started by the first add()
        self._to_write: deque[EventStream] = deque()  # streams with handed events to write
        self._writer_wake = allocate_lock()  # released when _to_write has something
        self._writer_wake.acquire()
        self.fanout_thread: threading.Thread | None = None  # started by the first write_soon
        self._keeper: StreamKeeper | None = None  # started by the first keeper()

    def write_soon(self, stream: EventStream) -> None:
        """Have the fan-out thread write what was handed to ``stream`` (its own thread
        does when the fan-out thread cannot: it is writing, or a gap needs a read)."""
        self._to_write.append(stream)
        if self.fanout_thread is None:
            with self._lock:
                if self.fanout_thread is None:
                    import threading  # (only a stream needs it: not a CGI /send)

                    thread = threading.Thread(target=self._write_handed, name="altws-fanout",
                                              daemon=True)
                    thread.start()
                    self.fanout_thread = thread
        if self._writer_wake.locked():
            try:
                self._writer_wake.release()
            except RuntimeError:  # released by another thread just now
                pass

    def _write_handed(self) -> None:
        pending = self._to_write
        while True:
            self._writer_wake.acquire()
            while pending:
                stream = pending.popleft()
                try:
                    written = stream._write_now(b"")
                except Exception:  # (a stream that went away: its own thread ends it)
                    written = False
                if not written:
                    stream.poke()

    def keeper(self) -> StreamKeeper:
        """The process's keeper of detached streams (:mod:`.keeper`), started at the first
        call."""
        keeper = self._keeper
        if keeper is None:
            with self._lock:
                keeper = self._keeper
                if keeper is None:
                    from .keeper import StreamKeeper  # (only altws serve detaches streams)

                    keeper = self._keeper = StreamKeeper()
        return keeper

    @property
    def active(self) -> int:
        """How many streams are open."""
        return len(self._waiting)

    def add(self, wake: WakeSocket, stream: EventStream | None = None) -> None:
        """Count in a stream that waits on ``wake`` (and, given the stream, have the
        process's poller look after it: :meth:`_poll`)."""
        with self._lock:
            self._waiting[wake] = stream
            if stream is not None and self.poller_thread is None:
                import threading  # (only a stream needs it: not a CGI /send)

                thread = threading.Thread(target=self._poll, args=(stream.server,),
                                          name="altws-poller", daemon=True)
                thread.start()
                self.poller_thread = thread

    def _poll(self, server: AltWebSocketServer) -> None:
        """The fallback for a lost wake-up hint, once for all the streams of this process:
        every ``poll_interval`` one read of where each stream's connection stands (its last
        event id); a stream that is behind it two rounds running — with no event handed to
        it that would catch it up — is sent a hint, and reads the storage (so a lost hint
        costs at most two ``poll_interval`` s). (Hints are datagrams: one may be lost, or
        never sent — a writer that died after its commit, a host that cannot reach this
        one's sockets.) A round that fails (the storage is down) is tried again at the
        next: the thread does not stop while the process serves streams."""
        settings = server.settings
        interval = min(settings.poll_interval, settings.heartbeat)
        touched = time.monotonic()
        behind: dict[EventStream, int] = {}  # behind at the last round: the id to reach
        while not self.stopping:
            time.sleep(interval)
            try:
                held = [stream for stream in list(self._waiting.values())
                        if stream is not None and stream._wake is not None]
                if not held:
                    continue
                if time.monotonic() - touched >= settings.heartbeat:
                    touched = time.monotonic()
                    self._touch(server, held)
                last = server.storage.last_events([stream.record.id for stream in held])
                hints: dict[str, list[str]] = {}
                seen_behind, behind = behind, {}
                for stream in held:
                    wake, upto = stream._wake, max(stream.cursor, stream.handed_upto)
                    if wake is None or last.get(stream.record.id, 0) <= upto:
                        continue
                    behind[stream] = last[stream.record.id]
                    # Behind now, and still short of where it stood a round ago: not a
                    # broadcast being handed out as this round read (that would be a
                    # thousand needless reads at once), a hint that never came.
                    if seen_behind.get(stream, 0) > upto:
                        hints[wake.address] = [stream.record.id]
                if hints:
                    send_hints(hints)
            except Exception as exc:  # (the storage is down: the next round tries again)
                logger("altwebsocket.stream").debug("the streams' poll failed: %s", exc)

    @staticmethod
    def _touch(server: AltWebSocketServer, held: list[EventStream]) -> None:
        """Record, for every stream of this process in one transaction, that it lives (so
        its connection never counts as gone, ``gone_timeout``) and how far it got
        (``max_events_queued``): once a heartbeat for all, rather than a write transaction
        per stream per heartbeat, a thousand of them queued on the database's one write
        lock. (A stream released while this runs is not named its connection's waker
        again: :meth:`~altwebsocket.storage.api.Transaction.touch_streams`.)"""
        touches = [(stream.record.id, wake.address, stream.cursor)
                   for stream in held if (wake := stream._wake) is not None]
        with server.storage.transaction() as tx:
            tx.touch_streams(touches)

    def remove(self, wake: WakeSocket) -> None:
        """Count out the stream of ``wake``."""
        with self._lock:
            self._waiting.pop(wake, None)

    def shutdown(self, timeout: float = 2.0) -> None:
        """End every open stream of this process (their clients resume with
        ``Last-Event-ID``) and wait up to ``timeout`` s for them to let go of the storage."""
        self.stopping = True
        with self._lock:
            waiting = list(self._waiting)
        for wake in waiting:  # at once, not at their next poll
            wake.poke()
        deadline = time.monotonic() + timeout
        while self.active and time.monotonic() < deadline:
            time.sleep(0.02)
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.stop()


def open_stream(server: AltWebSocketServer, streams: Streams, app: str, conn_id: str,
                token: str, last_event_id: int) -> EventStream | None:
    """The event stream of a connection, or ``None`` when there is nothing more to send
    (closed, and the client saw the close event: answered 204)."""
    server.handler(app)
    return _open(server, streams, app, conn_id, token, last_event_id, "connection")


def open_session_stream(server: AltWebSocketServer, streams: Streams, session_id: str,
                        secret: str, last_event_id: int) -> EventStream | None:
    """The event stream of a session (version 2), or ``None`` when the session is over and
    the client saw its last event (answered 204)."""
    return _open(server, streams, SESSION_APP, session_id, secret, last_event_id, "session")


def _open(server: AltWebSocketServer, streams: Streams, app: str, conn_id: str, token: str,
          last_event_id: int, what: str) -> EventStream | None:
    record = server.storage.connection(conn_id)
    if record is None or record.app != app:
        raise UnknownConnection(f"no such {what}")
    if not token_matches(record, token):
        raise Forbidden(f"wrong token for this {what}")
    transition(record.state, Input.STREAM)
    last = server.storage.last_events([record.id]).get(record.id, record.last_event)
    after = check_resume(last_event_id, last)
    if record.state == State.CLOSED and after >= last:
        return None
    limit = server.settings.max_streams
    crowded = count_streams(server.wake_dir) >= limit and \
        count_streams(server.wake_dir, clean=True) >= limit
    if app == SESSION_APP:
        return EventStream(server, streams, record, after, _v2_event, _v2_final, poll=crowded)
    return EventStream(server, streams, record, after, poll=crowded)


# (wake folder, crowd_poll, crowd_rate, gone_timeout) -> (when counted, the crowd)
_CROWD_SEEN: dict[tuple[str, float, float, float], tuple[float, tuple[int, float]]] = {}
CROWD_FRESH = 0.5
"""Seconds a process reuses its last count of the crowd (the held streams of one ``altws
serve`` all look at it once a second: one folder listing between them, not one each)."""


def crowd_now(server: AltWebSocketServer) -> tuple[int, float]:
    """How many clients poll now, and the seconds each waits before it comes back
    (:mod:`~altwebsocket.protocol.crowd`)."""
    settings, now = server.settings, time.monotonic()
    key = (server.wake_dir, settings.crowd_poll, settings.crowd_rate, settings.gone_timeout)
    seen = _CROWD_SEEN.get(key)
    if seen is not None and now - seen[0] < CROWD_FRESH:
        return seen[1]
    found = _count_crowd(server)
    _CROWD_SEEN[key] = (now, found)
    return found


def _count_crowd(server: AltWebSocketServer) -> tuple[int, float]:
    settings = server.settings
    ceiling = max(settings.crowd_poll, settings.gone_timeout / 4)

    def delay(pollers: int) -> float:
        return crowd.poll_delay(pollers, settings.crowd_poll, settings.crowd_rate, ceiling)

    ages = polling_ages(server.wake_dir, crowd.poll_horizon(ceiling))
    horizon = crowd.poll_horizon(delay(len(ages)))  # those who poll at that pace
    pollers = sum(1 for age in ages if age <= horizon)
    return pollers, delay(max(1, pollers))


class EventStream(LocalStream):
    """The SSE body of one connection: an iterator of byte chunks, one per write.

    :meth:`start` registers the stream in the storage (so a storage failure is still a clean
    503 before any byte is sent); iterating starts it if needed. The body starts with a
    ``retry:`` line and a comment (so proxies and ``wsgiref`` send the headers at once),
    sends the events after the resume point as they are queued, a comment every
    ``heartbeat`` seconds, and ends after the close event, after ``stream_lifetime``, or
    when the storage fails (the client resumes with ``Last-Event-ID``).
    """

    def __init__(self, server: AltWebSocketServer, streams: Streams, record: ConnectionRecord,
                 after: int, encode: Callable[[StoredEvent], ServerSentEvent] = _v1_event,
                 final: Callable[[StoredEvent], bool] = _v1_final, poll: bool = False
                 ) -> None:
        self.server = server
        # the slots are taken: answer at once with what waits, and a retry: (a poll)
        self.poll = poll
        self.encode = encode  # a stored event as the SSE event of this wire version
        self.final = final  # whether an event is the stream's last (its owner closed)
        self.streams = streams
        self.record = record
        self.cursor = after
        self.closed = False
        self._report_every = max(1, server.settings.max_events_queued // 4)
        self._wake: WakeSocket | None = None
        self._iterating = False
        # the WSGI ``write`` callable when the server allows it from any thread (then every
        # chunk goes through it, under _writing); None: chunks are yielded
        self.writer: Callable[[bytes], object] | None = None
        self._writing = allocate_lock()  # held while chunks are made and written
        self._started_writing = False  # the first chunk (and so the headers) is out
        self._holding = 0  # requests of this stream's client under way (hold())
        self._hold_lock = allocate_lock()
        # events handed over by this process's operations, with the locks they wait on,
        # and chunks of the transport's own to write after them (see say())
        self._handed: deque[tuple[list[StoredEvent] | bytes, LockType | None]] = deque()
        self._polled = False  # start() of a poll is done
        self.handed_upto = 0  # the last event id handed over (written, or about to be)

    def start(self) -> None:
        """Bind the wake-up socket, record it as the connection's waker, and discard the
        events the client has seen (raises :class:`StorageUnavailable` on failure)."""
        if self._wake is not None or self._polled:
            return
        storage = self.server.storage
        if self.poll:
            storage.discard_events(self.record.id, self.cursor)
            mark_polling(self.server.wake_dir, self.record.id)
            self._polled = True
            return
        unmark_polling(self.server.wake_dir, self.record.id)
        storage.listen()  # hints from other hosts too (PostgreSQL)
        wake = WakeSocket(self.server.wake_dir)
        self.server.hold_stream(wake.address, self)
        try:
            with storage.transaction() as tx:  # (one write: a thousand streams open at once)
                tx.set_waker(self.record.id, wake.address, self.cursor)
                tx.discard(self.record.id, self.cursor)
        except BaseException:
            self.server.hold_stream(wake.address, None)
            wake.close()
            raise
        self._wake = wake
        self.streams.add(wake, self)

    def offer(self, events: list[StoredEvent], own: bool = False,
              queues: Sequence[str] = ()) -> LockType | bool:
        """Take events committed for this stream by an operation of this process (called
        from its thread); the returned lock is released once they are written out (see
        :meth:`.LocalStream.offer`). With ``own`` (the operation serves this stream's
        client), they are written at once by the caller when the stream can
        (:attr:`writer`)."""
        wake = self._wake
        if wake is None or self.closed:
            return False
        if events:
            self.handed_upto = max(self.handed_upto, events[-1][0])
        if own and self._holding and len(self._handed) < HANDED_MAX:
            self._handed.append((events, None))  # out with the request's answer (say())
            return True
        if own and self._write_now(events):
            return True
        if len(self._handed) >= HANDED_MAX:  # not reading: it will read the storage
            return False
        written = allocate_lock()
        written.acquire()
        self._handed.append((events, written))
        if self.writer is not None and self._started_writing:
            self.streams.write_soon(self)  # one thread writes a broadcast's streams
        else:
            wake.poke()
        return written

    def poke(self) -> None:
        """Wake this stream's own thread to write what was handed to it."""
        wake = self._wake
        if wake is not None:
            wake.poke()

    def _write_now(self, item: list[StoredEvent] | bytes) -> bool:
        """Write what was handed and ``item`` (events, or a chunk said) in this thread, as
        one chunk, if the stream writes directly, is not writing now, and the events follow
        its cursor."""
        writer, wake = self.writer, self._wake
        if writer is None or wake is None or not self._started_writing or \
                not self._writing.acquire(False):
            return False
        try:
            # Entries are taken from the left only under _writing (here, or the stream's
            # thread in _pending); other threads only append on the right meanwhile.
            handed = self._handed
            count = len(handed)
            entries = [handed[n] for n in range(count)] + [(item, None)]
            events = [event for one, _ in entries if not isinstance(one, bytes)
                      for event in one]
            fresh = _following(events, self.cursor)
            if fresh is None:
                return False  # a gap: the stream's thread reads the storage
            for _ in range(count):
                handed.popleft()
            chunk = self._write(fresh, wake, self._report_every) if fresh else b""
            chunk += b"".join(one for one, _ in entries if isinstance(one, bytes))
            try:
                if chunk:
                    writer(chunk)
            except Exception:  # the client went away: the stream's own thread ends it
                self.closed = True
                wake.poke()
            finally:
                for _, lock in entries:
                    if lock is not None:
                        lock.release()
            if self.closed:  # its last event is out: the stream's own thread ends it now
                wake.poke()
            return True
        finally:
            self._writing.release()

    def hold(self) -> None:
        """A request of this stream's client starts: the events it queues for this stream
        wait for its :meth:`say` or its :meth:`unhold`, and go out with it in one write."""
        with self._hold_lock:
            self._holding += 1

    def unhold(self) -> None:
        """The request of :meth:`hold` ends: what it queued and did not say goes out now."""
        with self._hold_lock:
            self._holding = max(0, self._holding - 1)
        if self._handed and not self._write_now(b"") and self._wake is not None:
            self._wake.poke()

    def say(self, chunk: bytes) -> bool:
        """Write ``chunk`` (encoded events of no connection, e.g. a copy of a POST's answer)
        after every event handed or committed so far — in the calling thread when the
        stream writes directly and can; ``False`` if the stream cannot take it now."""
        wake = self._wake
        if wake is None or self.closed:
            return False
        if self._write_now(chunk):
            return True
        if len(self._handed) >= HANDED_MAX:
            return False
        self._handed.append((chunk, None))
        wake.poke()
        return True

    def _take_handed(self) -> tuple[list[list[StoredEvent] | bytes], list[LockType]]:
        """What was handed over and said since the last look, in order, and the locks to
        release once it is out."""
        items: list[list[StoredEvent] | bytes] = []
        locks: list[LockType] = []
        handed = self._handed
        while handed:
            item, lock = handed.popleft()
            items.append(item)
            if lock is not None:
                locks.append(lock)
        return items, locks

    def abandon(self) -> None:
        """Undo :meth:`start` for a stream whose body was never iterated."""
        wake, self._wake = self._wake, None
        if wake is not None and not self._iterating:
            self._release(wake)

    def __iter__(self) -> Iterator[bytes]:
        self.start()
        if self.poll:
            yield self._poll_once()
            return
        self._iterating = True
        wake = self._wake
        assert wake is not None
        try:
            steps = self._events(wake)
            if self.writer is not None:  # every chunk written by advance(), none yielded
                wait = self.advance(steps, None)
                while wait is not None:  # this thread waits for the stream's hints
                    wait = self.advance(steps, wake.wait(wait))
                return
            hints: list[str] | None = None
            while True:
                try:
                    step = steps.send(hints)
                except StopIteration:
                    return
                if isinstance(step, float):
                    hints = wake.wait(step)
                else:
                    hints = None
                    yield step
        except AltWebSocketError as exc:  # the storage failed: end; the client resumes
            self._ended_early(exc)
        finally:
            self._release(wake)

    def advance(self, steps: Generator[bytes | float, list[str] | None, None],
                hints: list[str] | None) -> float | None:
        """Run the stream's loop ``steps`` (:meth:`_events`), sent ``hints`` (``None`` at
        its start), writing its chunks with :attr:`writer`, up to its next wait: returns the
        seconds it waits at most for its wake socket, or ``None`` when the stream is over
        (its last event written, its lifetime up, the storage failed or the client gone;
        :meth:`release` then lets go of it)."""
        writer = self.writer
        assert writer is not None, "advance() writes: a stream with a writer"
        try:
            step = steps.send(hints)
            while not isinstance(step, float):
                try:
                    writer(step)
                except Exception as exc:  # the write failed: the client went away
                    logger("altwebsocket.stream").debug("stream of %s: client gone (%s)",
                                                        self.record.id, exc)
                    break
                self._started_writing = True
                step = steps.send(None)
            else:
                return step
        except StopIteration:
            pass
        except AltWebSocketError as exc:
            self._ended_early(exc)
        self.closed = True
        steps.close()
        return None

    def run_detached(self, keeper: StreamKeeper,
                     detach: Callable[[Callable[[], None]], Response]) -> bool:
        """Start the stream in the calling (request's) thread — headers, first chunk, what
        waits — then hand it to ``keeper`` (:mod:`.keeper`), which holds it without a thread
        of its own. ``detach(gone)`` tells the HTTP server the response goes on after the
        request's thread returns (``gone`` is called if the client disconnects), and
        returns the response, whose connection the keeper then watches, ends and closes.
        ``False``: the stream was over before it needed to wait, and the request's thread
        ends the response as usual."""
        self.start()
        self._iterating = True
        wake = self._wake
        assert wake is not None and not self.poll
        steps = self._events(wake)
        wait = self.advance(steps, None)
        if wait is None:
            self.release()
            return False
        keeper.adopt(self, wake, steps, wait, detach(self.gone))
        return True

    def gone(self) -> None:
        """The client disconnected (the HTTP server saw it): end the stream at its next
        step rather than at its next write (a heartbeat away)."""
        self.closed = True
        self.poke()

    def release(self) -> None:
        """Let go of a stream whose loop is over (:meth:`advance` returned ``None``): the
        storage no longer names it the connection's waker, its wake socket is closed."""
        wake, self._wake = self._wake, None
        if wake is not None:
            self._release(wake)

    def _ended_early(self, exc: AltWebSocketError) -> None:
        logger("altwebsocket.stream").warning(
            "stream of %s ended early: %s", self.record.id, exc.message)

    def _pending(self, wake: WakeSocket, report_every: int, read: bool) -> Iterator[bytes]:
        """The events queued since the cursor, one chunk per page: with ``read`` (a hint
        from elsewhere, or a poll) those in the storage first; then what was handed over
        and said, in order. Handed events that do not follow the cursor (events of
        elsewhere in between) are read from the storage instead. Records every
        ``report_every`` events how far the stream got (so a reading client never counts
        as one that does not read, ``max_events_queued``)."""
        items, locks = self._take_handed()
        try:
            if read:
                yield from self._read_storage(wake, report_every)
            run: list[StoredEvent] = []  # handed events that follow the cursor: one chunk
            for item in items + [b""]:
                if isinstance(item, bytes):  # said: after everything before it
                    if run and not self.closed:
                        yield self._write(run, wake, report_every)
                        run = []
                    if item and not self.closed:
                        yield item
                    continue
                fresh = _following(item, run[-1][0] if run else self.cursor)
                if fresh is not None:
                    run += fresh  # (nothing fresh: read from the storage already)
                    continue
                if run and not self.closed:  # a gap: what came in between is in the storage
                    yield self._write(run, wake, report_every)
                    run = []
                yield from self._read_storage(wake, report_every)
        finally:
            for lock in locks:
                lock.release()

    def _poll_once(self) -> bytes:
        """The whole answer to a poll: the ``retry:`` for the crowd, then the events that
        wait (a few pages; with more left, the client comes back at once)."""
        server, conn_id = self.server, self.record.id
        delay = crowd_now(server)[1]
        events: list[StoredEvent] = []
        for _ in range(POLL_PAGES):
            page = server.storage.events_after(conn_id, events[-1][0] if events else self.cursor)
            events += page
            if len(page) < EVENT_PAGE:
                break
        else:
            delay = 0.0
        if events:
            self.cursor = events[-1][0]
        with server.storage.transaction() as tx:  # seen now, and how far it got
            record = tx.connection(conn_id)
            tx.set_waker(conn_id, record.waker if record else None, self.cursor)
        chunk = encode_retry(int(delay * 1000)) + encode_comment(f"altws poll {delay:g}")
        return chunk + b"".join(self.encode(event).encode() for event in events)

    def _read_storage(self, wake: WakeSocket, report_every: int) -> Iterator[bytes]:
        storage, conn_id = self.server.storage, self.record.id
        while not self.closed:
            events = storage.events_after(conn_id, self.cursor)
            if events:
                yield self._write(events, wake, report_every)
            if len(events) < EVENT_PAGE:
                return

    def _write(self, events: list[StoredEvent], wake: WakeSocket, report_every: int
               ) -> bytes:
        """The chunk of ``events`` (in order, after the cursor); moves the cursor."""
        reported = self.cursor
        self.cursor = events[-1][0]
        if self.cursor // report_every != reported // report_every:
            # (a write stuck below holds one chunk) Only while this stream is the waker: a
            # newer stream of the connection, elsewhere, keeps its hints (touch_streams).
            with self.server.storage.transaction() as tx:
                tx.touch_streams([(self.record.id, wake.address, self.cursor)])
        if any(self.final(event) for event in events):
            self.closed = True
        return b"".join(self.encode(event).encode() for event in events)

    def _events(self, wake: WakeSocket) -> Generator[bytes | float, list[str] | None, None]:
        """The stream's life: yields the chunks to write, in order, and — where it waits —
        the seconds to wait for its wake socket at most, to be sent back the hints that came
        meanwhile (``[]``: none). Whoever drives it waits: the stream's own thread
        (:meth:`__iter__`) or a :class:`StreamKeeper`, which waits for many at once."""
        server, settings = self.server, self.server.settings
        streams = self.streams
        report_every = self._report_every
        yield encode_retry(settings.retry_ms) + encode_comment("altws")
        # It waits for its wake socket; without a hint it wakes only to beat (and to look
        # at the crowd when it may give its slot up): a thousand streams that woke every
        # second would keep a thousand threads asking for the GIL (the process's poller
        # looks for lost hints for all of them, Streams._poll).
        bound = settings.heartbeat if settings.share_after <= 0 else \
            min(settings.heartbeat, max(1.0, settings.share_after))
        schedule = StreamSchedule(streams.clock(), settings.stream_lifetime,
                                  settings.heartbeat, bound)
        check, read = True, True  # something to write; from the storage too
        started = streams.clock()
        share_check = started + settings.share_after  # (0: never; see crowd.gives_up)
        while True:
            if check:
                with self._writing:  # (direct writes wait; with a writer: until written)
                    yield from self._pending(wake, report_every, read)
            if self.closed:  # (its last event written here, or by a direct write)
                return
            now = streams.clock()
            action, timeout = schedule.next(now, streams.stopping)
            if action == END:
                return
            if settings.share_after > 0 and now >= share_check:
                share_check = now + 1.0  # (a look at the crowd a second at most)
                pollers, delay = crowd_now(server)
                if crowd.gives_up(now - started, settings.share_after, pollers):
                    with self._writing:  # the slot goes to a poller; this client polls next
                        yield encode_retry(int(delay * 1000)) + encode_comment("altws share")
                    return
            if action == BEAT:  # (the process's poller records that the stream lives,
                with self._writing:  # and finds what a lost hint did not bring)
                    yield encode_comment()
                server.maybe_sweep()
                check = read = False
                continue
            hints = (yield float(timeout)) or []
            # only pokes: what was handed over; a hint: the storage too. Nothing: nothing
            # new (a lost hint is found by the process's poller, Streams._poll)
            check = bool(hints)
            read = any(hint != POKE for hint in hints)

    def _release(self, wake: WakeSocket) -> None:
        self.server.hold_stream(wake.address, None)
        while self._handed:  # nobody waits for what will not be written
            lock = self._handed.popleft()[1]
            if lock is not None:
                lock.release()
        try:
            with self.server.storage.transaction() as tx:
                record = tx.connection(self.record.id)
                if record is not None and record.waker == wake.address:
                    tx.set_waker(self.record.id, None, self.cursor)
        except Exception as exc:  # the process may be going down; the sweep will notice
            logger("altwebsocket.stream").debug(
                "could not release the stream of %s: %s", self.record.id, exc)
        finally:
            wake.close()
            self.streams.remove(wake)
