"""Serving a Tornado application below an ASGI mount point.

By default Tornado sees the full path (``root_path`` included), so nothing
here is needed.  With ``strip_root_path=True`` Tornado sees paths relative
to the mount; then the links it makes (`reverse_url`, `static_url`) must get
the mount prefix back, or they would point outside the mount.  The prefix
differs per request (the same app may be mounted twice), so it travels in a
context variable that the bridge sets for each request; Tornado's handler
tasks inherit it.

A single `RequestHandler` wrapped with ``pattern=`` matches that pattern
against the path below its mount, whichever path Tornado sees.
"""

from __future__ import annotations

import contextvars
from typing import Any, cast

from tornado import httputil, routing, web

mount_prefix: contextvars.ContextVar[str] = contextvars.ContextVar(
    "qactuar_tornado_bridge_mount_prefix", default=""
)

_PATCHED = "_qactuar_links_under_mount"


def link_under_mount(app: web.Application) -> None:
    """Make ``app``'s reverse_url and static_url prefix the current mount.

    Harmless outside a stripped mount: the prefix is then empty.
    """
    if getattr(app, _PATCHED, False):
        return
    plain_reverse_url = app.reverse_url

    def reverse_url(name: str, *args: Any) -> str:
        return mount_prefix.get() + plain_reverse_url(name, *args)

    app.reverse_url = reverse_url  # type: ignore[method-assign]

    static_class: type[web.StaticFileHandler] = app.settings.get(
        "static_handler_class", web.StaticFileHandler
    )

    class _MountedStaticFileHandler(static_class):  # type: ignore[valid-type,misc]
        @classmethod
        def make_static_url(cls, settings: dict[str, Any], path: str, **kwargs: Any) -> str:
            url: str = super().make_static_url(settings, path, **kwargs)
            return mount_prefix.get() + url

    _MountedStaticFileHandler.__name__ = static_class.__name__
    _MountedStaticFileHandler.__qualname__ = static_class.__qualname__
    app.settings["static_handler_class"] = _MountedStaticFileHandler
    setattr(app, _PATCHED, True)


class _PathView:
    """The one attribute `PathMatches.match` reads from a request."""

    def __init__(self, path: str) -> None:
        self.path = path


class _BelowMountMatches(routing.PathMatches):
    """`PathMatches` against the part of the path below the ASGI mount."""

    def match(self, request: httputil.HTTPServerRequest) -> dict[str, Any] | None:
        path = request.path
        prefix: str = getattr(getattr(request.connection, "context", None), "route_prefix", "")
        if prefix and path.startswith(prefix):
            path = path[len(prefix) :]
        return super().match(cast(httputil.HTTPServerRequest, _PathView(path)))
