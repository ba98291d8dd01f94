"""``Transaction.session_refs_closed`` on every engine: what ``S/close`` with
``unless_open`` asks the storage (docs/protocol.md) — whether every named connection of a
session exists and is closed; one that is open, or not known yet, keeps the session."""

from __future__ import annotations

from altwebsocket.protocol.session import SESSION_APP

from .test_log import _open, _storage


def test_named_refs_keep_a_session_while_one_is_open_or_unknown(database_url) -> None:
    storage = _storage(database_url)
    session, other = _open(storage, SESSION_APP), _open(storage, SESSION_APP)
    refs = [f"r{n}" for n in range(1200)]  # (more than one statement's worth of names)
    ids = {ref: _open(storage, "echo", session, ref) for ref in refs}
    _open(storage, "echo", other, "elsewhere")
    with storage.transaction() as tx:
        assert not tx.session_refs_closed(session, refs)  # all open
        for ref in refs[:-1]:
            tx.set_closed(ids[ref], 1000, "")
    with storage.transaction() as tx:
        assert not tx.session_refs_closed(session, refs)  # the last one is open
        assert tx.session_refs_closed(session, refs[:-1])
        assert tx.session_refs_closed(session, refs[:3] + refs[:3])  # (a name twice)
        assert not tx.session_refs_closed(session, ["r0", "not-opened-yet"])
        assert not tx.session_refs_closed(session, ["elsewhere"])  # another session's
        tx.set_closed(ids[refs[-1]], 1000, "")
    with storage.transaction() as tx:
        assert tx.session_refs_closed(session, refs)
        assert tx.session_refs_closed(session, [])
