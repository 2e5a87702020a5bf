"""Serve Tornado `RequestHandler`s and `Application`s as ASGI apps.

`wrap()` turns a Tornado Application, a single RequestHandler subclass or a
list of URL rules into an ASGI 3 application that behaves as Tornado's own
HTTPServer would.  It needs nothing from the rest of qactuar and runs under
any ASGI server.  `is_tornado_object()` tells a loader which objects to wrap.
"""

from ._app import TornadoASGIApp, TornadoBridgeWarning
from .wrap import is_tornado_object, wrap

__all__ = ["TornadoASGIApp", "TornadoBridgeWarning", "is_tornado_object", "wrap"]
