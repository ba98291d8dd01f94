"""When the stream slots are all taken: how often the crowd polls, and when a held stream
gives its slot up. A pure policy (no clock, no files); the stream transport
(``transports/http/stream.py``) counts the pollers and applies it.

A host allows ``max_streams`` streams held at once (on a shared host each one is a whole
process). A client that asks for a stream beyond is not refused: it is answered at once with
the events waiting for it and a ``retry:`` that brings it back — it polls. So that the polls
of a growing crowd do not cost the host more than it can give, the pollers together make
about ``rate`` requests a second: each one comes back after ``pollers / rate`` seconds, but
never sooner than ``floor`` (the latency a small crowd sees) nor later than ``ceiling`` (well
within ``gone_timeout``, so a polling client never counts as gone). And so that the lucky
ones do not keep the slots for ever, a stream held for ``share_after`` seconds ends when
others poll; its client comes back as a poller, and the next poller to come finds the slot.
docs/deploy-shared-hosting.md gives the latency each client sees as the crowd grows.
"""

from __future__ import annotations

__all__ = ["poll_delay", "poll_horizon", "gives_up"]


def poll_delay(pollers: int, floor: float, rate: float, ceiling: float) -> float:
    """Seconds a polling client waits before it comes back, ``pollers`` polling together
    (itself included)."""
    spread = pollers / rate if rate > 0 else floor
    return max(floor, min(ceiling, spread))


def poll_horizon(delay: float) -> float:
    """How long a client still counts as polling after its last poll, when the crowd polls
    every ``delay`` s: three missed polls, and it is gone (or holds a stream now)."""
    return 3 * delay + 1


def gives_up(held_for: float, share_after: float, pollers: int) -> bool:
    """Whether a stream held for ``held_for`` s ends now to give its slot to a poller."""
    return share_after > 0 and pollers > 0 and held_for >= share_after
