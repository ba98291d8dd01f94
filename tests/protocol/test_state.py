"""The connection rules: transition table, seq acceptance, resume points (close codes are in
test_close.py)."""

from __future__ import annotations

import pytest

from altwebsocket.exceptions import ConnectionClosed, ProtocolError, SeqGap
from altwebsocket.protocol.state import (
    Input,
    State,
    accept_seqs,
    check_resume,
    transition,
)

ALLOWED = [
    (State.OPEN, Input.MESSAGE, State.OPEN),
    (State.OPEN, Input.STREAM, State.OPEN),
    (State.OPEN, Input.CLIENT_CLOSE, State.CLOSED),
    (State.OPEN, Input.SERVER_CLOSE, State.CLOSED),
    (State.OPEN, Input.GONE, State.CLOSED),
    (State.CLOSED, Input.STREAM, State.CLOSED),
]


@pytest.mark.parametrize("state, event, after", ALLOWED)
def test_allowed_transitions(state, event, after) -> None:
    assert transition(state, event) == after


@pytest.mark.parametrize(
    "event", [Input.MESSAGE, Input.CLIENT_CLOSE, Input.SERVER_CLOSE, Input.GONE]
)
def test_nothing_but_streaming_after_close(event) -> None:
    with pytest.raises(ConnectionClosed):
        transition(State.CLOSED, event)


SEQ_TABLE = [
    # last accepted, seqs of the request, index of first to deliver, ack
    (0, [1], 0, 1),
    (0, [1, 2, 3], 0, 3),
    (3, [1, 2, 3], 3, 3),  # a full retry: nothing delivered, acknowledged again
    (2, [1, 2, 3, 4], 2, 4),  # a partial retry: only 3 and 4 delivered
    (5, [5], 1, 5),
    (5, [], 0, 5),
]


@pytest.mark.parametrize("last, seqs, deliver_from, ack", SEQ_TABLE)
def test_accept_seqs(last, seqs, deliver_from, ack) -> None:
    decision = accept_seqs(last, seqs)
    assert (decision.deliver_from, decision.ack) == (deliver_from, ack)


@pytest.mark.parametrize("last, seqs, expected", [(0, [2], 1), (4, [6, 7], 5)])
def test_seq_gap_names_the_expected_seq(last, seqs, expected) -> None:
    with pytest.raises(SeqGap) as caught:
        accept_seqs(last, seqs)
    assert caught.value.expected == expected
    assert caught.value.to_json()["expected"] == expected
    assert caught.value.status == 409


def test_resume_point() -> None:
    assert check_resume(0, 0) == 0
    assert check_resume(3, 5) == 3
    with pytest.raises(ProtocolError):
        check_resume(6, 5)
