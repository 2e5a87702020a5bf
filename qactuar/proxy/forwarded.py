"""Proxy headers: who the client is, when a trusted proxy says so.

Sans-I/O: ``resolve(headers, client, server, scheme, trusted)`` takes a
request's header list (lower-case names, byte values) and the connection's
own addresses and returns what the scope should say instead, or None when
the request carries no proxy header. The caller asks only for connections
from a trusted proxy (``FORWARDED_ALLOW_IPS``); from anyone else every one
of these headers is a claim the client made about itself.

Two families are read:

- ``X-Forwarded-For`` / ``-Proto`` / ``-Host`` / ``-Port`` (nginx, HAProxy,
  cloud balancers). Each proxy appends the address it was reached from to
  ``X-Forwarded-For``, so the client is the rightmost hop that is not itself
  a trusted proxy (a client can put anything on the left; every hop to the
  right of the one we pick was added by a proxy we trust). If every hop is
  trusted, the leftmost is the client. ``-Proto``/``-Host``/``-Port`` are
  taken from the same position when they list one value per hop, else
  their rightmost value (set by the proxy nearest to us).
- RFC 7239 ``Forwarded``: elements ``for=...;proto=...;host=...``, one per
  proxy, walked the same way; the chosen element gives all three. Quoted
  values and ``"[2001:db8::1]:4711"`` nodes are understood; an ``unknown``
  or obfuscated (``_hidden``) node ends the walk without a client address,
  while that element's proto and host still count.

When a request has both, the ``X-Forwarded-*`` family wins and ``Forwarded``
is ignored whole: the proxies that set ``X-Forwarded-For`` (nginx's usual
recipe, HAProxy's ``option forwardfor``) pass a client's own ``Forwarded``
field through untouched, so believing it would let the client choose its
address. A proxy that sends ``Forwarded`` should drop incoming
``X-Forwarded-*`` fields.

Anything malformed (a hop that is no address, a bad port, a broken
``Forwarded`` syntax, an unknown scheme) is ignored: the connection's own
value stays. An address from ``X-Forwarded-For`` has port 0 unless the hop
carries one, as uvicorn does.
"""

from __future__ import annotations

import re
import socket
from operator import itemgetter
from typing import Any, Final

from .trust import TrustedPeers

__all__ = ["PROXY_HEADER_NAMES", "parse_node", "resolve"]

Address = tuple[str, int]

#: Every header field this module reads.
PROXY_HEADER_NAMES: Final = frozenset(
    (b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port",
     b"forwarded")
)
_SCHEMES: Final = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_name = itemgetter(0)
#: Hops remembered per trust set, and the longest header values remembered.
_MEMO_SIZE = 4096
_MEMO_BYTES = 512
_UNKNOWN: Final[Any] = object()

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
#: One forwarded-pair (or none) and the separator after it (RFC 7239 §4).
_CTL = r"\x00-\x08\x0a-\x1f\x7f"
_QUOTED = rf'"(?:[^"\\{_CTL}]|\\[^{_CTL}])*"'
_ITEM: Final = re.compile(rf"[ \t]*(?:({_TOKEN})=({_TOKEN}|{_QUOTED}))?[ \t]*([;,]|\Z)")
_ESCAPE: Final = re.compile(r"\\(.)")
#: A Host value (RFC 9110 §7.2): a bracketed IPv6 literal or a reg-name/IPv4, optional port.
_HOST: Final = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]+)(?::([0-9]{1,5}))?\Z")


#: What the proxy that received the client's connection said: client, proto, host, port.
_Hop = tuple[Address | None, str | None, str | None, str | None]


def resolve(
    headers: list[tuple[bytes, bytes]],
    client: Address | None,
    server: Address | None,
    scheme: str,
    trusted: TrustedPeers,
) -> tuple[Address | None, Address | None, str] | None:
    """(client, server, scheme) as the proxy headers give them; None if there are none.

    ``scheme`` is ``http`` or ``https`` (a WebSocket scope derives ``ws``/``wss``).
    """
    if PROXY_HEADER_NAMES.isdisjoint(map(_name, headers)):
        return None  # the common case: one pass over the names, in C
    # Behind a proxy this runs for every request: the hop a set of values
    # gives is remembered (a proxy sends the same few over and over).
    fields: dict[bytes, bytes] = {}
    for name, value in headers:
        if name in PROXY_HEADER_NAMES:
            fields[name] = fields[name] + b"," + value if name in fields else value
    key = tuple(fields.items())
    memo = trusted.memo
    hop: _Hop | None = memo.get(key, _UNKNOWN)
    if hop is _UNKNOWN:
        hop = _hop(fields, trusted)
        if sum(map(len, fields.values())) <= _MEMO_BYTES:
            if len(memo) >= _MEMO_SIZE:
                memo.clear()
            memo[key] = hop
    if hop is None:
        return None
    hop_client, proto, host, port = hop
    if hop_client is not None:
        client = hop_client
    if proto is not None:
        scheme = _SCHEMES.get(proto.lower(), scheme)
    if host is not None or port is not None:
        server = _server(host, port, server, scheme)
    return client, server, scheme


def _hop(fields: dict[bytes, bytes], trusted: TrustedPeers) -> _Hop | None:
    text = {name: value.decode("latin-1") for name, value in fields.items()}
    forwarded = text.pop(b"forwarded", None)
    if text:
        return _x_forwarded_hop(text, trusted)
    if forwarded is not None:
        return _forwarded_hop(forwarded, trusted)
    return None


def _server(
    host_text: str | None, port_text: str | None, server: Address | None, scheme: str
) -> Address | None:
    port = None if port_text is None else _port(port_text)
    if host_text is not None:
        match = _HOST.match(host_text)
        host_port = _port(match.group(2)) if match is not None and match.group(2) else None
        if match is not None and (match.group(2) is None or host_port is not None):
            host = match.group(1)
            if host.startswith("["):
                host = host[1:-1]
            if host_port is not None:
                port = host_port
            return (host, _DEFAULT_PORTS[scheme] if port is None else port)
    if port is not None and server is not None:
        return (server[0], port)
    return server


def _port(text: str) -> int | None:
    if text.isascii() and text.isdigit() and len(text) <= 5 and int(text) <= 65535:
        return int(text)
    return None


def parse_node(text: str) -> Address | None:
    """An address from ``1.2.3.4``, ``1.2.3.4:80``, ``::1``, ``[::1]``, ``[::1]:80``.

    None for anything else (``unknown``, an obfuscated ``_name``, a host
    name, garbage). An obfuscated port (``[::1]:_p``) gives port 0.
    """
    text = text.strip()
    bracketed = text.startswith("[")
    if bracketed:
        end = text.find("]")
        if end < 0:
            return None
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    address = _address(host)
    if address is None or (bracketed and ":" not in address):
        return None
    port = 0
    if port_text:
        parsed = _port(port_text)
        if parsed is not None:
            port = parsed
        elif not (port_text.startswith("_") and re.fullmatch(r"_[A-Za-z0-9._-]+", port_text)):
            return None
    return (address, port)


def _address(host: str) -> str | None:
    """``host`` as the socket layer spells an address (IPv6 compressed), or None.

    ``inet_pton`` is strict (no leading zeros, no short forms) and some
    twenty times faster than ``ipaddress``: this runs for every proxied request.
    """
    try:
        if ":" in host:
            return socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, host))
        socket.inet_pton(socket.AF_INET, host)  # strict dotted quad: already canonical
    except (OSError, ValueError):
        return None
    return host


def _pick(hops: list[str], trusted: TrustedPeers) -> tuple[int, Address | None]:
    """The index of the client's hop (rightmost untrusted, else leftmost) and its address.

    A hop that is no address (empty, a name, garbage) ends the walk: the
    client is not known.
    """
    for index in range(len(hops) - 1, -1, -1):
        node = parse_node(hops[index])
        if node is None or not trusted.trusts(node[0]):
            return index, node
    return 0, parse_node(hops[0])


def _aligned(value: str | None, index: int, count: int) -> str | None:
    """The item of a comma list at the client's hop if it has one per hop, else the last."""
    if value is None:
        return None
    if "," not in value:
        return value.strip()
    items = value.split(",")
    return (items[index] if len(items) == count else items[-1]).strip()


def _x_forwarded_hop(fields: dict[bytes, str], trusted: TrustedPeers) -> _Hop:
    index = count = 0
    client = None
    hops_text = fields.get(b"x-forwarded-for")
    if hops_text is not None:
        hops = hops_text.split(",")
        count = len(hops)
        index, client = _pick(hops, trusted)
    return (
        client,
        _aligned(fields.get(b"x-forwarded-proto"), index, count),
        _aligned(fields.get(b"x-forwarded-host"), index, count),
        _aligned(fields.get(b"x-forwarded-port"), index, count),
    )


def forwarded_elements(text: str) -> list[dict[str, str]] | None:
    """The elements of a ``Forwarded`` value, names lower-cased; None if malformed."""
    elements: list[dict[str, str]] = [{}]
    pos = 0
    while True:
        match = _ITEM.match(text, pos)
        if match is None:
            return None
        name, value, sep = match.groups()
        if name is not None:
            if value.startswith('"'):
                value = _ESCAPE.sub(r"\1", value[1:-1])
            element = elements[-1]
            if name.lower() in element:
                return None  # a parameter repeated in one element (§4)
            element[name.lower()] = value
        if not sep:
            break
        if sep == ",":
            elements.append({})
        pos = match.end()
    return [element for element in elements if element]


def _forwarded_hop(text: str, trusted: TrustedPeers) -> _Hop | None:
    elements = forwarded_elements(text)
    if not elements:
        return None
    chosen = elements[0]
    client = None
    for element in reversed(elements):
        node = parse_node(element["for"]) if "for" in element else None
        if node is None or not trusted.trusts(node[0]):
            chosen, client = element, node
            break
    else:
        client = parse_node(chosen["for"])
    return (client, chosen.get("proto"), chosen.get("host"), None)
