"""Security (docs/security.md): the token is the only key, tokens never leak into events or
logs, Origin is checked everywhere, the deploy files never serve the database or settings.
(CSP and text rendering of the chat page: tests/browser/test_pages.py.)"""

from __future__ import annotations

import logging

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from ..support import (
    HTTP,
    TIMEOUT,
    Daemon,
    make_server,
    new,
    post,
    state_of,
    stored_events,
    web_app,
)


def test_knowing_the_id_is_not_enough(data_dir) -> None:
    server = make_server(data_dir)
    app = web_app(server)
    victim, thief = new(app), new(app)
    post(app, "/echo/send", {"id": victim["id"], "token": victim["token"], "seq": 1,
                             "data": "secret"})
    before = state_of(server, victim["id"])
    forged = {"id": victim["id"], "token": thief["token"]}
    assert app.get(f"/echo/?id={victim['id']}&token={thief['token']}",
                   status=403).json["error"] == "forbidden"
    post(app, "/echo/send", {**forged, "seq": 2, "data": "x"}, status=403)
    post(app, "/echo/close", {**forged, "code": 1000}, status=403)
    assert state_of(server, victim["id"]) == before


def test_tokens_never_reach_other_clients_or_the_log(data_dir, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    server = make_server(data_dir, max_events_queued=3, max_rate=1, rate_burst=1)
    app = web_app(server)
    alice, bob = new(app, "chat"), new(app, "chat")
    for seq in range(1, 6):  # a message, then refusals (429), then the 1008 close
        post(app, "/chat/send", {"id": alice["id"], "token": alice["token"], "seq": seq,
                                 "data": f"hi {seq}"}, status="*")
    app.get(f"/chat/?id={alice['id']}&token=wrong", status=403)
    post(app, "/chat/close", {"id": bob["id"], "token": bob["token"], "code": 1000})
    seen = repr(stored_events(server, bob["id"])) + repr(stored_events(server, alice["id"]))
    for token in (alice["token"], bob["token"]):
        assert token not in seen
        assert token not in caplog.text


def test_origin_is_checked_on_new_stream_send_and_close(data_dir) -> None:
    app = web_app(make_server(data_dir, allowed_origins=("https://good.example",)))
    evil = {"HTTP_ORIGIN": "https://evil.example"}
    good = {"HTTP_ORIGIN": "https://good.example"}
    assert app.post("/echo/new", "", extra_environ=evil, status=403).json["error"] == "origin"
    conn = app.post("/echo/new", "", extra_environ=good).json
    creds = {"id": conn["id"], "token": conn["token"]}
    app.get(f"/echo/?id={conn['id']}&token={conn['token']}", extra_environ=evil, status=403)
    post(app, "/echo/send", {**creds, "seq": 1, "data": "x"}, extra_environ=evil, status=403)
    post(app, "/echo/close", creds, extra_environ=evil, status=403)
    answer = post(app, "/echo/send", {**creds, "seq": 1, "data": "x"}, extra_environ=good)
    assert answer.headers["Access-Control-Allow-Origin"] == "https://good.example"


def test_daemon_refuses_a_cross_site_handshake(data_dir) -> None:
    proc = Daemon.on(data_dir, allowed_origins=("https://good.example",))
    try:
        with pytest.raises(InvalidStatus) as refused:
            ws_connect(proc.url + "/echo", origin="https://evil.example",
                       open_timeout=TIMEOUT)
        assert refused.value.response.status_code == 403
        with ws_connect(proc.url + "/echo", origin="https://good.example",
                        open_timeout=TIMEOUT) as ws:
            ws.send("ok")
            assert ws.recv(timeout=TIMEOUT) == "ok"
    finally:
        proc.stop()


@pytest.mark.parametrize("path", [
    "/cgi-bin/altws.ini", "/cgi-bin/ALTWS.INI", "/cgi-bin/altws.ini~", "/cgi-bin/.htaccess",
    "/.htaccess", "/cgi-bin/altws.db", "/cgi-bin/altws.db-wal", "/altws.db",
    "/cgi-bin/altws.cgi/../altws.ini", "/cgi-bin/%61ltws.ini", "/static/../cgi-bin/altws.ini",
])
def test_deploy_files_never_serve_settings_or_data(cgi_deployment, path) -> None:
    answer = HTTP.get(cgi_deployment.url + path)
    assert answer.status_code in (400, 403, 404)
    assert "[altws]" not in answer.text and "SQLite format" not in answer.text
