"""The OpenAPI 3 description of one app's HTTP endpoints (``GET B/openapi.json``).

The contract itself is ``docs/protocol.md``; this is its machine-readable part (paths,
bodies, answers, errors), used to fuzz the endpoints (``tests/reliability/test_fuzz.py``)
and by API tools. ``docs/openapi.json`` is :func:`document` with a placeholder server.
Imported only by that route: it costs nothing to the other requests.
"""

from __future__ import annotations

from ..._lazy import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

__all__ = ["document"]

_ID = {"type": "string", "minLength": 1, "maxLength": 200}
_SEQ = {"type": "integer", "minimum": 1, "maximum": 9007199254740991}
_ERROR = {"$ref": "#/components/schemas/Error"}


def _answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    names = {400: "bad_request", 403: "forbidden or origin", 404: "unknown",
             405: "method_not_allowed", 409: "seq_gap", 410: "closed", 413: "too_big",
             429: "rate_limited (with Retry-After)",
             503: "overloaded or storage (with Retry-After)"}
    return {str(status): _answer(names[status], _ERROR) for status in statuses}


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def document(base: str = "http://127.0.0.1:8000/echo") -> dict[str, Any]:
    """The OpenAPI 3.0 document of the endpoints of the app at ``base`` (``B``)."""
    credentials = {"id": _ID, "token": _ID}
    message = {
        "type": "object",
        "required": ["seq"],
        "properties": {"seq": _SEQ, "data": {"type": "string"},
                       "binary": {"type": "string", "format": "byte"}},
        "description": "exactly one of data (text) or binary (standard base64)",
    }
    send = {
        "type": "object",
        "required": ["id", "token"],
        "properties": {**credentials, **message["properties"],  # type: ignore[dict-item]
                       "messages": {"type": "array", "minItems": 1, "maxItems": 1000,
                                    "items": message}},
        "description": "one message (seq + data or binary) or several (messages, with "
                       "consecutive seqs)",
    }
    close = {
        "type": "object",
        "required": ["id", "token"],
        "properties": {**credentials,
                       "code": {"type": "integer", "description": "1000 or 3000-4999"},
                       "reason": {"type": "string", "description": "at most 123 UTF-8 bytes"}},
    }
    new = {
        "type": "object",
        "properties": {"protocols": {"type": "array", "maxItems": 64,
                                     "items": {"type": "string", "maxLength": 128}}},
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "AltWebSocket emulation endpoints",
            "version": "1",
            "description": "A WebSocket emulated with Server-Sent Events (GET B/) and POST "
                           "(B/new, B/send, B/close). The full contract is docs/protocol.md. "
                           "Every error is JSON {error, message}; never a 500.",
        },
        "servers": [{"url": base}],
        "paths": {
            "/info": {"get": {
                "operationId": "info",
                "summary": "Protocol version, the daemon's URL and the limits",
                "responses": {"200": _answer("the app's parameters", {
                    "type": "object",
                    "required": ["version", "app", "max_message", "max_batch"],
                    "properties": {"version": {"type": "integer"}, "app": {"type": "string"},
                                   "websocket": {"type": "string", "nullable": True},
                                   "max_message": {"type": "integer"},
                                   "max_batch": {"type": "integer"},
                                   "heartbeat": {"type": "number"},
                                   "stream_lifetime": {"type": "number"}}})},
            }},
            "/new": {"post": {
                "operationId": "new",
                "summary": "Create a connection (runs the app's on_open)",
                "requestBody": _body(new, required=False),
                "responses": {"200": _answer("the new connection", {
                    "type": "object", "required": ["id", "token", "protocol", "extensions"],
                    "properties": {"id": {"type": "string"}, "token": {"type": "string"},
                                   "protocol": {"type": "string"},
                                   "extensions": {"type": "string"}}}),
                    **_errors(400, 403, 413, 429, 503)},
            }},
            "/": {"get": {
                "operationId": "stream",
                "summary": "The event stream (text/event-stream)",
                "parameters": [
                    {"name": "id", "in": "query", "required": True, "schema": _ID},
                    {"name": "token", "in": "query", "required": True, "schema": _ID},
                    {"name": "lastEventId", "in": "query", "required": False,
                     "schema": {"type": "string"}},
                    {"name": "Last-Event-ID", "in": "header", "required": False,
                     "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {"description": "the SSE stream",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                    "204": {"description": "closed, and the client saw the close event"},
                    **_errors(400, 403, 404, 503)},
            }},
            "/send": {"post": {
                "operationId": "send",
                "summary": "Send messages (a seq already accepted is acknowledged again, "
                           "not delivered twice)",
                "requestBody": _body(send),
                "responses": {"200": _answer("accepted", {
                    "type": "object", "required": ["ok", "ack"],
                    "properties": {"ok": {"type": "boolean"}, "ack": {"type": "integer"}}}),
                    **_errors(400, 403, 404, 409, 410, 413, 429, 503)},
            }},
            "/close": {"post": {
                "operationId": "close",
                "summary": "Close the connection",
                "requestBody": _body(close),
                "responses": {"200": _answer("closed", {
                    "type": "object", "required": ["ok"],
                    "properties": {"ok": {"type": "boolean"},
                                   "already_closed": {"type": "boolean"}}}),
                    **_errors(400, 403, 404, 413, 503)},
            }},
        },
        "components": {"schemas": {"Error": {
            "type": "object",
            "required": ["error", "message"],
            "properties": {"error": {"type": "string"}, "message": {"type": "string"},
                           "expected": {"type": "integer"}},
        }}},
    }
