"""``qactuar.run()``: what the CLI and programmatic users call to serve."""

from __future__ import annotations

import copy
import logging
import sys
from typing import Any

from .asgi.types import ASGIApp
from .checks import check_config
from .config import Config, ConfigError, load_config
from .importer import AppImportError, build_app
from .logs import setup_logging
from .server import BindError

__all__ = ["run", "serve"]

logger = logging.getLogger("qt_server")


def _setup_logging(config: Config) -> None:
    try:
        setup_logging(config.LOGS, config.LOG_LEVEL, config.ACCESS_LOG)
    except (ValueError, TypeError, AttributeError, ImportError) as exc:
        reason = str(exc)
        if exc.__cause__ is not None:
            reason += f": {exc.__cause__}"
        raise ConfigError(
            "LOGS", config.LOGS, config.source_of("LOGS"), f"logging set-up failed: {reason}"
        ) from None


def serve(config: Config, app: str | ASGIApp | None = None) -> int:
    """Serve with a finished ``config``; returns the process exit status."""
    try:
        _setup_logging(config)
        check_config(config)
        if config.RELOAD:
            from .supervisors.reload import check_reload

            check_reload(config, app)
    except ConfigError as exc:
        print(f"qactuar: {exc}", file=sys.stderr)
        return 2
    if config.RELOAD:
        from .supervisors.reload import run_reload

        assert app is None or isinstance(app, str)  # check_reload refuses app objects
        return run_reload(config, app)
    if config.supervised:  # prefork, or fork with WORKERS: a master and its workers
        from .models.prefork import run_prefork

        return run_prefork(config, app)  # imports the apps itself (PRELOAD)
    try:
        asgi_app = build_app(
            config.APPS, app, config.LIFESPAN, config.FACTORY, config.APP_DIR
        )
    except AppImportError as exc:
        logger.error("Cannot load app: %s", exc)
        return 2
    target = app if isinstance(app, str) else None
    try:
        if config.MODEL == "async":
            from .models.async_ import run_async

            return run_async(asgi_app, config, target=target)
        if config.MODEL == "fork":
            from .models.fork import run_fork

            return run_fork(asgi_app, config, target)
        raise AssertionError(f"unknown MODEL {config.MODEL!r}")  # Config refuses these
    except BindError as exc:
        logger.error("%s", exc.strerror or exc)  # the message without "[Errno 98]"
        return 1


def run(
    app: str | ASGIApp | None = None,
    host: str | None = None,
    port: int | None = None,
    conf: Config | None = None,
    **settings: Any,
) -> None:
    """Serve ``app`` (an ASGI app or ``"module:attr"``) until stopped.

    ``conf`` is a ``qactuar.Config``; without one the config file is read as
    the CLI reads it. ``host``, ``port`` and any other setting given as a
    keyword (``workers=4`` or ``WORKERS=4``) override both. Exits the
    process with a non-zero status if start-up fails.
    """
    overrides = {key.upper(): value for key, value in settings.items()}
    overrides["HOST"] = host
    overrides["PORT"] = port
    try:
        if conf is not None:
            config = copy.deepcopy(conf)
            config.update({k: v for k, v in overrides.items() if v is not None}, "run() arguments")
        else:
            config = load_config(None, overrides, "run() arguments")
    except ConfigError as exc:
        print(f"qactuar: {exc}", file=sys.stderr)
        sys.exit(2)
    status = serve(config, app)
    if status:
        sys.exit(status)
