"""Turns ``"module:attribute"`` strings into ASGI apps, with errors a user can act on.

``APP_DIR`` goes first on ``sys.path`` before anything is imported (else the
current directory is importable, as ``python -m`` makes it); ``FACTORY``
means the attribute named on the command line is a callable that returns
the app, called once in each process that imports the apps.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from typing import Any

from .asgi.types import ASGIApp

__all__ = ["AppImportError", "build_app", "import_from_string", "load_app"]


class AppImportError(Exception):
    """An app could not be imported or is not something qactuar can serve."""


def import_from_string(target: str) -> Any:
    """Import ``module:attr`` (attr may be dotted); the cwd is importable."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise AppImportError(f"{target!r}: expected 'module:attribute', e.g. 'myapp:app'")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise AppImportError(f"{target!r}: no module named {exc.name!r}") from None
        raise AppImportError(f"{target!r}: importing {module_name!r} failed: {exc!r}") from exc
    except Exception as exc:
        raise AppImportError(f"{target!r}: importing {module_name!r} failed: {exc!r}") from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppImportError(
                f"{target!r}: module {module_name!r} has no attribute {attr!r}"
            ) from None
    return obj


def as_asgi_app(obj: Any, name: str) -> ASGIApp:
    """``obj`` itself if it is an ASGI app; Tornado objects wrapped with the bridge."""
    # A Tornado object exists only once its module imported tornado: a server
    # of ASGI apps never imports the bridge, nor Tornado (4 MiB of its memory).
    if "tornado" in sys.modules:
        from . import tornado_bridge

        if tornado_bridge.is_tornado_object(obj):
            return tornado_bridge.wrap(obj)
    if inspect.isclass(obj) or not callable(obj):
        raise AppImportError(
            f"{name!r} is a {type(obj).__name__}, not an ASGI app, a Tornado "
            "RequestHandler subclass, Application or list of URL rules"
        )
    return obj  # type: ignore[no-any-return]


def load_app(target: str | ASGIApp) -> ASGIApp:
    if isinstance(target, str):
        return as_asgi_app(import_from_string(target), target)
    return as_asgi_app(target, getattr(target, "__name__", repr(target)))


def call_factory(factory: Any, name: str) -> Any:
    """What the app factory ``factory`` returns; errors name it."""
    if not callable(factory):
        raise AppImportError(
            f"{name!r} is a {type(factory).__name__}: FACTORY needs a callable that returns the app"
        )
    try:
        app = factory()
    except Exception as exc:
        raise AppImportError(f"calling the app factory {name!r} failed: {exc!r}") from exc
    if inspect.isawaitable(app):
        if inspect.iscoroutine(app):
            app.close()
        raise AppImportError(
            f"the app factory {name!r} is async: it must return the app, not a coroutine"
        )
    return app


def use_app_dir(app_dir: str) -> None:
    """Put ``app_dir`` first on sys.path (once), so that apps are imported from it."""
    if app_dir:
        path = os.path.abspath(app_dir)
        if "" not in sys.path:
            sys.path.insert(0, "")  # the cwd stays importable, after app_dir
        if sys.path[:1] != [path]:
            sys.path.insert(0, path)


def build_app(
    apps: dict[str, str],
    app: str | ASGIApp | None = None,
    lifespan: str = "auto",
    factory: bool = False,
    app_dir: str = "",
) -> ASGIApp:
    """The one ASGI app a server runs: ``app`` itself, or the APPS mount table.

    With ``factory``, ``app`` names (or is) a callable that returns the app;
    APPS entries always name apps.
    """
    from .routing import Router

    use_app_dir(app_dir)
    if factory:
        if app is None:
            raise AppImportError(
                "FACTORY applies to the app named on the command line (or given to "
                "run()), not to APPS: name the factory as 'module:create_app'"
            )
        name = app if isinstance(app, str) else getattr(app, "__name__", repr(app))
        made = call_factory(import_from_string(app) if isinstance(app, str) else app, name)
        return as_asgi_app(made, name)
    if app is not None:
        return load_app(app)
    if not apps:
        raise AppImportError(
            "no app to serve: pass 'module:app' on the command line or set APPS in the config"
        )
    if list(apps) == ["/"]:
        return load_app(apps["/"])
    return Router({route: load_app(target) for route, target in apps.items()}, lifespan)
