"""Settings, with safe defaults, from keyword arguments or an INI file.

Under CGI the settings come from a file next to the script (suEXEC wipes the environment);
``altws`` commands take them from options. The file::

    [altws]
    data = /home/me/altws-data          ; outside the web root
    allowed_origins = https://example.com https://www.example.com
    stream_lifetime = 45

    [apps]
    echo = altwebsocket.apps.echo:Echo
    chat = altwebsocket.apps.chat:Chat
"""

from __future__ import annotations

import os

from ._lazy import TYPE_CHECKING
from .exceptions import ConfigError

if TYPE_CHECKING:
    from typing import Any

__all__ = ["Settings", "load_settings", "load_handler", "handlers_from", "read_ini",
           "DEFAULT_APPS"]

DEFAULT_APPS = {
    "echo": "altwebsocket.apps.echo:Echo",
    "chat": "altwebsocket.apps.chat:Chat",
}

# name: (default, kind, meaning). Times are in seconds.
FIELDS: dict[str, tuple[Any, str, str]] = {
    "data": ("./var", "str", "data folder; the SQLite file lives here"),
    "storage": ("", "str", "SQLAlchemy URL; default sqlite:///<data>/altws.db"),
    "allowed_origins": ((), "list", "origins besides the server's own; * = any"),
    "max_message": (1024 * 1024, "int", "bytes per message (413 beyond)"),
    "max_batch": (1000, "int", "messages per /send request"),
    "stream_lifetime": (300.0, "float", "a stream ends itself after this; the client resumes"),
    "heartbeat": (15.0, "float", "a ':' comment on the stream at least this often"),
    "retry_ms": (1000, "int", "the SSE retry: field (ms)"),
    "poll_interval": (1.0, "float", "a process looks for events its streams' hints missed "
                                    "this often"),
    "gone_timeout": (60.0, "float", "no stream and no request this long: closed with 1006"),
    "keep_closed": (300.0, "float", "closed connections and their events are purged after"),
    "sweep_interval": (10.0, "float", "how often any request may run that housekeeping"),
    "max_streams": (10000, "int", "streams held at once, all processes together; beyond, the "
                                 "clients poll (0: all poll)"),
    "crowd_poll": (1.0, "float", "beyond max_streams: a client polls again after this, at the "
                                 "soonest"),
    "crowd_rate": (10.0, "float", "beyond max_streams: polls a second the pollers make together "
                                  "(more pollers poll less often)"),
    "share_after": (20.0, "float", "a stream held this long ends when clients poll, giving "
                                   "its slot up; 0 = never"),
    "max_events_queued": (10000, "int", "undelivered events per connection; 1008 beyond"),
    "max_rate": (5000.0, "float", "messages per second per connection (CGI: 100); 0 = no "
                                  "limit; 429"),
    "rate_burst": (0.0, "float", "messages at once before max_rate applies; 0 = 2 x max_rate"),
    "max_connections_per_ip": (200, "int", "open connections per client address; 0 = no limit;"
                                           " 429 on /new"),
    "busy_timeout": (10.0, "float", "seconds a write waits for the database lock"),
    "journal_mode": ("auto", "str", "auto | wal | delete | truncate"),
    "websocket_url": (None, "optional", "the daemon's public ws:// base URL, for /info"),
    "trust_proxy": (False, "bool", "take scheme, host and client address from X-Forwarded-*"),
}


class Settings:
    """Every tunable of the server, with its default (see ``FIELDS``; times in seconds).

    ``Settings(max_message=65536)`` overrides one; ``apps`` maps app names to
    ``module:Class`` strings.
    """

    data: str
    storage: str
    allowed_origins: tuple[str, ...]
    max_message: int
    max_batch: int
    stream_lifetime: float
    heartbeat: float
    retry_ms: int
    poll_interval: float
    gone_timeout: float
    keep_closed: float
    sweep_interval: float
    max_streams: int
    crowd_poll: float
    crowd_rate: float
    share_after: float
    max_events_queued: int
    max_rate: float
    rate_burst: float
    max_connections_per_ip: int
    busy_timeout: float
    journal_mode: str
    websocket_url: str | None
    trust_proxy: bool
    apps: dict[str, str]

    def __init__(self, **values: Any) -> None:
        for name, (default, _, _) in FIELDS.items():
            setattr(self, name, values.pop(name, default))
        self.apps = dict(values.pop("apps", DEFAULT_APPS))
        if values:
            raise ConfigError(f"unknown setting {sorted(values)[0]!r}")
        self.allowed_origins = tuple(self.allowed_origins)

    def __repr__(self) -> str:
        return "Settings(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in FIELDS) + ")"

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied (settings are shared, so never mutated in place)."""
        values = {name: getattr(self, name) for name in FIELDS}
        values["apps"] = dict(self.apps)
        values.update(changes)
        return Settings(**values)

    def storage_url(self) -> str:
        """The storage URL: the ``storage`` setting, or an SQLite file in the data folder."""
        if self.storage:
            return self.storage
        return "sqlite:///" + os.path.join(os.path.abspath(self.data), "altws.db")

    def validate(self) -> Settings:
        """Check ranges; raise :class:`ConfigError` naming the bad setting."""
        positive = ("max_message", "max_batch", "stream_lifetime", "heartbeat", "poll_interval",
                    "gone_timeout", "max_events_queued", "busy_timeout", "crowd_poll",
                    "crowd_rate")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"setting {name} must be positive")
        for name in ("max_rate", "rate_burst", "max_connections_per_ip", "max_streams",
                     "share_after"):
            if getattr(self, name) < 0:
                raise ConfigError(f"setting {name} must be 0 (no limit) or positive")
        for origin in self.allowed_origins:
            if origin != "*" and "://" not in origin:
                raise ConfigError(f"allowed origin {origin!r} must look like https://host")
        for name in self.apps:
            if not name or "/" in name or name.startswith("."):
                raise ConfigError(f"app name {name!r} must be a plain path segment")
        return self


def convert(name: str, text: str) -> Any:
    """A setting's value from its text in a file or on the command line."""
    if name not in FIELDS:
        raise ConfigError(f"unknown setting {name!r}")
    kind = FIELDS[name][1]
    text = text.strip()
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        raise ConfigError(f"setting {name} = {text!r} is not a valid {kind}") from None
    if kind == "bool":
        return text.lower() in ("1", "yes", "true", "on")
    if kind == "list":
        return tuple(part for part in text.replace(",", " ").split() if part)
    if kind == "optional":
        return text or None
    return text


def read_ini(path: str) -> dict[str, dict[str, str]]:
    """Read an INI file: ``[section]`` headers, ``name = value`` lines, ``;``/``#`` comments
    (whole-line, or after whitespace). A small reader: ``configparser`` costs a CGI request
    several milliseconds."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration file {path}: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"the configuration file {path} is not UTF-8") from None
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line[0] in ";#":
            continue
        for marker in (" ;", "\t;", " #", "\t#"):
            if marker in line:
                line = line[: line.index(marker)].rstrip()
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1].strip(), {})
            continue
        name, sep, value = line.partition("=")
        if not sep or current is None or not name.strip():
            raise ConfigError(f"{path}, line {number}: expected [section] or name = value")
        current[name.strip()] = value.strip()
    return sections


def load_settings(path: str, **overrides: Any) -> Settings:
    """Read an INI file (see the module docstring); relative ``data`` is relative to it."""
    sections = read_ini(path)
    values: dict[str, Any] = {}
    for name, text in sections.get("altws", {}).items():
        if name not in FIELDS:
            raise ConfigError(f"unknown setting {name!r} in {path}")
        values[name] = convert(name, text)
    if "apps" in sections:
        values["apps"] = dict(sections["apps"])
    values.update(overrides)
    settings = Settings(**values)
    if not os.path.isabs(settings.data):
        settings.data = os.path.join(os.path.dirname(os.path.abspath(path)), settings.data)
    return settings.validate()


def load_handler(spec: str) -> Any:
    """Import ``module:Class`` and return an instance of the handler class."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"an app is given as module:Class, not {spec!r}")
    try:
        module = __import__(module_name, fromlist=[attr])
        target = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load the app {spec!r}: {exc}") from None
    return target() if isinstance(target, type) else target


def handlers_from(apps: dict[str, str]) -> dict[str, Any]:
    """Instances of the handlers named in an ``apps`` mapping."""
    return {name: load_handler(spec) for name, spec in apps.items()}


def split_list(text: str) -> list[str]:
    """A whitespace- or comma-separated list."""
    return [part for part in text.replace(",", " ").split() if part]
