"""The emulated WebSocket over HTTP: ``POST`` up, Server-Sent Events down.

- :mod:`.wsgi` — the endpoints of wire contract version 1, as a WSGI application;
- :mod:`.stream` — the SSE body of ``GET B/``;
- :mod:`.auth` — the connection's secret token;
- :mod:`.cgi` — running the WSGI application as a CGI script (and the CGI import rule);
- :mod:`.openapi` — the OpenAPI document of the endpoints.
"""
