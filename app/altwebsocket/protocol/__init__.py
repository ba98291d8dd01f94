"""Pure protocol code: no I/O, no Flask, no database, no sockets.

- :mod:`.sse` encodes and decodes Server-Sent Events.
- :mod:`.messages` parses and validates the bodies of the HTTP endpoints and turns
  application messages into events and back.
- :mod:`.state` holds the connection rules: seq acceptance, close codes, resume points.
"""
