"""The PROXY protocol header (HAProxy's, versions 1 and 2), sans-I/O.

A balancer that passes TCP through (HAProxy ``send-proxy``, nginx's
``proxy_protocol on``, cloud load balancers) writes one header before the
client's first byte, telling the client's and the listener's addresses.
``ProxyHeaderParser.feed(data)`` takes bytes as they arrive and returns
None while the header is incomplete, then a ``ProxyHeader`` with the bytes
that followed it (the start of the HTTP stream). A header that is not one
raises ``ProxyProtocolError``: the caller closes the connection.

- v1 is one text line of at most 107 bytes: ``PROXY TCP4|TCP6 src dst
  sport dport\\r\\n`` or ``PROXY UNKNOWN ...\\r\\n``.
- v2 is binary: a 12-byte signature, version/command, family, a length
  and the addresses, then TLVs. Of those only ``PP2_TYPE_SSL`` is read:
  its client bit says the balancer took the client's TLS (HAProxy's
  ``send-proxy-v2-ssl``), so the scope's scheme is ``https``. ``LOCAL`` (a balancer's own
  health check) and families other than TCP over IPv4/IPv6 carry no client:
  the socket's own addresses stay (``addresses`` is None then).
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Final, NamedTuple

__all__ = ["ProxyHeader", "ProxyHeaderParser", "ProxyProtocolError"]

V1_PREFIX: Final = b"PROXY "
V2_SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"
#: The longest v1 line, CRLF included (the specification's figure).
V1_MAX: Final = 107
_V2_FIXED = 16
_TCP4, _TCP6 = 0x11, 0x21
#: The address block's size by address family (the family byte's high half).
_ADDRESS_SIZES: Final = {0x1: 12, 0x2: 36, 0x3: 216}
_PP2_TYPE_SSL = 0x20
_PP2_CLIENT_SSL = 0x01

Address = tuple[str, int]


class ProxyProtocolError(ValueError):
    """Bytes that are not a PROXY protocol header."""


class ProxyHeader(NamedTuple):
    #: (client, server) from the header, or None: keep the socket's (LOCAL, UNKNOWN).
    addresses: tuple[Address, Address] | None
    #: Bytes received after the header: the start of the proxied stream.
    rest: bytes
    version: int
    #: The client spoke TLS to the balancer (v2's PP2_TYPE_SSL TLV).
    tls: bool = False


class ProxyHeaderParser:
    """Collects one PROXY header from the start of a connection."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> ProxyHeader | None:
        buffer = self._buffer = self._buffer + data
        if not buffer:
            return None
        if buffer[:1] == b"P":
            return self._v1(buffer)
        if buffer[:1] == b"\r":
            return self._v2(buffer)
        raise ProxyProtocolError("no PROXY protocol header")

    def _v1(self, buffer: bytes) -> ProxyHeader | None:
        if not buffer.startswith(V1_PREFIX[: len(buffer)]):
            raise ProxyProtocolError("no PROXY protocol header")
        end = buffer.find(b"\r\n")
        if end < 0:
            if len(buffer) >= V1_MAX:
                raise ProxyProtocolError("PROXY v1 line too long")
            return None
        if end + 2 > V1_MAX:
            raise ProxyProtocolError("PROXY v1 line too long")
        return ProxyHeader(parse_v1(buffer[:end]), buffer[end + 2 :], 1)

    def _v2(self, buffer: bytes) -> ProxyHeader | None:
        if not buffer.startswith(V2_SIGNATURE[: len(buffer)]):
            raise ProxyProtocolError("no PROXY protocol header")
        if len(buffer) < _V2_FIXED:
            return None
        version_command, family, length = struct.unpack_from("!BBH", buffer, 12)
        if version_command >> 4 != 2:
            raise ProxyProtocolError(f"PROXY v2: unknown version {version_command >> 4}")
        command = version_command & 0x0F
        if command > 1:
            raise ProxyProtocolError(f"PROXY v2: unknown command {command}")
        if len(buffer) < _V2_FIXED + length:
            return None
        body = buffer[_V2_FIXED : _V2_FIXED + length]
        rest = buffer[_V2_FIXED + length :]
        if command == 0:  # LOCAL: the balancer's own connection
            return ProxyHeader(None, rest, 2)
        if family >> 4 > 3 or family & 0x0F > 2:
            raise ProxyProtocolError(f"PROXY v2: unknown family 0x{family:02x}")
        size = _ADDRESS_SIZES.get(family >> 4, 0)
        if length < size:
            raise ProxyProtocolError("PROXY v2: address block too short")
        tls = _tls(body[size:])
        if family not in (_TCP4, _TCP6):
            # UNSPEC, UDP or a Unix socket: nothing a TCP scope can say
            return ProxyHeader(None, rest, 2, tls)
        if family == _TCP4:
            src, dst, sport, dport = struct.unpack_from("!4s4sHH", body)
            addresses = (
                (str(ipaddress.IPv4Address(src)), sport),
                (str(ipaddress.IPv4Address(dst)), dport),
            )
        else:
            src, dst, sport, dport = struct.unpack_from("!16s16sHH", body)
            addresses = (
                (str(ipaddress.IPv6Address(src)), sport),
                (str(ipaddress.IPv6Address(dst)), dport),
            )
        return ProxyHeader(addresses, rest, 2, tls)


def _tls(tlvs: bytes) -> bool:
    """True if the TLVs hold a PP2_TYPE_SSL whose client bit is set; unknown TLVs are skipped."""
    pos = 0
    while pos + 3 <= len(tlvs):
        kind, size = tlvs[pos], int.from_bytes(tlvs[pos + 1 : pos + 3], "big")
        value = tlvs[pos + 3 : pos + 3 + size]
        if len(value) < size:
            raise ProxyProtocolError("PROXY v2: truncated TLV")
        if kind == _PP2_TYPE_SSL and value[:1] and value[0] & _PP2_CLIENT_SSL:
            return True
        pos += 3 + size
    return False


def parse_v1(line: bytes) -> tuple[Address, Address] | None:
    """The addresses of a v1 line without its CRLF; None for UNKNOWN."""
    parts = line.split(b" ")
    if len(parts) < 2 or parts[0] != b"PROXY":
        raise ProxyProtocolError("malformed PROXY v1 line")
    if parts[1] == b"UNKNOWN":
        return None  # whatever follows is to be ignored
    if len(parts) != 6 or parts[1] not in (b"TCP4", b"TCP6"):
        raise ProxyProtocolError("malformed PROXY v1 line")
    version = 4 if parts[1] == b"TCP4" else 6
    src = _v1_address(parts[2], version)
    dst = _v1_address(parts[3], version)
    return (src, _v1_port(parts[4])), (dst, _v1_port(parts[5]))


def _v1_address(text: bytes, version: int) -> str:
    try:
        address = ipaddress.ip_address(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise ProxyProtocolError("PROXY v1: bad address") from None
    if address.version != version:
        raise ProxyProtocolError("PROXY v1: address does not match the family")
    return str(address)


def _v1_port(text: bytes) -> int:
    if not text.isdigit() or len(text) > 5 or (len(text) > 1 and text[:1] == b"0"):
        raise ProxyProtocolError("PROXY v1: bad port")
    port = int(text)
    if port > 65535:
        raise ProxyProtocolError("PROXY v1: bad port")
    return port
