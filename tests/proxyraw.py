"""PROXY protocol headers built by hand, for the parser's and the servers' tests."""

from __future__ import annotations

import ipaddress
import struct

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1 = b"PROXY TCP4 198.51.100.4 192.0.2.1 51000 443\r\n"


def v2(command: int = 1, family: int = 0x11, body: bytes | None = None, tlv: bytes = b"",
       version: int = 2) -> bytes:
    """A v2 header; by default PROXY over TCP/IPv4 from 198.51.100.4:51000 to 192.0.2.1:443."""
    if body is None:
        body = (ipaddress.IPv4Address("198.51.100.4").packed
                + ipaddress.IPv4Address("192.0.2.1").packed + struct.pack("!HH", 51000, 443))
    body += tlv
    return V2_SIGNATURE + bytes([(version << 4) | command, family]) + struct.pack(
        "!H", len(body)) + body


def v2_ipv6(src: str = "2001:db8::7", dst: str = "2001:db8::1") -> bytes:
    """A v2 header over TCP/IPv6, ports 40000 to 8443."""
    body = (ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed
            + struct.pack("!HH", 40000, 8443))
    return v2(family=0x21, body=body)
