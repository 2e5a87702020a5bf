"""The ``qactuar`` command: one option per setting of ``Config``.

Options are generated from the Config fields so that the CLI can never fall
behind the settings; dictionaries (APPS, LOGS) come only from the file.
"""

from __future__ import annotations

import sys
from dataclasses import fields
from typing import Any

import click

from . import __version__
from .config import Config, ConfigError, load_config
from .envfile import EnvFileError, load_env_file
from .main import serve

__all__ = ["main"]

_CLICK_TYPES: dict[str, Any] = {"int": int, "float": float, "str": str}
#: Flags spelled as uvicorn and gunicorn users know them, beside the generated one.
_ALSO: dict[str, tuple[str, ...]] = {"HEADERS": ("--header",)}
#: Boolean settings with a shorter flag than the generated ``--key/--no-key``.
_BOOL_FLAGS: dict[str, str] = {"ADMIN_ENABLED": "--admin/--no-admin"}
_CHOICES: dict[str, tuple[str, ...]] = {
    "LOOP": ("auto", "asyncio", "uvloop"),
    "LIFESPAN": ("auto", "on", "off"),
    "LOG_LEVEL": ("critical", "error", "warning", "info", "debug"),
}


class _Command(click.Command):
    """Usage errors (a bad flag value, an unknown option) are one line too.

    ``qactuar admin ...`` is the admin socket's client (admin/commands.py): an
    APP is always 'module:attribute', so "admin" as the first argument is never one.
    """

    def main(  # type: ignore[override]
        self, args: Any = None, prog_name: str | None = None, **extra: Any
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if argv[:1] == ["admin"]:
            from .admin.commands import admin

            return admin.main(argv[1:], prog_name=f"{prog_name or 'qactuar'} admin", **extra)
        return super().main(args, prog_name, **extra)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            click.echo(f"qactuar: {exc.format_message()} (command line; see --help)", err=True)
            sys.exit(2)


def _options(func: Any) -> Any:
    from .config import MODELS

    choices = dict(_CHOICES, MODEL=MODELS)
    for f in reversed(fields(Config)):
        kind = f.type if isinstance(f.type, str) else str(f.type)
        if kind.startswith("dict"):
            continue
        flag = "--" + f.name.lower().replace("_", "-")
        doc = f.metadata["doc"]
        if kind.startswith("list"):
            item = int if kind == "list[int]" else str
            option = click.option(
                *_ALSO.get(f.name, ()), flag, f.name, type=item, multiple=True,
                help=doc + " (repeatable)",
            )
        elif kind == "bool":
            option = click.option(f"{flag}/--no-{flag[2:]}", *_BOOL_FLAGS.get(f.name, "").split(),
                                  f.name, default=None, help=doc)
        elif f.name in choices:
            option = click.option(
                flag, f.name, type=click.Choice(choices[f.name]), default=None, help=doc
            )
        else:
            option = click.option(flag, f.name, type=_CLICK_TYPES[kind], default=None, help=doc)
        func = option(func)
    return func


@click.command(
    cls=_Command,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.argument("app", required=False)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="JSON config file (default: $QACTUAR_CONFIG, else ./qactuar_config.json).",
)
@click.option(
    "--env-file",
    "env_file",
    type=click.Path(dir_okay=False),
    help="Dotenv file (KEY=VALUE lines) loaded into the environment before the config is "
    "read; variables already set win.",
)
@_options
@click.version_option(__version__, prog_name="qactuar")
def main(
    app: str | None, config_path: str | None, env_file: str | None, **settings: Any
) -> None:
    """Serve APP ('module:attribute'), or the config's APPS when no APP is given.

    Settings come from the defaults, then the JSON config file, then the
    environment (QACTUAR_<KEY>, with --env-file's lines), then these options;
    every option sets the config key of the same name in upper case.

    `qactuar admin --help`: the admin socket's client (status, apps, config, reload).
    """
    # a repeatable option not given is an empty tuple: "not given", like None
    given = {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()
             if v is not None and v != ()}
    if env_file:
        try:
            load_env_file(env_file)
        except EnvFileError as exc:
            click.echo(f"qactuar: {exc}", err=True)
            sys.exit(2)
    try:
        config = load_config(config_path, given, "command line")
    except ConfigError as exc:
        click.echo(f"qactuar: {exc}", err=True)
        sys.exit(2)
    sys.exit(serve(config, app))
