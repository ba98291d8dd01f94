"""Bad input (docs/security.md): the endpoints fuzzed from their OpenAPI document with
schemathesis, plus hypothesis for what a schema cannot describe (raw bytes, headers). Every
answer is a 2xx or a clear 4xx JSON error, never a 5xx, never a traceback, and a refused
request leaves the connection untouched. (tests/protocol has the codec round trips.)"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from altwebsocket import WSGIApp
from altwebsocket.transports.http.openapi import document

from ..support import ROOT, make_server, new, state_of, web_app

schemathesis = pytest.importorskip("schemathesis")

FUZZ = settings(max_examples=60 if os.environ.get("ALTWS_SOAK") else 25, deadline=None,
                suppress_health_check=list(HealthCheck))


def check(response: Any) -> None:
    """A clear answer: 2xx/204, or a 4xx JSON error; never a 5xx or a traceback."""
    assert response.status_int < 500, response.text
    assert "Traceback" not in response.text
    if response.status_int >= 400:
        body = response.json
        assert isinstance(body["error"], str) and isinstance(body["message"], str)


def test_the_shipped_document_is_the_served_one() -> None:
    with open(os.path.join(ROOT, "docs", "openapi.json"), encoding="utf-8") as handle:
        shipped = json.load(handle)
    assert shipped == document(shipped["servers"][0]["url"])


def test_openapi_json_is_served_per_app(tmp_path) -> None:
    app = web_app(make_server(str(tmp_path)))
    served = app.get("/chat/openapi.json", extra_environ={"HTTP_HOST": "example.com"}).json
    assert served["servers"] == [{"url": "http://example.com/chat"}]
    assert set(served["paths"]) == {"/info", "/new", "/", "/send", "/close"}


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    server = make_server(str(tmp_path_factory.mktemp("fuzz")), max_rate=0,
                         max_connections_per_ip=0, max_message=4096)
    return server


def test_schemathesis_finds_no_server_error(fuzzed) -> None:
    schema = schemathesis.openapi.from_wsgi("/echo/openapi.json", WSGIApp(fuzzed))
    failures = []
    for operation in schema.get_all_operations():
        op = operation.ok()
        strategy = op.as_strategy()

        @FUZZ
        @given(case=strategy)
        def run(case: Any) -> None:
            response = case.call()
            if response.status_code >= 500 or "Traceback" in response.text:
                # run() is called below, in this iteration: op is the current operation
                failures.append((op.label, response.status_code, response.text[:200]))  # noqa: B023

        run()
    assert failures == []


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
    | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)


@FUZZ
@given(raw=st.binary(max_size=300) | JSONISH.map(lambda v: json.dumps(v).encode()),
       endpoint=st.sampled_from(["new", "send", "close"]))
def test_arbitrary_bodies_are_4xx_and_change_nothing(fuzzed, raw, endpoint) -> None:
    app = web_app(fuzzed)
    conn = fuzzed._fuzz_conn if hasattr(fuzzed, "_fuzz_conn") else None
    if conn is None:
        conn = fuzzed._fuzz_conn = new(app)
    before = state_of(fuzzed, conn["id"])
    check(app.post(f"/echo/{endpoint}", raw, status="*"))
    assert state_of(fuzzed, conn["id"]) == before


@FUZZ
@given(fields=st.fixed_dictionaries({}, optional={
    "seq": JSONISH | st.integers(), "data": JSONISH, "binary": st.text(max_size=12) | JSONISH,
    "messages": JSONISH, "code": JSONISH | st.integers(), "reason": JSONISH}),
    endpoint=st.sampled_from(["send", "close"]), own=st.booleans())
def test_wrong_fields_with_real_credentials_are_4xx(fuzzed, fields, endpoint, own) -> None:
    app = web_app(fuzzed)
    conn = new(app)
    body = {"id": conn["id"], "token": conn["token"] if own else "not-the-token", **fields}
    response = app.post(f"/echo/{endpoint}", json.dumps(body), status="*")
    check(response)
    if not own:
        assert response.status_int in (400, 403, 413)
        assert state_of(fuzzed, conn["id"])[1:] == (0, 0, None, ())


@FUZZ
@given(last=st.text(max_size=30) | st.integers(min_value=-10, max_value=2**80).map(str),
       conn_id=st.text(max_size=30), token=st.text(max_size=30))
def test_garbage_stream_requests_are_4xx(fuzzed, last, conn_id, token) -> None:
    app = web_app(fuzzed)
    from urllib.parse import urlencode

    query = urlencode({"id": conn_id, "token": token, "lastEventId": last})
    check(app.get(f"/echo/?{query}", status="*"))


def test_invalid_utf8_huge_numbers_and_huge_bodies(fuzzed) -> None:
    app = web_app(fuzzed)
    conn = new(app)
    before = state_of(fuzzed, conn["id"])
    bodies = [
        b'{"id": "\xff\xfe", "token": "x", "seq": 1, "data": "a"}',
        json.dumps({"id": conn["id"], "token": conn["token"], "seq": 10**400,
                    "data": "a"}).encode(),
        json.dumps({"id": conn["id"], "token": conn["token"], "seq": 1e308,
                    "data": "a"}).encode(),
        json.dumps({"id": conn["id"], "token": conn["token"], "seq": 1,
                    "binary": "not base64!"}).encode(),
        json.dumps({"id": conn["id"], "token": conn["token"], "seq": 1,
                    "data": "x" * 100_000}).encode(),
        b"[" * 100_000 + b"]" * 100_000,
    ]
    for raw in bodies:
        check(app.post("/echo/send", raw, status="*"))
    assert state_of(fuzzed, conn["id"]) == before
    for last in ("-1", "1e3", "99999999999999999999", "\u0661", "1 2"):
        check(app.get(f"/echo/?id={conn['id']}&token={conn['token']}",
                      headers={"Last-Event-ID": last}, status="*"))
