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

import configparser
import importlib
import os
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional, Tuple

from .exceptions import ConfigError

__all__ = ["Settings", "load_settings", "load_handler", "DEFAULT_APPS"]

DEFAULT_APPS: Dict[str, str] = {
    "echo": "altwebsocket.apps.echo:Echo",
    "chat": "altwebsocket.apps.chat:Chat",
}


@dataclass
class Settings:
    """Every tunable of the server, with its default. Times are in seconds."""

    data: str = "./var"
    storage: str = ""  # SQLAlchemy URL; default sqlite:///<data>/altws.db
    allowed_origins: Tuple[str, ...] = ()  # besides the server's own origin; "*" = any
    max_message: int = 1024 * 1024  # bytes per message (413 beyond)
    max_batch: int = 1000  # messages per /send request
    stream_lifetime: float = 300.0  # a stream ends itself after this; the client resumes
    heartbeat: float = 15.0  # a ":" comment at least this often
    retry_ms: int = 1000  # the SSE retry: field
    poll_interval: float = 1.0  # a waiting stream re-checks the database this often
    gone_timeout: float = 60.0  # no stream and no request for this long: closed with 1006
    keep_closed: float = 300.0  # closed connections (and events) are purged after this
    sweep_interval: float = 10.0  # how often any request may run the sweep above
    max_streams: int = 1000  # concurrent streams (all processes); 503 beyond
    max_events_queued: int = 10000  # undelivered events per connection; closed 1008 beyond
    max_rate: float = 0.0  # messages per second per connection (0 = no limit); 429 beyond
    max_connections_per_ip: int = 0  # open connections per client address (0 = no limit)
    busy_timeout: float = 10.0  # seconds a write waits for the database lock
    journal_mode: str = "auto"  # auto | wal | delete | truncate
    websocket_url: Optional[str] = None  # the daemon's public ws:// URL, advertised by /info
    trust_proxy: bool = False  # take the client address from X-Forwarded-For
    apps: Dict[str, str] = field(default_factory=lambda: dict(DEFAULT_APPS))

    def storage_url(self) -> str:
        """The storage URL: the ``storage`` setting, or an SQLite file in the data folder."""
        if self.storage:
            return self.storage
        return "sqlite:///" + os.path.join(os.path.abspath(self.data), "altws.db")

    def validate(self) -> "Settings":
        """Check ranges; raise :class:`ConfigError` naming the bad setting."""
        positive = ("max_message", "max_batch", "stream_lifetime", "heartbeat", "poll_interval",
                    "gone_timeout", "max_streams", "max_events_queued", "busy_timeout")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"setting {name} must be positive")
        if self.heartbeat >= self.stream_lifetime and self.stream_lifetime > 0:
            pass  # a short lifetime simply ends before the first heartbeat
        for origin in self.allowed_origins:
            if origin != "*" and "://" not in origin:
                raise ConfigError(f"allowed origin {origin!r} must look like https://host")
        for name in self.apps:
            if not name or "/" in name or name.startswith("."):
                raise ConfigError(f"app name {name!r} must be a plain path segment")
        return self


_KINDS: Dict[str, Any] = {f.name: f.type for f in fields(Settings)}


def _convert(name: str, text: str) -> Any:
    kind = _KINDS[name]
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "bool":
            return text.strip().lower() in ("1", "yes", "true", "on")
        if kind.startswith("Tuple"):
            return tuple(part for part in text.replace(",", " ").split() if part)
        if kind.startswith("Optional"):
            return text.strip() or None
    except ValueError:
        raise ConfigError(f"setting {name} = {text!r} is not a valid {kind}") from None
    return text.strip()


def load_settings(path: str, **overrides: Any) -> Settings:
    """Read an INI file (see the module docstring); relative ``data`` is relative to it."""
    parser = configparser.ConfigParser(inline_comment_prefixes=(";", "#"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration file {path}: {exc}") from None
    except configparser.Error as exc:
        raise ConfigError(f"the configuration file {path} is malformed: {exc}") from None
    values: Dict[str, Any] = {}
    if parser.has_section("altws"):
        for name, text in parser.items("altws"):
            if name not in _KINDS or name == "apps":
                raise ConfigError(f"unknown setting {name!r} in {path}")
            values[name] = _convert(name, text)
    if parser.has_section("apps"):
        values["apps"] = dict(parser.items("apps"))
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
        module = importlib.import_module(module_name)
        target = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load the app {spec!r}: {exc}") from None
    return target() if isinstance(target, type) else target


def handlers_from(apps: Dict[str, str]) -> Dict[str, Any]:
    """Instances of the handlers named in an ``apps`` mapping."""
    return {name: load_handler(spec) for name, spec in apps.items()}


def split_list(text: str) -> List[str]:
    """A whitespace- or comma-separated list."""
    return [part for part in text.replace(",", " ").split() if part]
