"""Close codes and their rules: one enum, one table of who may send what."""

from __future__ import annotations

import pytest

from altwebsocket.exceptions import ProtocolError
from altwebsocket.protocol.close import (
    CloseCode,
    sendable_close,
    validate_client_close,
    validate_server_close,
)


@pytest.mark.parametrize("code, client, server", [
    (1000, True, True), (1001, False, True), (1002, False, True), (1003, False, True),
    (1004, False, False), (1005, False, False), (1006, False, False), (1007, False, True),
    (1011, False, True), (1014, False, True), (1015, False, False), (2999, False, False),
    (1008, False, True), (999, False, False), (2000, False, False),
    (3000, True, True), (4999, True, True), (5000, False, False), (0, False, False),
])
def test_who_may_send_which_code(code, client, server) -> None:
    if client:
        validate_client_close(code, "")
    else:
        with pytest.raises(ProtocolError):
            validate_client_close(code, "")
    if server:
        validate_server_close(code, "")
    else:
        with pytest.raises(ValueError):
            validate_server_close(code, "")


@pytest.mark.parametrize("reason, ok", [("x" * 123, True), ("x" * 124, False),
                                        ("é" * 61, True), ("é" * 62, False)])
def test_a_reason_is_at_most_123_utf8_bytes(reason, ok) -> None:
    for validate, error in ((validate_client_close, ProtocolError),
                            (validate_server_close, ValueError)):
        if ok:
            validate(1000, reason)
        else:
            with pytest.raises(error):
                validate(1000, reason)


@pytest.mark.parametrize("code, reason, frame", [
    (1000, "bye", (1000, "bye")),
    (1006, "", (1001, "connection closed by the server")),
    (1005, "", (1001, "connection closed by the server")),
    (1015, "tls", (1001, "tls")),
    (4000, "app", (4000, "app")),
])
def test_recorded_closes_become_sendable_frames(code, reason, frame) -> None:
    assert sendable_close(code, reason) == frame


def test_the_enum_is_the_wire_number() -> None:
    assert CloseCode.ABNORMAL == 1006 and int(CloseCode.TRY_AGAIN_LATER) == 1013
