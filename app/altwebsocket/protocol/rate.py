"""The token bucket of ``max_rate``, as a pure function of the time it is given.

A connection's bucket holds up to ``burst`` tokens and refills at ``rate`` per second. A
request is accepted while the bucket holds at least one token and takes one per new message,
even below zero: a batch larger than the burst passes once, and the connection then waits its
debt off. Retries of seqs already accepted take none (the caller does not count them).
"""

from __future__ import annotations

from ..exceptions import RateLimited

__all__ = ["take_tokens"]


def take_tokens(
    tokens: float | None,
    at: float | None,
    count: int,
    now: float,
    rate: float,
    burst: float = 0.0,
) -> tuple[float, float]:
    """The bucket ``(tokens, at)`` after ``count`` messages at time ``now``.

    Args:
        tokens: the tokens left after the last request (``None``: a full bucket).
        at: when that was (``None``: never).
        count: how many new messages this request brings.
        now: the current time, in seconds.
        rate: messages per second (> 0).
        burst: the bucket's size; 0 means two seconds' worth.

    Raises:
        RateLimited: (429) the bucket holds less than one token; ``retry_after`` says when
            it will.
    """
    burst = burst or 2 * rate
    level = burst if tokens is None else float(tokens)
    if at is not None:
        level = min(burst, level + max(0.0, now - float(at)) * rate)
    if level < 1:
        raise RateLimited(f"over {rate:g} messages per second on this connection",
                          retry_after=(1 - level) / rate)
    return level - count, now
