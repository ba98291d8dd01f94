"""The HTTP endpoints (wire contract version 1) as a plain WSGI application.

A thin transport: it routes, reads the body, checks the ``Origin`` and the connection's token
(:mod:`.auth`), calls one operation of :class:`~altwebsocket.server.AltWebSocketServer` by
connection id and writes JSON or the SSE stream (:mod:`.stream`). It imports neither Flask nor
SQLAlchemy, so it is cheap to start under CGI (see :mod:`.cgi`). Errors become JSON
``{"error", "message"}`` with the status their exception names; never a traceback.

Routes of version 1, for an app ``B = /<app>``: ``GET B/info``, ``POST B/new``, ``GET B/``
(the stream), ``POST B/send``, ``POST B/close``; of version 2, for ``S = /_session``:
``POST S/new``, ``GET S/`` (the session's stream), ``POST S/send``, ``POST S/close``
(:mod:`.session`); and ``OPTIONS`` on each (CORS preflight).
"""

from __future__ import annotations

from ..._lazy import TYPE_CHECKING, json_dumps, logger
from ...exceptions import (
    AltWebSocketError,
    MessageTooBig,
    OriginNotAllowed,
    ProtocolError,
    UnknownConnection,
)
from ...protocol import messages as wire
from ...protocol.origin import origin_allowed
from ...protocol.session import SESSION_APP
from .auth import authorizer, hash_token, new_token
from .session import SessionEndpoints
from .stream import EventStream, Streams, open_session_stream, open_stream

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any, Callable

    from ...server import AltWebSocketServer

    StartResponse = Callable[..., Any]
    Headers = list[tuple[str, str]]
__all__ = ["WSGIApp"]

_STATUS = {
    200: "200 OK", 204: "204 No Content", 400: "400 Bad Request", 403: "403 Forbidden",
    404: "404 Not Found", 405: "405 Method Not Allowed", 409: "409 Conflict", 410: "410 Gone",
    413: "413 Payload Too Large", 429: "429 Too Many Requests",
    500: "500 Internal Server Error", 503: "503 Service Unavailable",
}

_ROUTES = {
    ("GET", "info"), ("POST", "new"), ("GET", ""), ("POST", "send"), ("POST", "close"),
    ("GET", "openapi.json"),
}
_SESSION_ROUTES = {("POST", "new"), ("GET", ""), ("POST", "send"), ("POST", "close")}
SUPPORTED_VERSIONS = [1, 2]


class MethodNotAllowed(AltWebSocketError):
    """The path exists but not with this method."""

    status = 405
    code = "method_not_allowed"


def request_origin(environ: dict[str, Any], trust_proxy: bool) -> str:
    """This server's own origin as the client sees it (``scheme://host[:port]``)."""
    scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    if trust_proxy:
        scheme = environ.get("HTTP_X_FORWARDED_PROTO", scheme).split(",")[0].strip()
        host = environ.get("HTTP_X_FORWARDED_HOST", host).split(",")[0].strip()
    if ":" not in host and environ.get("SERVER_PORT") and not environ.get("HTTP_HOST"):
        port = environ["SERVER_PORT"]
        if (scheme, port) not in (("http", "80"), ("https", "443")):
            host = f"{host}:{port}"
    return f"{scheme}://{host}".lower()


def client_address(environ: dict[str, Any], trust_proxy: bool) -> str | None:
    """The client's address: ``REMOTE_ADDR``, or with ``trust_proxy`` the last
    ``X-Forwarded-For`` entry (the one our proxy added; earlier ones the client can forge)."""
    if trust_proxy:
        forwarded: str = environ.get("HTTP_X_FORWARDED_FOR", "")
        last = forwarded.split(",")[-1].strip()
        if last:
            return last[:64]
    address = environ.get("REMOTE_ADDR")
    return address[:64] if address else None


class WSGIApp:
    """The HTTP endpoints of every app of ``server``, as a WSGI application (``/<app>/...``).

    ``WSGIApp(server)`` runs under any WSGI server, under CGI (:func:`.cgi.serve_cgi`), or
    mounted in a Flask app (:func:`altwebsocket.flask_ext.mount`).

    ``direct_writes``: the WSGI server's ``write`` callable may be called from any thread
    (waitress: ``altws serve`` sets it). Then a request writes the events it produced for
    its own client's stream onto that stream itself (:mod:`.stream`); leave it off for
    servers that do not say so (the streams then write everything from their own threads).
    """

    def __init__(self, server: AltWebSocketServer, direct_writes: bool = False) -> None:
        self.server = server
        self.direct_writes = direct_writes
        self.streams = Streams()
        self.sessions = SessionEndpoints(server)
        settings = server.settings
        self.max_body = 4 * settings.max_message + 65536

    def shutdown(self, timeout: float = 2.0) -> None:
        """End this process's streams (clients resume) and wait for them; see
        :meth:`.stream.Streams.shutdown`."""
        self.streams.shutdown(timeout)

    # --- helpers -----------------------------------------------------------------------

    def _origin(self, environ: dict[str, Any]) -> str | None:
        """The request's Origin if it is allowed (``None`` if it sent none); else 403."""
        origin = environ.get("HTTP_ORIGIN")
        settings = self.server.settings
        own = request_origin(environ, settings.trust_proxy)
        if not origin_allowed(origin, own, settings.allowed_origins):
            raise OriginNotAllowed(f"origin {origin} is not allowed")
        return origin

    @staticmethod
    def _cors(origin: str | None) -> Headers:
        if origin is None:
            return []
        return [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]

    def _body(self, environ: dict[str, Any]) -> dict[str, Any]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise ProtocolError("invalid Content-Length") from None
        if length < 0:
            raise ProtocolError("invalid Content-Length")
        if length > self.max_body:
            raise MessageTooBig(
                f"request body of {length} bytes is over the limit of {self.max_body}"
            )
        body = environ["wsgi.input"].read(length) if length else b""
        return wire.parse_json_body(body, self.max_body)

    @staticmethod
    def _json(start_response: StartResponse, status: int, body: dict[str, Any],
              headers: Iterable[tuple[str, str]] = ()) -> list[bytes]:
        data = json_dumps(body).encode("utf-8")
        start_response(_STATUS.get(status, f"{status} Error"), [
            ("Content-Type", "application/json; charset=utf-8"),
            ("Content-Length", str(len(data))),
            ("Cache-Control", "no-store"),
            *headers,
        ])
        return [data]

    # --- the application ---------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "") or "/"
        parts = path.strip("/").split("/", 1) if path.strip("/") else []
        cors: Headers = []
        try:
            if not parts:
                raise UnknownConnection("no app named in the URL; use /<app>/")
            app, action = parts[0], (parts[1] if len(parts) > 1 else "")
            session = app == SESSION_APP
            routes = _SESSION_ROUTES if session else _ROUTES
            if not session:
                self.server.handler(app)
            if action not in {name for _, name in routes}:
                raise UnknownConnection(f"no endpoint {action!r}")
            origin = self._origin(environ)
            cors = self._cors(origin)
            if method == "OPTIONS":
                return self._preflight(start_response, cors)
            head = method == "HEAD"
            if head:
                method = "GET"
            if (method, action) not in routes:
                raise MethodNotAllowed(f"{method} is not allowed on /{action}")
            if action == "":
                return self._stream(environ, start_response, app, cors, head)
            if session:
                return self._json(start_response, 200,
                                  self._dispatch_session(environ, action, origin), cors)
            if action == "openapi.json":
                return self._openapi(environ, start_response, app, cors)
            return self._json(start_response, 200, self._dispatch(environ, app, action, origin),
                              cors)
        except AltWebSocketError as exc:
            if exc.status >= 500:  # the operator must hear of it; the client gets a 503
                logger("altwebsocket.wsgi").warning("%s %s: %s (%s)", method, path.split("?")[0],
                                                    exc.status, exc.message)
            return self._json(start_response, exc.status, exc.to_json(),
                              cors + list(exc.headers().items()))
        except Exception:  # a bug of ours: log it, answer a clean 500
            logger("altwebsocket.wsgi").exception("internal error on %s %s", method, path)
            return self._json(start_response, 500, {"error": "internal",
                                                    "message": "internal server error"}, cors)

    def _preflight(self, start_response: StartResponse, cors: Headers) -> list[bytes]:
        start_response("204 No Content", cors + [
            ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
            ("Access-Control-Allow-Headers",
             "Content-Type, Last-Event-ID, X-AltWS-Session, X-AltWS-Secret"),
            ("Access-Control-Max-Age", "600"),
        ])
        return []

    def _dispatch(self, environ: dict[str, Any], app: str, action: str,
                  origin: str | None) -> dict[str, Any]:
        server = self.server
        if action == "info":
            return self.info(app)
        body = self._body(environ)
        if action == "new":
            address = client_address(environ, server.settings.trust_proxy)
            token = new_token()
            opened = server.open(app, wire.parse_new(body).protocols, origin,
                                 client_addr=address, token_hash=hash_token(token))
            return {"id": opened.id, "token": token, "protocol": opened.protocol,
                    "extensions": ""}
        if action == "send":
            request = wire.parse_send(body, server.settings.max_message, server.settings.max_batch)
            ack = server.receive(app, request.id, request.messages, authorizer(request.token))
            return {"ok": True, "ack": ack}
        request_close = wire.parse_close(body)
        closed = server.close(app, request_close.id, request_close.code, request_close.reason,
                              authorizer(request_close.token))
        return {"ok": True} if closed else {"ok": True, "already_closed": True}

    def _dispatch_session(self, environ: dict[str, Any], action: str, origin: str | None
                          ) -> dict[str, Any]:
        body = self._body(environ)
        address = client_address(environ, self.server.settings.trust_proxy)
        if action == "new":
            return self.sessions.new(origin, address)
        if action == "send":
            return self.sessions.send(body, origin, address)
        return self.sessions.close(body)

    def info(self, app: str) -> dict[str, Any]:
        """The ``/info`` body: protocol version, the daemon's URL, the limits."""
        settings = self.server.settings
        websocket = None
        if settings.websocket_url:
            websocket = settings.websocket_url.rstrip("/") + "/" + app
        return {
            "version": wire.PROTOCOL_VERSION,
            "versions": SUPPORTED_VERSIONS,
            "app": app,
            "websocket": websocket,
            "max_message": settings.max_message,
            "max_batch": settings.max_batch,
            "heartbeat": settings.heartbeat,
            "stream_lifetime": settings.stream_lifetime,
        }

    def _stream(self, environ: dict[str, Any], start_response: StartResponse, app: str,
                cors: Headers, head: bool = False) -> Iterable[bytes]:
        from urllib.parse import parse_qs  # only streams need it

        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        last = environ.get("HTTP_LAST_EVENT_ID")
        if last is None:
            last = (query.get("lastEventId") or [None])[0]
        resume = wire.parse_last_event_id(last)
        stream: EventStream | None
        if app == SESSION_APP:  # version 2: the secret comes in headers, never in the URL
            session_id = environ.get("HTTP_X_ALTWS_SESSION", "")
            secret = environ.get("HTTP_X_ALTWS_SECRET", "")
            if not session_id or not secret:
                raise ProtocolError("the session stream needs the headers X-AltWS-Session "
                                    "and X-AltWS-Secret")
            stream = open_session_stream(self.server, self.streams, session_id, secret,
                                         resume)
        else:
            conn_id = (query.get("id") or [""])[0]
            token = (query.get("token") or [""])[0]
            if not conn_id or not token:
                raise ProtocolError("the stream needs ?id=…&token=…")
            stream = open_stream(self.server, self.streams, app, conn_id, token, resume)
        if stream is None:
            start_response("204 No Content", cors + [("Cache-Control", "no-store")])
            return []
        if not head:  # HEAD: the status alone, would this stream open? (nothing is started)
            stream.start()  # a storage failure is still a clean 503 here
        write = start_response("200 OK", cors + [
            ("Content-Type", "text/event-stream; charset=utf-8"),
            ("Cache-Control", "no-cache, no-transform"),
            ("X-Accel-Buffering", "no"),
        ])
        if head:
            return []
        if self.direct_writes:
            stream.writer = write
            detach = environ.get(DETACH)
            if detach is not None and not stream.poll:  # held without a thread (.keeper)
                return _Detached(stream, detach)
        return _Body(stream)

    def _openapi(self, environ: dict[str, Any], start_response: StartResponse, app: str,
                 cors: Headers) -> list[bytes]:
        from .openapi import document  # only this route needs it

        base = request_origin(environ, self.server.settings.trust_proxy)
        base += environ.get("SCRIPT_NAME", "").rstrip("/") + "/" + app
        return self._json(start_response, 200, document(base), cors)


class _Body:
    """The stream as a WSGI body whose ``close()`` ends the stream's generator."""

    def __init__(self, stream: EventStream) -> None:
        self._stream = stream
        self._iterator: Iterator[bytes] = iter(stream)

    def __iter__(self) -> Iterator[bytes]:
        return self._iterator

    def close(self) -> None:
        close = getattr(self._iterator, "close", None)
        if close is not None:
            close()
        self._stream.abandon()  # if the body was never iterated


DETACH = "altws.detach"
"""The environ key under which a WSGI server that can detach a response from its request's
thread offers to (``altws serve``: :class:`.waitress_channel.DetachingTask`): a callable
``detach(gone) -> response`` (:class:`.waitress_channel.DetachedResponse`); absent on other
servers. A stream is then held by the process's
keeper (:mod:`.keeper`), not by a thread of the server."""


class _Detached:
    """The body of a stream held by the process's keeper (:mod:`.keeper`): iterating it
    starts the stream in the request's thread and hands it over; it yields nothing."""

    def __init__(self, stream: EventStream, detach: Callable[..., Any]) -> None:
        self._stream = stream
        self._detach = detach
        self._iterated = False

    def __iter__(self) -> Iterator[bytes]:
        self._iterated = True
        stream = self._stream
        try:
            stream.run_detached(stream.streams.keeper(), self._detach)
        except BaseException:  # (not held by anyone: let go of it here)
            stream.release()
            raise
        return iter(())

    def close(self) -> None:
        if not self._iterated:
            self._stream.abandon()
