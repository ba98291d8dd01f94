"""Wakers across hosts: addresses name their host; hints go to this host's sockets only;
notification payloads carry them whole (pure parts and one real socket)."""

from __future__ import annotations

import pytest

from altwebsocket.storage.notify import parse_payload, payloads
from altwebsocket.storage.wake import HOST, WakeSocket, local_path, send_hints


@pytest.mark.parametrize("address, path", [
    (f"{HOST}:/var/tmp/w/1.s", "/var/tmp/w/1.s"),
    ("/var/tmp/w/1.s", "/var/tmp/w/1.s"),          # recorded by an older version
    ("other-host:/var/tmp/w/1.s", None),
    (f"{HOST}:relative", None),
])
def test_local_path(address, path) -> None:
    assert local_path(address) == path


def test_hints_reach_this_hosts_socket_and_skip_others(tmp_path) -> None:
    with WakeSocket(str(tmp_path)) as mine:
        elsewhere = "far-away-host:" + mine.path  # the same path, but on another host
        send_hints({elsewhere: ["x"]})
        assert mine.wait(0.05) == []
        send_hints({mine.address: ["a", "b"]})
        assert mine.wait(1.0) == ["a", "b"]


def test_payloads_round_trip_and_stay_under_the_limit() -> None:
    woken = {f"host:/tmp/folder with space/{n}.s": [f"id{n}", "s1"] for n in range(400)}
    out = payloads(woken)
    assert len(out) > 1 and all(len(p.encode()) <= 7900 for p in out)
    merged = {}
    for payload in out:
        merged.update(parse_payload(payload))
    assert merged == woken
