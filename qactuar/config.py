"""The single source of settings.

``Config`` holds every setting under the seed's upper-case names. Values
come, lowest precedence first, from the defaults, the JSON file named by
``QACTUAR_CONFIG`` (else ``./qactuar_config.json`` when present), the
environment (``QACTUAR_<KEY>``), and CLI flags or ``qactuar.run()`` keyword
arguments. Every value is checked when it
lands; a bad one raises ``ConfigError`` naming the key, the value and where
it came from, which the CLI prints as one line before exiting.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from .config_values import (
    apps_table,
    at_least,
    bind_addresses,
    check_entries,
    descriptors,
    directory,
    file_mode,
    header_items,
    health_path,
    logging_dict,
    one_of,
    port_number,
    root_path,
)
from .http import Limits
from .logs import DEFAULT_LOGS

__all__ = ["MODELS", "Config", "ConfigError", "load_config"]

CONFIG_ENV = "QACTUAR_CONFIG"
#: Settings also read from a plain variable other servers use (below QACTUAR_<KEY>).
_PLAIN_ENV = {"FORWARDED_ALLOW_IPS": "FORWARDED_ALLOW_IPS"}
#: Every setting may come from the environment as QACTUAR_<KEY>.
ENV_PREFIX = "QACTUAR_"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")
DEFAULT_CONFIG_FILE = "qactuar_config.json"
MODELS = ("fork", "async", "prefork")
#: The seed's ASYNCRONOUS_MODEL numbers (1 post-fork, 2 async, 3 pre-fork).
_MODEL_NUMBERS = {1: "fork", 2: "async", 3: "prefork"}
_ALIASES = {"ASYNCRONOUS_MODEL": "MODEL"}


class ConfigError(ValueError):
    """A setting that cannot be used; the message names key, value and source."""

    def __init__(self, key: str, value: Any, source: str, reason: str) -> None:
        shown = repr(value)
        if len(shown) > 120:
            shown = shown[:117] + "..."
        super().__init__(f"config {key}={shown} (from {source}): {reason}")
        self.key = key
        self.value = value
        self.source = source
        self.reason = reason


def _setting(default: Any, doc: str, check: Callable[[Any], str | None] | None = None) -> Any:
    if isinstance(default, dict | list):
        return field(
            default_factory=lambda: copy.deepcopy(default),
            metadata={"doc": doc, "check": check},
        )
    return field(default=default, metadata={"doc": doc, "check": check})


@dataclass
class Config:
    """Every setting of the server; see the README for what each one does."""

    HOST: str = _setting("localhost", "Address to listen on (IPv4, IPv6 or a name).")
    PORT: int = _setting(8000, "TCP port to listen on; 0 picks a free one.", port_number)
    UDS: str = _setting("", "Listen on this Unix domain socket path instead of HOST/PORT.")
    MODEL: str = _setting("fork", "Process model: " + ", ".join(MODELS) + ".", one_of(*MODELS))
    APPS: dict[str, str] = _setting(
        {}, "Route prefix -> 'module:attribute' of the app.", apps_table
    )
    ROOT_PATH: str = _setting(
        "", "Prefix the server is mounted under behind a proxy.", root_path
    )
    LOOP: str = _setting(
        "auto", "Event loop: auto, asyncio or uvloop.", one_of("auto", "asyncio", "uvloop")
    )
    LIFESPAN: str = _setting(
        "auto", "Lifespan protocol: auto, on or off.", one_of("auto", "on", "off")
    )
    BACKLOG: int = _setting(2048, "Listen backlog of the server socket.", at_least(1))
    GRACEFUL_TIMEOUT: float = _setting(
        30.0, "Seconds in-flight requests get to finish on stop.", at_least(0)
    )
    KEEP_ALIVE_TIMEOUT: float = _setting(
        5.0, "Seconds an idle keep-alive connection is kept.", at_least(0.01)
    )
    HEADER_TIMEOUT: float = _setting(
        10.0, "Seconds a client has to send a whole request head.", at_least(0.01)
    )
    MAX_URL_BYTES: int = _setting(8190, "Longest request target; longer gets 414.", at_least(16))
    MAX_HEADER_BYTES: int = _setting(
        65536, "Largest header section; larger gets 431.", at_least(256)
    )
    MAX_HEADER_COUNT: int = _setting(
        100, "Most header fields in a request; more gets 431.", at_least(1)
    )
    MAX_BODY_BYTES: int = _setting(
        0, "Largest request body; larger gets 413 (0 = no limit).", at_least(0)
    )
    DATE_HEADER: bool = _setting(True, "Add a Date header to responses that lack one.")
    SERVER_HEADER: bool = _setting(True, "Add 'Server: qactuar' to responses that lack one.")
    ACCESS_LOG: bool = _setting(True, "Write one qt_access line per request.")
    LOG_LEVEL: str = _setting(
        "",
        "Override the level of every qactuar logger (e.g. warning).",
        one_of("", "critical", "error", "warning", "info", "debug"),
    )
    LOGS: dict[str, Any] = _setting(
        DEFAULT_LOGS, "logging.config.dictConfig dictionary.", logging_dict
    )
    WS_COMPRESSION: bool = _setting(True, "Offer permessage-deflate to WebSocket clients.")
    WS_MAX_MESSAGE_BYTES: int = _setting(
        1048576, "Largest WebSocket message (after inflating); larger closes 1009.", at_least(1)
    )
    WS_MAX_QUEUE: int = _setting(
        32, "WebSocket messages buffered for an app before reading pauses.", at_least(1)
    )
    WS_PING_INTERVAL: float = _setting(
        20.0, "Seconds between keep-alive pings on a WebSocket (0 = off).", at_least(0)
    )
    WS_PING_TIMEOUT: float = _setting(
        20.0, "Seconds a WebSocket client has to answer a ping (0 = wait forever).", at_least(0)
    )
    SSL_CERT_PATH: str = _setting("", "PEM certificate chain; with SSL_KEY_PATH serves HTTPS.")
    SSL_KEY_PATH: str = _setting("", "PEM private key for SSL_CERT_PATH.")
    REQUEST_TIMEOUT: float = _setting(
        5.0, "fork model: seconds a child may run (0 = off).", at_least(0)
    )
    MAX_PROCESSES: int = _setting(
        500, "fork model: most children alive at once (per parent, with WORKERS).", at_least(1)
    )
    CHECK_PROCESS_INTERVAL: float = _setting(
        1.0, "fork model: seconds between sweeps.", at_least(0.001)
    )
    GATHER_PROC_STATS: bool = _setting(False, "fork model: record each child's CPU and memory.")
    FORK_AHEAD: int = _setting(
        0,
        "fork model: children forked ahead of demand, each set up and waiting for one "
        "request (0 = off; per parent, with WORKERS; at most MAX_PROCESSES).",
        at_least(0),
    )
    WORKERS: int = _setting(
        0,
        "prefork model: worker processes (0 = one per CPU). fork model: serving parents "
        "under a prefork master, each with its own children (0 = one parent, no master).",
        at_least(0),
    )
    MAX_REQUESTS: int = _setting(
        0,
        "prefork model (fork with WORKERS too): requests a worker serves before it is "
        "replaced (0 = no limit).",
        at_least(0),
    )
    MAX_REQUESTS_JITTER: int = _setting(
        0,
        "prefork model (fork with WORKERS too): up to this many more requests, at random, "
        "per worker.",
        at_least(0),
    )
    WORKER_TIMEOUT: float = _setting(
        30.0,
        "prefork model (fork with WORKERS too): seconds a worker's loop may block before "
        "it is killed (0 = off).",
        at_least(0),
    )
    PRELOAD: bool = _setting(
        True,
        "prefork model (fork with WORKERS too): import the apps once in the master "
        "(off: in each worker).",
    )
    REUSE_PORT: bool = _setting(
        False,
        "prefork model (fork with WORKERS too): a SO_REUSEPORT socket per worker instead "
        "of a shared one.",
    )
    # -- conventions --
    FACTORY: bool = _setting(
        False, "The app named on the command line is a factory: call it to get the app."
    )
    APP_DIR: str = _setting(
        "", "Directory put first on sys.path before importing apps (default: the cwd).", directory
    )
    LIMIT_CONCURRENCY: int = _setting(
        0,
        "Requests in flight per process before new ones get 503 + Retry-After (0 = off).",
        at_least(0),
    )
    HEADERS: list[str] = _setting(
        [], "Default response header NAME:VALUE, added when the app sets none.", header_items
    )
    HEALTH_PATH: str = _setting(
        "",
        "Path the server answers itself for health checks: 200 ok, 503 while stopping "
        "(empty = off).",
        health_path,
    )
    # -- TLS --
    SSL_KEYFILE_PASSWORD: str = _setting("", "Password of an encrypted SSL_KEY_PATH.")
    SSL_CA_CERTS: str = _setting(
        "", "PEM file of the CAs that client certificates must chain to."
    )
    SSL_CERT_REQS: str = _setting(
        "none",
        "Client certificates: none, optional or required (needs SSL_CA_CERTS).",
        one_of("none", "optional", "required"),
    )
    SSL_CIPHERS: str = _setting(
        "", "OpenSSL cipher list for TLS 1.2 (empty: Python's defaults)."
    )
    SSL_HANDSHAKE_TIMEOUT: float = _setting(
        10.0, "Seconds a client has to finish the TLS handshake.", at_least(0.01)
    )
    # -- listening --
    BIND: list[str] = _setting(
        [],
        "Where to listen: host:port, [ipv6]:port, unix:PATH or fd://N; replaces HOST/PORT/UDS.",
        bind_addresses,
    )
    FD: list[int] = _setting(
        [],
        "Serve on this inherited listening socket (a descriptor number); replaces HOST/PORT/UDS.",
        descriptors,
    )
    UDS_MODE: str = _setting(
        "", "Octal file mode of the Unix sockets qactuar creates, e.g. 0660 (empty: umask).",
        file_mode,
    )
    RELOAD: bool = _setting(
        False, "Development: restart the server when a watched file changes (needs watchfiles)."
    )
    RELOAD_DIR: list[str] = _setting(
        [], "Directory to watch with RELOAD (default: the current directory)."
    )
    RELOAD_INCLUDE: list[str] = _setting(
        [], "Glob of more files to watch with RELOAD, besides *.py (e.g. *.html)."
    )
    RELOAD_EXCLUDE: list[str] = _setting(
        [], "Glob of files RELOAD ignores (editors' and VCS files always are)."
    )
    # -- proxies --
    PROXY_HEADERS: bool = _setting(
        True,
        "Take client, scheme and server from X-Forwarded-* / Forwarded headers of trusted peers.",
    )
    FORWARDED_ALLOW_IPS: list[str] = _setting(
        ["127.0.0.1", "::1"],
        "Trusted proxies: addresses, CIDR networks, 'unix' (Unix-socket peers) or '*'.",
        check_entries,
    )
    PROXY_PROTOCOL: bool = _setting(
        False, "Expect a PROXY protocol v1/v2 header on every connection (trusted peers only)."
    )
    # -- request bodies and WebSocket children (hostile clients, #13) --
    BODY_TIMEOUT: float = _setting(
        30.0,
        "Seconds a request body may go without a byte arriving; then 408 and close (0 = off).",
        at_least(0),
    )
    BODY_BUFFER_BYTES: int = _setting(
        65536,
        "fork model: request body bytes the parent holds in memory before it spools the "
        "rest to a temporary file.",
        at_least(0),
    )
    MAX_WEBSOCKETS: int = _setting(
        0,
        "fork model: most WebSocket children at once, below MAX_PROCESSES; more get 503 "
        "(0 = half of MAX_PROCESSES, at most MAX_PROCESSES - 1).",
        at_least(0),
    )
    # -- send timeout (a client that stops reading) --
    SEND_TIMEOUT: float = _setting(
        30.0,
        "Seconds a response or WebSocket write may stay blocked on a client that reads "
        "nothing before the connection is dropped (0 = off).",
        at_least(0),
    )
    # -- the admin socket (README: "The admin socket") --
    ADMIN_ENABLED: bool = _setting(
        False,
        "Serve the admin socket (status, Prometheus metrics, live config, apps, dashboard) "
        "in the parent, master or process: never in a child or worker.",
    )
    ADMIN_HOST: str = _setting(
        "localhost", "Admin socket address; anything but loopback needs ADMIN_TOKEN."
    )
    ADMIN_PORT: int = _setting(1986, "Admin socket port; 0 picks a free one.", port_number)
    ADMIN_UDS: str = _setting(
        "", "Serve the admin socket on this Unix socket path instead (file mode 0600)."
    )
    ADMIN_TOKEN: str = _setting(
        "",
        "Bearer token every admin request needs (also QACTUAR_ADMIN_TOKEN); empty: one is "
        "generated at start and written to ADMIN_TOKEN_FILE.",
    )
    ADMIN_TOKEN_FILE: str = _setting(
        "",
        "Where a generated admin token is written, mode 0600 (default: "
        "$XDG_RUNTIME_DIR/qactuar/, else ~/.cache/qactuar/, admin-<port>.token).",
    )
    ADMIN_ALLOW_INSTALL: bool = _setting(
        False, "Let POST /apps clone a git repository and mount an app from it (runs its code)."
    )
    APPS_DIR: str = _setting(
        "qactuar_apps", "Directory the admin socket's git installs are cloned into."
    )
    SELECT_SLEEP_TIME: float = _setting(
        0.025, "Kept for compatibility with qactuar 0.1; unused.", at_least(0)
    )
    RECV_TIMEOUT: float = _setting(
        0.001, "Kept for compatibility with qactuar 0.1; unused.", at_least(0)
    )
    RECV_BYTES: int = _setting(
        65536, "Kept for compatibility with qactuar 0.1; unused.", at_least(1)
    )

    def __post_init__(self) -> None:
        #: Where each setting that is not a default came from, for error messages.
        self._sources: dict[str, str] = {}
        #: The JSON file ``load_config`` read, if any (a prefork SIGHUP re-reads it).
        self.file_path: str | None = None
        for f in fields(self):
            value = getattr(self, f.name)
            self._check(f.name, value, "Config()")
            default = f.default_factory() if f.default_factory is not MISSING else f.default
            if value != default:
                self._sources[f.name] = "Config()"

    @property
    def supervised(self) -> bool:
        """Served by a prefork master: ``prefork``, or ``fork`` with WORKERS set."""
        return self.MODEL == "prefork" or (self.MODEL == "fork" and self.WORKERS > 0)

    def source_of(self, key: str) -> str:
        """Where ``key``'s value came from: a file, the command line, ..."""
        return self._sources.get(key, "defaults")

    def _check(self, key: str, value: Any, source: str) -> Any:
        f = _FIELDS[key]
        expected = f.type if isinstance(f.type, str) else str(f.type)
        if expected == "bool":
            ok = isinstance(value, bool)
        elif expected == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif expected == "float":
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            value = float(value) if ok else value
            if ok and not math.isfinite(value):
                raise ConfigError(key, value, source, "must be a finite number")
        elif expected == "str":
            ok = isinstance(value, str)
        elif expected.startswith("list"):
            item: type = int if expected == "list[int]" else str
            ok = isinstance(value, list) and all(
                isinstance(v, item) and not isinstance(v, bool) for v in value
            )
            value = list(value) if ok else value
        else:
            ok = isinstance(value, dict)
        if not ok:
            raise ConfigError(
                key, value, source, f"expected {_TYPE_NAMES.get(expected, 'a JSON object')}"
            )
        check = f.metadata["check"]
        problem = check(value) if check is not None else None
        if problem:
            raise ConfigError(key, value, source, problem)
        return value

    def update(self, values: Mapping[str, Any], source: str) -> None:
        """Apply ``values`` from ``source``, checking every key and value."""
        for key, value in values.items():
            name = key.upper() if isinstance(key, str) else key
            if name in _ALIASES:
                self._set_alias(str(key), _ALIASES[name], value, source)
                continue
            if name not in _FIELDS:
                raise ConfigError(str(key), value, source, "unknown setting")
            setattr(self, name, self._check(name, value, source))
            self._sources[name] = source

    def _set_alias(self, key: str, name: str, value: Any, source: str) -> None:
        """The seed's ``ASYNCRONOUS_MODEL`` (1, 2, 3 or a model name); errors name ``key``."""
        if isinstance(value, int) and not isinstance(value, bool) and value in _MODEL_NUMBERS:
            model = _MODEL_NUMBERS[value]
        elif isinstance(value, str):
            model = value
        else:
            numbers = ", ".join(f"{n} ({m})" for n, m in _MODEL_NUMBERS.items())
            raise ConfigError(key, value, source, f"must be one of {numbers}")
        try:
            checked = self._check(name, model, source)
        except ConfigError as exc:
            reason = exc.reason if model == value else f"means {name} {model!r}: {exc.reason}"
            raise ConfigError(key, value, source, reason) from None
        setattr(self, name, checked)
        self._sources[name] = source

    @property
    def limits(self) -> Limits:
        return Limits(
            max_url_bytes=self.MAX_URL_BYTES,
            max_header_bytes=self.MAX_HEADER_BYTES,
            max_header_count=self.MAX_HEADER_COUNT,
            max_body_bytes=self.MAX_BODY_BYTES,
        )


_FIELDS = {f.name: f for f in fields(Config)}
_TYPE_NAMES = {
    "bool": "true or false",
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "list[str]": "a list of strings",
    "list[int]": "a list of integers",
}


def settings_doc() -> list[tuple[str, str, Any]]:
    """(name, description, default) of every setting, for the CLI and README."""
    defaults = Config()
    return [(f.name, f.metadata["doc"], getattr(defaults, f.name)) for f in fields(Config)]


def config_file_path(explicit: str | None = None) -> str | None:
    """The JSON file to read: explicit, else $QACTUAR_CONFIG, else ./qactuar_config.json."""
    if explicit:
        return explicit
    env = os.environ.get(CONFIG_ENV)
    if env:
        return env
    return DEFAULT_CONFIG_FILE if os.path.isfile(DEFAULT_CONFIG_FILE) else None


def _file_origin(explicit: str | None) -> tuple[str, str]:
    """(setting, source) that named the config file, for error messages."""
    if explicit:
        return "--config", "command line"
    if os.environ.get(CONFIG_ENV):
        return CONFIG_ENV, "environment"
    return "file", "current directory"


def _from_text(key: str, text: str, source: str) -> Any:
    """A setting's value from the text of an environment variable.

    Booleans take 1/0, true/false, yes/no, on/off; lists are comma-separated
    (or a JSON array); APPS and LOGS are JSON objects.
    """
    f = _FIELDS[key]
    expected = f.type if isinstance(f.type, str) else str(f.type)
    stripped = text.strip()
    try:
        if expected == "bool":
            if stripped.lower() in _TRUE:
                return True
            if stripped.lower() in _FALSE:
                return False
            raise ValueError("expected true or false (1/0, yes/no, on/off)")
        if expected == "int":
            return int(stripped)
        if expected == "float":
            return float(stripped)
        if expected == "str":
            return text
        if expected.startswith("list"):
            if stripped.startswith("["):
                return json.loads(stripped)
            items = [item.strip() for item in stripped.split(",") if item.strip()]
            return [int(item) for item in items] if expected == "list[int]" else items
        return json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise ConfigError(key, text, source, f"invalid JSON: {exc.msg}") from None
    except ValueError as exc:
        reason = str(exc) if expected == "bool" else f"expected {_TYPE_NAMES[expected]}"
        raise ConfigError(key, text, source, reason) from None


def environment_settings(environ: Mapping[str, str] | None = None) -> dict[str, tuple[Any, str]]:
    """Settings given as ``QACTUAR_<KEY>`` variables: key -> (value, source).

    ``QACTUAR_CONFIG`` names the file and is not a setting. An unknown
    ``QACTUAR_`` name is refused like an unknown key in the file. A plain
    ``FORWARDED_ALLOW_IPS`` (uvicorn's and gunicorn's) counts when
    ``QACTUAR_FORWARDED_ALLOW_IPS`` is not set.
    """
    environ = os.environ if environ is None else environ
    found: dict[str, tuple[Any, str]] = {}
    for name, text in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        key = name[len(ENV_PREFIX) :]
        source = f"environment {name}"
        if key in _ALIASES:
            found[key] = (int(text) if text.strip().isdigit() else text.strip(), source)
            continue
        if key not in _FIELDS:
            raise ConfigError(key, text, source, "unknown setting")
        found[key] = (_from_text(key, text, source), source)
    for name, key in _PLAIN_ENV.items():
        # uvicorn's and gunicorn's variable, for images that already set it
        if key not in found and name in environ:
            source = f"environment {name}"
            found[key] = (_from_text(key, environ[name], source), source)
    return found


def load_config(
    path: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    source: str = "command line",
    base: Config | None = None,
) -> Config:
    """Defaults (or ``base``) < the JSON file < ``QACTUAR_<KEY>`` < ``overrides``."""
    config = copy.deepcopy(base) if base is not None else Config()
    file_path = config_file_path(path)
    if file_path is not None:
        key, origin = _file_origin(path)
        if path:
            origin = source
        try:
            with open(file_path, encoding="utf-8") as fh:
                data = json.load(fh)
        except OSError as exc:
            raise ConfigError(
                key, file_path, origin, f"cannot read the file: {exc.strerror}"
            ) from None
        except UnicodeDecodeError as exc:
            raise ConfigError(
                key,
                file_path,
                origin,
                f"not UTF-8 text (byte {exc.start}): a config file is JSON",
            ) from None
        except json.JSONDecodeError as exc:
            raise ConfigError(
                key,
                file_path,
                origin,
                f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
            ) from None
        if not isinstance(data, dict):
            raise ConfigError(key, file_path, origin, "the file must hold a JSON object")
        config.update(data, os.path.abspath(file_path))
        config.file_path = os.path.abspath(file_path)
    for key, (value, env_source) in environment_settings().items():
        config.update({key: value}, env_source)
    if overrides:
        config.update({k: v for k, v in overrides.items() if v is not None}, source)
    return config
