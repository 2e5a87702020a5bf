"""Sans-I/O HTTP/1.1 on httptools: bytes in, events out; events in, bytes out.

Nothing here touches a socket, an event loop or a process, so every rule is
tested with byte strings and every process model shares it.
"""

from .errors import LocalProtocolError, ProtocolError
from .events import END_OF_MESSAGE, Event, RequestHead
from .limits import Limits
from .parser import RequestParser
from .response import Response, check_field, error_response, informational

__all__ = [
    "END_OF_MESSAGE",
    "Event",
    "Limits",
    "LocalProtocolError",
    "ProtocolError",
    "RequestHead",
    "RequestParser",
    "Response",
    "check_field",
    "error_response",
    "informational",
]
