"""What proxies in front of the server tell it: proxy headers and the PROXY protocol.

Sans-I/O like ``http/``: pure functions and small parsers over bytes and
address strings, driven by the server core (``server/protocol.py`` and
``server/handoff.py``), so every process model gets them once.
"""

from .forwarded import PROXY_HEADER_NAMES, parse_node, resolve
from .proxy_protocol import ProxyHeader, ProxyHeaderParser, ProxyProtocolError
from .trust import TrustedPeers, check_entries

__all__ = [
    "PROXY_HEADER_NAMES",
    "ProxyHeader",
    "ProxyHeaderParser",
    "ProxyProtocolError",
    "TrustedPeers",
    "check_entries",
    "parse_node",
    "resolve",
]
