"""The rules of one emulated connection, as pure functions and tables.

Rules this module keeps (the rest of the server relies on them):

1. A connection is ``OPEN`` from ``/new`` until it is closed, then ``CLOSED`` for good.
   ``CONNECTING`` and ``CLOSING`` exist only on the client side (see ``static/altwebsocket.js``).
2. Client messages carry ``seq`` 1, 2, 3… A seq already accepted is acknowledged again and not
   delivered; the next one is delivered; one beyond it is refused with ``SeqGap`` (409).
3. Server events carry ids 1, 2, 3… per connection with no gaps. A stream resumes after the
   id the client last saw; a ``Last-Event-ID`` beyond the last assigned id is a 400.
4. Close codes and reasons follow :mod:`.close`.
"""

from __future__ import annotations

from .._lazy import TYPE_CHECKING
from ..exceptions import ConnectionClosed, ProtocolError, SeqGap

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import ClassVar

__all__ = [
    "State",
    "Input",
    "TRANSITIONS",
    "transition",
    "SeqDecision",
    "accept_seqs",
    "check_resume",
]


class State(int):
    """A connection's state, numbered as ``WebSocket.readyState``: ints (``State.OPEN == 1``),
    not an ``enum.IntEnum`` (``enum`` costs a CGI request ~2 ms to import)."""

    __slots__ = ()
    _names: ClassVar[tuple[str, ...]] = ("CONNECTING", "OPEN", "CLOSING", "CLOSED")

    CONNECTING: ClassVar[State]
    OPEN: ClassVar[State]
    CLOSING: ClassVar[State]
    CLOSED: ClassVar[State]

    @property
    def name(self) -> str:
        """The state's name (``"OPEN"``)."""
        return self._names[self] if 0 <= self < len(self._names) else str(int(self))

    def __repr__(self) -> str:
        return f"State.{self.name}"

    __str__ = int.__repr__


for _value, _name in enumerate(State._names):
    setattr(State, _name, State(_value))


class Input(str):
    """What can happen to a connection (its value names it, e.g. ``"message"``)."""

    __slots__ = ()

    MESSAGE: ClassVar[Input]  # the client sends a message
    STREAM: ClassVar[Input]  # the client opens the event stream
    CLIENT_CLOSE: ClassVar[Input]  # the client asks to close
    SERVER_CLOSE: ClassVar[Input]  # the handler closes
    GONE: ClassVar[Input]  # no stream and no request for too long

    @property
    def value(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"Input.{self.value.upper()}"


for _name in ("MESSAGE", "STREAM", "CLIENT_CLOSE", "SERVER_CLOSE", "GONE"):
    setattr(Input, _name, Input(_name.lower()))


TRANSITIONS: dict[tuple[State, Input], State] = {
    (State.OPEN, Input.MESSAGE): State.OPEN,
    (State.OPEN, Input.STREAM): State.OPEN,
    (State.OPEN, Input.CLIENT_CLOSE): State.CLOSED,
    (State.OPEN, Input.SERVER_CLOSE): State.CLOSED,
    (State.OPEN, Input.GONE): State.CLOSED,
    # A closed connection's stream still delivers the events before the close event.
    (State.CLOSED, Input.STREAM): State.CLOSED,
}


def transition(state: State, event: Input) -> State:
    """The state after ``event``, or :class:`ConnectionClosed` (410) if it is not allowed."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise ConnectionClosed(f"the connection is closed ({event.value} not allowed)") from None


class SeqDecision:
    """What to do with a batch of seqs: deliver ``deliver_from`` on, and acknowledge ``ack``."""

    __slots__ = ("deliver_from", "ack")

    def __init__(self, deliver_from: int, ack: int) -> None:
        self.deliver_from = deliver_from  # index of the first message to deliver
        self.ack = ack  # the highest seq accepted after this batch

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SeqDecision) and (self.deliver_from, self.ack) == (
            other.deliver_from, other.ack)

    def __repr__(self) -> str:
        return f"SeqDecision(deliver_from={self.deliver_from}, ack={self.ack})"


def accept_seqs(last_accepted: int, seqs: Sequence[int]) -> SeqDecision:
    """Apply rule 2 to consecutive ``seqs`` given the last accepted seq of the connection."""
    if not seqs:
        return SeqDecision(0, last_accepted)
    if seqs[0] > last_accepted + 1:
        raise SeqGap(expected=last_accepted + 1)
    skip = max(0, last_accepted + 1 - seqs[0])
    return SeqDecision(min(skip, len(seqs)), max(last_accepted, seqs[-1]))


def check_resume(last_event_id: int, last_assigned: int) -> int:
    """Apply rule 3: the id to stream after, or a 400 when the client claims unseen events."""
    if last_event_id > last_assigned:
        raise ProtocolError(
            f"Last-Event-ID {last_event_id} is beyond the last event {last_assigned}"
        )
    return last_event_id
