"""Mounting the apps inside an existing Flask application, at a prefix."""

from __future__ import annotations

import json

import webtest
from flask import Flask

from altwebsocket import AltWebSocketServer
from altwebsocket.apps.echo import Echo
from altwebsocket.config import Settings
from altwebsocket.flask_ext import mount


def test_mounted_under_prefix_beside_flask_routes(data_dir) -> None:
    flask_app = Flask("users_app")

    @flask_app.route("/")
    def home() -> str:
        return "the user's own page"

    server = AltWebSocketServer({"echo": Echo()}, settings=Settings(data=data_dir))
    mount(flask_app, server, "/ws")
    client = webtest.TestApp(flask_app)
    assert client.get("/").text == "the user's own page"
    conn = client.post("/ws/echo/new").json
    sent = client.post("/ws/echo/send", json.dumps({**conn, "seq": 1, "data": "hi"})).json
    assert sent == {"ok": True, "ack": 1}
    assert [e[2] for e in server.storage.events_after(conn["id"], 0)] == [b"hi"]
    client.get("/ws/nope/info", status=404)
    assert flask_app.extensions["altwebsocket"] is server
