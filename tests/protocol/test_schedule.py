"""The stream's schedule: when to check, beat and end, given the time (no sleeping)."""

from __future__ import annotations

import pytest

from altwebsocket.protocol.schedule import BEAT, END, WAIT, StreamSchedule


def test_a_stream_waits_beats_and_ends_on_time() -> None:
    schedule = StreamSchedule(start=100.0, lifetime=30, heartbeat=10, poll_interval=2)
    assert schedule.next(100.0) == (WAIT, 2)  # the poll interval bounds every wait
    assert schedule.next(109.5) == (WAIT, pytest.approx(0.5))  # until the beat
    assert schedule.next(110.0) == (BEAT, 0)
    assert schedule.next(110.0) == (WAIT, 2)  # the next beat is at 120
    assert schedule.next(119.0) == (WAIT, 1)
    assert schedule.next(129.5) == (BEAT, 0)  # a late beat: the next is 10 s after it
    assert schedule.next(129.6) == (WAIT, pytest.approx(0.4))  # ...but the end comes first
    assert schedule.next(130.0) == (END, 0)


def test_a_stopping_server_ends_the_stream_at_once() -> None:
    schedule = StreamSchedule(start=0.0, lifetime=30, heartbeat=10, poll_interval=2)
    assert schedule.next(1.0, stopping=True) == (END, 0)


def test_a_poll_interval_longer_than_the_heartbeat_still_beats() -> None:
    schedule = StreamSchedule(start=0.0, lifetime=100, heartbeat=5, poll_interval=60)
    assert schedule.next(0.0) == (WAIT, 5)
