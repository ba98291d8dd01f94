"""When an event stream checks for events, sends a heartbeat, or ends: a pure schedule.

The stream loop (``transports/http/stream.py``) asks :meth:`StreamSchedule.next` what to do
at the time it reads from its clock, and waits for the returned timeout. Nothing here reads a
clock, so the schedule is tested without sleeping.
"""

from __future__ import annotations

__all__ = ["StreamSchedule", "END", "BEAT", "WAIT"]

END = "end"  # the stream's lifetime is over (the client resumes with Last-Event-ID)
BEAT = "beat"  # time for a heartbeat comment (and the stream's bookkeeping)
WAIT = "wait"  # wait for a wake-up hint, at most the returned timeout


class StreamSchedule:
    """The deadlines of one stream, started at ``start``.

    Args:
        start: the time the stream started.
        lifetime: how long it lives, in seconds.
        heartbeat: seconds between heartbeats.
        poll_interval: the longest wait between two looks at the storage.
    """

    __slots__ = ("deadline", "next_beat", "heartbeat", "poll_interval")

    def __init__(self, start: float, lifetime: float, heartbeat: float,
                 poll_interval: float) -> None:
        self.deadline = start + lifetime
        self.next_beat = start + heartbeat
        self.heartbeat = heartbeat
        self.poll_interval = poll_interval

    def next(self, now: float, stopping: bool = False) -> tuple[str, float]:
        """What to do at ``now``: ``(END, 0)``, ``(BEAT, 0)`` (the next beat is then
        scheduled) or ``(WAIT, seconds)``. A stopping server ends every stream."""
        if now >= self.deadline or stopping:
            return END, 0.0
        if now >= self.next_beat:
            self.next_beat = now + self.heartbeat
            return BEAT, 0.0
        return WAIT, min(self.deadline, self.next_beat, now + self.poll_interval) - now
