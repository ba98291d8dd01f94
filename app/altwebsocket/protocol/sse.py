"""Server-Sent Events: a pure encoder and an incremental decoder.

The encoder follows the WHATWG HTML "server-sent events" format: a field is ``name: value``
on its own line, a ``data`` value with line breaks is split into several ``data:`` lines,
and a blank line ends the event. The decoder is the standard's parser (it accepts ``\\r\\n``,
``\\r`` and ``\\n`` line ends, ignores comments and unknown fields), fed bytes in pieces.
"""

from __future__ import annotations

__all__ = ["ServerSentEvent", "encode_comment", "encode_retry", "SSEDecoder"]


def _lines(text: str) -> list[str]:
    """``text`` split at CRLF, CR and LF (the SSE line breaks), and only there."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _has_break(text: str) -> bool:
    return "\n" in text or "\r" in text


class ServerSentEvent:
    """One event: ``data`` plus optional ``event`` type and ``id`` (an immutable value)."""

    __slots__ = ("data", "event", "id")

    def __init__(self, data: str = "", event: str | None = None,
                 id: str | None = None) -> None:
        self.data = data
        self.event = event
        self.id = id

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ServerSentEvent):
            return NotImplemented
        return (self.data, self.event, self.id) == (other.data, other.event, other.id)

    def __hash__(self) -> int:
        return hash((self.data, self.event, self.id))

    def __repr__(self) -> str:
        return f"ServerSentEvent(data={self.data!r}, event={self.event!r}, id={self.id!r})"

    def encode(self) -> bytes:
        """The event as UTF-8 bytes, ending with the blank line that dispatches it."""
        lines: list[str] = []
        if self.id is not None:
            if _has_break(self.id) or "\0" in self.id:
                raise ValueError("an SSE id cannot contain a line break or NUL")
            lines.append(f"id: {self.id}")
        if self.event is not None:
            if _has_break(self.event):
                raise ValueError("an SSE event type cannot contain a line break")
            lines.append(f"event: {self.event}")
        for part in _lines(self.data):
            lines.append(f"data: {part}")
        return ("\n".join(lines) + "\n\n").encode("utf-8")


def encode_comment(text: str = "") -> bytes:
    """A comment line (ignored by clients; used as a heartbeat and to flush proxies)."""
    return "".join(f":{' ' if part else ''}{part}\n" for part in _lines(text)).encode(
        "utf-8"
    ) + b"\n"


def encode_retry(milliseconds: int) -> bytes:
    """A ``retry:`` field telling the client how long to wait before reconnecting."""
    if milliseconds < 0:
        raise ValueError("retry must be >= 0")
    return f"retry: {int(milliseconds)}\n\n".encode("ascii")


class SSEDecoder:
    """Incremental SSE parser: :meth:`feed` bytes, get back the events they complete.

    Keeps ``last_event_id`` and ``retry`` as the standard's parser does. Comments are
    counted in ``comments`` (useful to see heartbeats) but produce no event.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._event: str | None = None
        self._id_seen = False
        self.last_event_id = ""
        self.retry: int | None = None
        self.comments = 0
        self._first = True
        self._skip_lf = False

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Parse ``chunk``; return the events that are now complete, in order."""
        if self._skip_lf and chunk[:1] == b"\n":
            chunk = chunk[1:]  # the LF of a CRLF split across chunks
        self._skip_lf = False
        self._buffer += chunk
        events: list[ServerSentEvent] = []
        while True:
            cr, lf = self._buffer.find(b"\r"), self._buffer.find(b"\n")
            if cr < 0 and lf < 0:
                break
            end = lf if cr < 0 or (0 <= lf < cr) else cr
            width = 2 if end == cr and self._buffer[cr + 1 : cr + 2] == b"\n" else 1
            raw, self._buffer = self._buffer[:end], self._buffer[end + width :]
            if end == cr and width == 1 and not self._buffer:
                self._skip_lf = True  # a CR ends the line; a LF arriving next belongs to it
            line = raw.decode("utf-8", errors="replace")
            if self._first:
                self._first = False
                if line.startswith("\ufeff"):
                    line = line[1:]
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            self.comments += 1
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
                self._id_seen = True
        elif name == "retry":
            if value.isdigit():
                self.retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        data, event, id_seen = self._data, self._event, self._id_seen
        self._data, self._event, self._id_seen = [], None, False
        if not data:
            return None
        return ServerSentEvent(
            data="\n".join(data), event=event, id=self.last_event_id if id_seen else None
        )
