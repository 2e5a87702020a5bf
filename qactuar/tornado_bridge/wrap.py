"""`wrap()`: a Tornado application, handler or URL rule list as an ASGI app."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from tornado import httputil, routing, web

from ._app import TornadoASGIApp, TornadoBridgeWarning
from ._mount import _BelowMountMatches, link_under_mount
from ._options import DEFAULT_CHUNK_SIZE, DEFAULT_MAX_BODY_SIZE, _ServerOptions


def is_tornado_object(obj: object) -> bool:
    """True if `wrap()` accepts ``obj``: an `Application`, a `Router`, a
    `RequestHandler` subclass, or a list of URL rules whose handlers are
    `RequestHandler` subclasses.

    A server's loader calls this on each configured app to decide whether
    to wrap it; everything else must be an ASGI app already.
    """
    if isinstance(obj, web.Application | httputil.HTTPServerConnectionDelegate):
        return True
    if isinstance(obj, type) and issubclass(obj, web.RequestHandler):
        return True
    if isinstance(obj, list | tuple) and obj:
        return all(_is_handler_rule(rule) for rule in obj)
    return False


def _is_handler_rule(rule: object) -> bool:
    if isinstance(rule, routing.Rule):
        target = rule.target
    elif isinstance(rule, list | tuple) and 2 <= len(rule) <= 4:
        target = rule[1]
    else:
        return False
    return isinstance(target, type) and issubclass(target, web.RequestHandler)


def wrap(
    obj: web.Application
    | httputil.HTTPServerConnectionDelegate
    | type[web.RequestHandler]
    | Sequence[Any],
    *,
    strip_root_path: bool = False,
    pattern: str | None = None,
    kwargs: dict[str, Any] | None = None,
    name: str | None = None,
    xheaders: bool = False,
    trusted_downstream: Sequence[str] = (),
    protocol: str | None = None,
    decompress_request: bool = False,
    chunk_size: int | None = None,
    max_body_size: int | None = None,
    body_timeout: float | None = None,
    **settings: Any,
) -> TornadoASGIApp:
    r"""Serve Tornado code as an ASGI 3 application.

    ``obj`` may be:

    - a `tornado.web.Application` (or any Tornado `Router`), served as is;
    - a `RequestHandler` subclass, served for every path under its mount, or
      for the paths below the mount that match ``pattern`` (whose groups
      become the handler's path arguments); ``kwargs`` go to its
      ``initialize()`` and ``name`` names the route for ``reverse_url``;
    - a list of URL rules, as given to `Application`; any further keyword
      arguments (``cookie_secret``, ``xsrf_cookies``, ``template_path``,
      ``static_path``, ``compress_response``, ...) are Application settings.

    The request goes through Tornado's own machinery exactly as Tornado's
    HTTPServer drives it (routing on the raw path, ``prepare``, error pages,
    cookies, ``@stream_request_body``, ``on_connection_close``...), on the
    ASGI server's event loop, so ``IOLoop.current()`` works in handlers.
    Handler tasks are never cancelled by the bridge.  ``WebSocketHandler``s
    are served over ASGI websockets (``open``, ``on_message``,
    ``write_message``, ``close``, ``on_close``, ``select_subprotocol``,
    ``check_origin``).

    Mounting: by default Tornado sees the full path (``root_path`` included),
    so URL patterns written for the full URL keep working and links made by
    ``reverse_url``/``static_url`` work behind the mount.  With
    ``strip_root_path=True`` Tornado sees the path below the mount (handlers
    written relative to it), and ``reverse_url``/``static_url`` put the mount
    back in front of the links they make.

    The remaining options are those of Tornado's `HTTPServer`: ``xheaders``
    and ``trusted_downstream`` (take ``remote_ip``/``protocol`` from
    ``X-Forwarded-For``/``X-Real-Ip``/``X-Scheme``/``X-Forwarded-Proto``),
    ``protocol``, ``decompress_request``, ``chunk_size`` (the largest piece
    given to ``data_received``), ``max_body_size`` (default 100 MiB) and
    ``body_timeout``.

    What plain ASGI cannot carry: the reason phrase (``set_status(code,
    reason)`` sends the code only), status codes of 600 and above, and
    websocket ping and pong frames (the server pings; ``on_ping``/``on_pong``
    are not called); compression is the server's too. Under qactuar the
    bridge carries all three through qactuar's ASGI extensions
    (``qactuar.http.response.reason``, ``qactuar.websocket.ping``), and warns
    once when the ``fork`` or ``prefork`` model splits state it can see the
    app keeps (``qactuar.process_model``; see `_processes`).  The server owns the
    processes, so ``debug=True``/``autoreload=True`` is turned off with a
    `TornadoBridgeWarning` (debug's other effects are kept).  Tornado objects
    bound at import time to an event loop the server does not run are
    reported with a `TornadoBridgeWarning` on the first request.

    Example::

        import tornado.web
        from qactuar.tornado_bridge import wrap

        class ItemHandler(tornado.web.RequestHandler):
            def initialize(self, store):
                self.store = store

            def get(self, item_id):
                self.write({"id": item_id, "value": self.store.get(item_id)})

        app = wrap(ItemHandler, pattern=r"/(\d+)", kwargs={"store": {}})
        # Mounted at /items, GET /items/7 calls ItemHandler.get("7").
    """
    options = _ServerOptions(
        strip_root_path=strip_root_path,
        xheaders=xheaders,
        trusted_downstream=tuple(trusted_downstream),
        protocol=protocol,
        decompress_request=decompress_request,
        chunk_size=chunk_size or DEFAULT_CHUNK_SIZE,
        max_body_size=DEFAULT_MAX_BODY_SIZE if max_body_size is None else max_body_size,
        body_timeout=body_timeout,
    )
    handler_only = (pattern, kwargs, name)
    if isinstance(obj, web.Application | httputil.HTTPServerConnectionDelegate):
        if settings or any(value is not None for value in handler_only):
            given = sorted(settings) + [
                key
                for key, value in zip(("pattern", "kwargs", "name"), handler_only, strict=True)
                if value is not None
            ]
            raise TypeError(
                f"wrap() got options {given} for an already built {type(obj).__name__}: "
                "set Application settings when building it"
            )
        target: httputil.HTTPServerConnectionDelegate = obj
        if isinstance(obj, web.Application):
            _turn_off_autoreload(obj.settings, built=True)
    elif isinstance(obj, type) and issubclass(obj, web.RequestHandler):
        rule = routing.URLSpec(pattern or r".*", obj, kwargs, name)
        rule.matcher = _BelowMountMatches(pattern or r".*")
        target = _build_application([rule], settings)
    elif isinstance(obj, list | tuple):
        if any(value is not None for value in handler_only):
            raise TypeError("pattern=, kwargs= and name= apply to a single RequestHandler")
        target = _build_application(list(obj), settings)
    else:
        raise TypeError(
            f"wrap() takes a tornado.web.Application, a RequestHandler subclass or a list "
            f"of URL rules, not {obj!r}"
        )
    if strip_root_path and isinstance(target, web.Application):
        link_under_mount(target)
    return TornadoASGIApp(target, options)


def _build_application(rules: list[Any], settings: dict[str, Any]) -> web.Application:
    _turn_off_autoreload(settings, built=False)
    return web.Application(rules, **settings)


def _turn_off_autoreload(settings: dict[str, Any], built: bool) -> None:
    wants = settings.get("autoreload", bool(settings.get("debug")))
    settings["autoreload"] = False
    if not wants:
        return
    message = (
        "Tornado's autoreload is turned off under the ASGI bridge: the server owns the "
        "processes (use the server's own reload instead); debug's other effects are kept."
    )
    if built:
        message += (
            " This Application was built with autoreload on, so Tornado may already have "
            "scheduled its checker: build it with autoreload=False."
        )
    warnings.warn(message, TornadoBridgeWarning, stacklevel=3)
