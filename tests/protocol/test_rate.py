"""The token bucket of max_rate, as a table of (bucket, count, time) -> bucket or 429."""

from __future__ import annotations

import pytest

from altwebsocket.exceptions import RateLimited
from altwebsocket.protocol.rate import take_tokens


@pytest.mark.parametrize("tokens, at, count, now, rate, burst, expected", [
    (None, None, 1, 100.0, 5, 5, (4.0, 100.0)),      # a fresh bucket is full
    (None, None, 1, 100.0, 5, 0, (9.0, 100.0)),      # burst 0: two seconds' worth
    (0.0, 100.0, 1, 100.2, 5, 5, (0.0, 100.2)),      # 0.2 s at 5/s: exactly one token back
    (2.0, 100.0, 1, 200.0, 5, 5, (4.0, 200.0)),      # refill stops at the burst
    (1.0, 100.0, 20, 100.0, 10, 4, (-19.0, 100.0)),  # a big batch passes once, into debt
    (3.0, 100.0, 1, 99.0, 5, 5, (2.0, 99.0)),        # a clock going back refills nothing
])
def test_bucket(tokens, at, count, now, rate, burst, expected) -> None:
    assert take_tokens(tokens, at, count, now, rate, burst) == pytest.approx(expected)


@pytest.mark.parametrize("tokens, at, now, rate, retry_after", [
    (0.0, 100.0, 100.0, 5, 0.2),
    (-16.0, 100.0, 100.0, 10, 1.7),
    (0.5, 100.0, 100.0, 1, 0.5),
])
def test_empty_bucket_is_429_with_the_wait(tokens, at, now, rate, retry_after) -> None:
    with pytest.raises(RateLimited) as caught:
        take_tokens(tokens, at, 1, now, rate, 5)
    assert caught.value.retry_after == pytest.approx(retry_after)
