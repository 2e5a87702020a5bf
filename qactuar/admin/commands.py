"""``qactuar admin ...``: the admin socket from a terminal.

``status``, ``apps [add ROUTE APP | remove ROUTE]``, ``config [set KEY VALUE]``,
``reload``; each takes ``--host/--port/--uds/--token/--config/--timeout`` and
``--json`` (the server's JSON as it came). Errors are one line on stderr and
an exit code: 1 the server refused or failed, 2 a usage or config error,
3 the admin socket unreachable, 4 no token or a wrong one (client.EXIT_*).
``qactuar`` itself hands ``admin ...`` here (cli.py).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import click

from ..config import CONFIG_ENV, Config, ConfigError, environment_settings, load_config
from .client import EXIT_USAGE, AdminClient, AdminClientError, Target, is_loopback, resolve_token

__all__ = ["admin"]

_OPTION_NAMES = ("host", "port", "uds", "token", "config_path", "timeout", "as_json")


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"qactuar admin: {message}", err=True)
    sys.exit(code)


#: click >= 8.2 raises it for a group given no command: its help is the answer then
_NO_ARGS = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _usage_error(exc: click.UsageError) -> NoReturn:
    if isinstance(exc, _NO_ARGS) and exc.ctx is not None:
        click.echo(exc.ctx.get_help())
        sys.exit(0)
    where = exc.ctx.command_path if exc.ctx is not None else "qactuar admin"
    click.echo(f"{where}: {exc.format_message()} (see --help)", err=True)
    sys.exit(EXIT_USAGE)


class _OneLineUsage:
    """Usage errors (a bad option, a missing argument) are one line, as for ``qactuar``."""

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        try:
            made: click.Context = super().make_context(  # type: ignore[misc]
                info_name, args, parent, **extra)
            return made
        except click.UsageError as exc:
            _usage_error(exc)


class _Command(_OneLineUsage, click.Command):
    pass


class _Group(_OneLineUsage, click.Group):
    command_class = _Command
    group_class = type  # subgroups are _Group too

    def resolve_command(self, ctx: click.Context,
                        args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:  # an unknown command
            _usage_error(exc)


def _connection_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--host", help="Admin socket host (default: ADMIN_HOST)."),
        click.option("--port", type=click.IntRange(1, 65535),
                     help="Admin socket port (default: ADMIN_PORT)."),
        click.option("--uds", help="Admin Unix socket path (default: ADMIN_UDS)."),
        click.option("--token", help="Admin token (default: QACTUAR_ADMIN_TOKEN, else the "
                     "token file the server wrote; those two are better: an option shows "
                     "in ps)."),
        click.option("--config", "config_path", type=click.Path(dir_okay=False),
                     help="The server's JSON config file, for ADMIN_* (default: "
                     "QACTUAR_CONFIG; never ./qactuar_config.json)."),
        click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=30.0,
                     show_default=True, help="Seconds to wait for the answer."),
        click.option("--json", "as_json", is_flag=True, help="Print the server's JSON."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _settings(ctx: click.Context, /, own: dict[str, Any]) -> dict[str, Any]:
    """The options given here, else on an enclosing group (``apps --token X add ...``)."""
    merged = {name: own.get(name) for name in _OPTION_NAMES}
    parent = ctx.parent
    while parent is not None:
        for name in _OPTION_NAMES:
            if merged[name] in (None, False) and parent.params.get(name) not in (None, False):
                merged[name] = parent.params[name]
        parent = parent.parent
    return merged


def _client(settings: dict[str, Any]) -> AdminClient:
    overrides = {f"ADMIN_{name.upper()}": settings[name] for name in ("host", "port", "uds")
                 if settings[name] is not None}
    try:
        config = _config(settings["config_path"], overrides)
        target = Target.from_config(config)
        if not target.uds and settings["host"] is None and not is_loopback(target.host):
            raise AdminClientError(
                f"ADMIN_HOST {target.host} (from {config.source_of('ADMIN_HOST')}) is not a "
                "loopback address: the token is sent there only if --host names it on the "
                "command line", EXIT_USAGE)
        token = resolve_token(config, settings["token"])
    except ConfigError as exc:
        _fail(str(exc), EXIT_USAGE)
    except AdminClientError as exc:
        _fail(exc.message, exc.exit_code)
    return AdminClient(target, token, settings["timeout"] or 30.0)


def _config(path: str | None, overrides: dict[str, Any]) -> Config:
    """The settings from --config or QACTUAR_CONFIG, the environment and the options; never
    ./qactuar_config.json (a cloned repository's file would name where the token goes)."""
    path = path or os.environ.get(CONFIG_ENV) or None
    if path is not None:
        return load_config(path, overrides, "command line")
    config = Config()
    for key, (value, source) in environment_settings().items():
        config.update({key: value}, source)
    config.update(overrides, "command line")
    return config


def _call(ctx: click.Context, /, own: dict[str, Any], method: str, path: str, body: Any = None,
          show: Callable[[Any], str] | None = None) -> None:
    settings = _settings(ctx, own)
    client = _client(settings)
    try:
        answer = client.request(method, path, body)
    except AdminClientError as exc:
        _fail(exc.message, exc.exit_code)
    if settings["as_json"]:
        click.echo(json.dumps(answer, indent=2))
    elif show is not None:
        click.echo(show(answer))


# ---- tables -------------------------------------------------------------------------

def table(headers: Sequence[str], rows: Sequence[Sequence[str]],
          right: Sequence[int] = ()) -> str:
    """Columns aligned on the widest cell; columns in ``right`` (numbers) aligned right."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([line(headers)] + [line(r) for r in rows])


def _number(value: Any, digits: int = 0) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    return f"{value:.{digits}f}"


def _bytes(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    n = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _age(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    s = int(value)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def _ms(value: Any) -> str:
    return f"{value * 1000:.1f} ms" if isinstance(value, int | float) else "-"


def _shown(value: Any, width: int = 70) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def show_status(status: Any) -> str:
    status = status if isinstance(status, dict) else {}
    totals = status.get("totals") or {}
    rps = totals.get("requests_per_second") or totals.get("rps") or {}
    conns = totals.get("connections") or {}
    latency = totals.get("latency") or {}
    classes = totals.get("status_classes") or {}
    head = " · ".join(part for part in (
        f"qactuar {status['version']}" if status.get("version") else "",
        f"{status['model']} model" if status.get("model") else "",
        f"pid {status['pid']}" if status.get("pid") else "",
        f"up {_age(status['uptime'])}" if "uptime" in status else "") if part)
    figures = [
        ("requests/s (1, 5, 15 min)",
         " / ".join(_number(rps.get(k), 2) for k in ("1m", "5m", "15m"))),
        ("in flight", _number(totals.get("in_flight"))),
        ("connections (HTTP, WebSocket)",
         f"{_number(conns.get('http'))} / {_number(conns.get('websocket'))}"),
        ("status classes", "  ".join(f"{k} {_number(v)}" for k, v in classes.items()) or "-"),
        ("latency p50 / p95 / p99",
         " / ".join(_ms(latency.get(k)) for k in ("p50", "p95", "p99"))),
    ]
    processes = [p for p in status.get("processes") or [] if isinstance(p, dict)]
    percent = any("cpu_percent" in p for p in processes)  # else "cpu": seconds
    rows = [[str(p.get("pid", "-")), str(p.get("role", "-")), str(p.get("state", "-")),
             _age(p.get("age")), _number(p.get("requests")),
             _number(p.get("cpu_percent"), 1) if percent else _number(p.get("cpu"), 2),
             _bytes(p.get("rss"))] for p in processes]
    parts = [head] if head else []
    width = max(len(name) for name, _ in figures)
    parts.append("\n".join(f"{name.ljust(width)}  {value}" for name, value in figures))
    cpu = "CPU %" if percent else "CPU (s)"
    parts.append(table(["PID", "ROLE", "STATE", "AGE", "REQUESTS", cpu, "RSS"], rows,
                       right=(0, 4, 5, 6)))
    return "\n\n".join(parts)


def show_apps(answer: Any) -> str:
    apps = answer.get("apps", []) if isinstance(answer, dict) else answer or []
    rows = [[str(a.get("route", "-")), str(a.get("target") or a.get("app") or "-"),
             str(a.get("source", "-"))] for a in apps if isinstance(a, dict)]
    return table(["ROUTE", "APP", "SOURCE"], rows) if rows else "no apps mounted"


def show_config(answer: Any) -> str:
    answer = answer if isinstance(answer, dict) else {}
    config = answer.get("config") if isinstance(answer.get("config"), dict) else answer
    live = (set(answer.get("live") or answer.get("live_keys") or ())
            if config is not answer else set())
    rows = [[key, _shown(config[key]), "live" if key in live else ("restart" if live else "")]
            for key in sorted(config)]
    return table(["KEY", "VALUE", "LIVE"], rows)


def parse_value(text: str) -> Any:
    """``config set``'s VALUE: JSON when it parses (5, true, null, [..]), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _route_path(route: str) -> str:
    from urllib.parse import quote

    return "/apps/" + quote(route.lstrip("/"), safe="/")


# ---- the commands -------------------------------------------------------------------

@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"],
                                           "max_content_width": 100})
def admin() -> None:
    """Talk to a running server's admin socket (qactuar --admin).

    Exit codes: 0 done; 1 the server refused the request or failed (its reason is
    printed); 2 a usage or config error; 3 the admin socket cannot be reached;
    4 no token, or the server refused it (401).
    """


@admin.command()
@_connection_options
@click.pass_context
def status(ctx: click.Context, /, **own: Any) -> None:
    """The server's figures and processes (GET /status)."""
    _call(ctx, own, "GET", "/status", show=show_status)


@admin.group(invoke_without_command=True)
@_connection_options
@click.pass_context
def apps(ctx: click.Context, /, **own: Any) -> None:
    """The mounted apps (GET /apps); add or remove one."""
    if ctx.invoked_subcommand is None:
        _call(ctx, own, "GET", "/apps", show=show_apps)


@apps.command("add")
@click.argument("route")
@click.argument("app")
@_connection_options
@click.pass_context
def apps_add(ctx: click.Context, /, route: str, app: str, **own: Any) -> None:
    """Mount APP ('module:attr') at ROUTE (POST /apps)."""
    _call(ctx, own, "POST", "/apps", {"route": route, "app": app},
          show=lambda _: f"mounted {app} at {route}")


@apps.command("remove")
@click.argument("route")
@_connection_options
@click.pass_context
def apps_remove(ctx: click.Context, /, route: str, **own: Any) -> None:
    """Unmount the app at ROUTE once its requests end (DELETE /apps/ROUTE)."""
    _call(ctx, own, "DELETE", _route_path(route), show=lambda _: f"unmounted {route}")


@admin.group(invoke_without_command=True)
@_connection_options
@click.pass_context
def config(ctx: click.Context, /, **own: Any) -> None:
    """The config in force (GET /config); set a live key."""
    if ctx.invoked_subcommand is None:
        _call(ctx, own, "GET", "/config", show=show_config)


@config.command("set")
@click.argument("key")
@click.argument("value")
@_connection_options
@click.pass_context
def config_set(ctx: click.Context, /, key: str, value: str, **own: Any) -> None:
    """Set KEY to VALUE (JSON when it parses, else a string) without a restart (PATCH /config)."""
    parsed = parse_value(value)
    _call(ctx, own, "PATCH", "/config", {key: parsed},
          show=lambda _: f"{key} set to {json.dumps(parsed)}")


@admin.command()
@_connection_options
@click.pass_context
def reload(ctx: click.Context, /, **own: Any) -> None:
    """Re-import every app and swap them in gracefully (POST /reload)."""
    _call(ctx, own, "POST", "/reload", {}, show=lambda _: "reloaded")
