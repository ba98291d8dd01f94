"""The broadcast log: a broadcast is one row, and each queue numbers it as its own event.

Every queue (a connection's own, or a session's: ``docs/protocol.md``) numbers its events 1,
2, 3… without gaps. An event for one connection (a *direct* event: an echo, the chat
history, a close) is a row of ``aws_events`` with that number. A broadcast to an app is ONE
row of ``aws_broadcasts``, whatever the number of recipients: each queue numbers it when it
is read, so a broadcast costs a fixed number of rows written (``Transaction.enqueue_app``).

The order. Every transaction that queues an event holds the log's clock (the row ``""`` of
``aws_counters``) until it commits: a broadcast moves the clock on by one and takes that
value as its ``pos``; a direct event takes the clock's value as it is (it follows every
broadcast up to it). Each app also counts its broadcasts (its *ordinal*: 1, 2, 3…). So
every event of a queue has a *key*, its place in one total order:

- a broadcast item: ``(pos, 0, created, member)`` — ``member`` the recipient connection
  (in a session, several of its connections may get one broadcast: in the order they were
  created);
- a direct event: ``(pos, 1, event_id)``.

Who gets a broadcast. A connection (a *member* of its queue: the connection itself, or each
connection of a session) gets the broadcasts of its app with an ordinal above
``joined_ord`` (the app's ordinal when it opened) and, once closed, up to ``left_ord``, but
not one whose ``not_for`` names it.

How a queue knows its last id without a row per broadcast. ``last_event`` on the queue's row
counts its events up to a point: its last direct event, or the last event its client
confirmed (:func:`counted_at`); each member's ``counted_ord`` says up to which of its
app's broadcasts that count goes. So the queue's last id is ``last_event`` plus, for each
member, the broadcasts of its app since ``counted_ord`` that it gets (:func:`uncounted`):
two numbers per member, read in one statement, however many broadcasts there were.

Reading (:func:`number`). From an *anchor* — an event whose id and key are known: the last
one read or written (a cache), the latest direct event, or the queue's checkpoint
(``base_event``/``base_pos``/``base_member``: the last event its client saw) — the queue's
direct events and broadcast items after it are merged by key and numbered on. A direct
event's stored id must be the number it is given; it always is, because both come from the
same counts (a test checks it on every engine).

This module is pure: the statements that read and write the rows are in :mod:`.api`.
"""

from __future__ import annotations

from .._lazy import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any

    Key = tuple[Any, ...]

__all__ = ["Member", "direct_key", "item_key", "uncounted", "number", "counted_at", "CLOCK"]

CLOCK = ""
"""The name of the log's clock in ``aws_counters`` (the others are apps' names)."""


class Member:
    """A connection as a recipient of its app's broadcasts, as read with its app's
    broadcast ordinal now (``app_ord``) and how many broadcasts since ``counted`` excluded
    it (``excluded``)."""

    __slots__ = ("id", "app", "open", "joined", "counted", "left", "created", "ref",
                 "app_ord", "excluded")

    def __init__(self, conn_id: str, app: str, is_open: bool, joined: int, counted: int,
                 left: int | None, created: float, ref: str | None, app_ord: int,
                 excluded: int) -> None:
        self.id = conn_id
        self.app = app
        self.open = is_open
        self.joined = joined
        self.counted = counted
        # a connection closed before the log existed (schema version 3) gets none of it
        self.left = left if left is not None or is_open else 0
        self.created = created
        self.ref = ref
        self.app_ord = app_ord
        self.excluded = excluded

    @property
    def upto(self) -> int:
        """The last ordinal of its app it gets (so far)."""
        return self.app_ord if self.left is None else min(self.app_ord, self.left)


def uncounted(members: Iterable[Member]) -> int:
    """How many events of a queue its ``last_event`` does not count yet: the broadcasts its
    members got since their ``counted_ord``."""
    return sum(max(0, member.upto - member.counted - member.excluded) for member in members)


def item_key(pos: int, created: float, member: str) -> Key:
    """The key of the broadcast at ``pos`` as an event for the connection ``member``
    (created at ``created``)."""
    return (pos, 0, created, member)


def direct_key(pos: int, event_id: int) -> Key:
    """The key of the direct event ``event_id``, queued when the clock stood at ``pos``."""
    return (pos, 1, event_id)


def number(anchor_id: int, directs: Sequence[tuple[int, int, bytes, str | None, int]],
           items: Sequence[tuple[Key, int, bytes, str | None, str, int]]
           ) -> list[tuple[int, Key, int, bytes, str | None, str | None, int]]:
    """The events after an anchor (of id ``anchor_id``), numbered on: ``directs`` are the
    queue's direct events after it, ``(event_id, kind, payload, target, pos)`` in id order;
    ``items`` its broadcast items after it, ``(key, kind, payload, target, member,
    ordinal)`` in key order. Returns ``(event_id, key, kind, payload, target, member,
    ordinal)`` in order (``member`` and ``ordinal``: ``None`` and 0 for a direct event).

    A direct event keeps its stored id; one above the number it would get means events
    before it are gone (deleted once seen, in a database from before the log): the
    numbering goes on from it."""
    out: list[tuple[int, Key, int, bytes, str | None, str | None, int]] = []
    last = anchor_id
    n_item, n_items = 0, len(items)
    for event_id, kind, payload, target, pos in directs:
        key = direct_key(pos, event_id)
        while n_item < n_items and items[n_item][0] < key:
            item = items[n_item]
            last += 1
            out.append((last, item[0], item[1], item[2], item[3], item[4], item[5]))
            n_item += 1
        if event_id <= last:
            raise ValueError(f"direct event {event_id} after event {last}: the log and the "
                             "queue's counts disagree")
        last = event_id
        out.append((event_id, key, kind, payload, target, None, 0))
    for item in items[n_item:]:
        last += 1
        out.append((last, item[0], item[1], item[2], item[3], item[4], item[5]))
    return out


def counted_at(members: Sequence[Member], key: Key, app: str, ordinal: int,
               before: dict[str, int]) -> dict[str, int]:
    """The new ``counted_ord`` of the members whose count moves on when their queue's
    count is taken through the broadcast item of ``key`` (the broadcast ``ordinal`` of
    ``app``): each has passed the broadcasts of its app before that item's ``pos``
    (``before``: app → the ordinal of the last of them; one that excluded it is passed too),
    and the members of ``app`` up to that item in its group also that broadcast."""
    moved: dict[str, int] = {}
    for member in members:
        passed = before.get(member.app, 0)
        if member.app == app and (member.created, member.id) <= (key[2], key[3]):
            passed = max(passed, ordinal)
        passed = min(passed, member.upto)
        if passed > member.counted:
            moved[member.id] = passed
    return moved
