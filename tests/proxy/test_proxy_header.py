"""The PROXY protocol header parser, fed byte strings (whole, byte by byte, broken)."""

from __future__ import annotations

import pytest
from proxyraw import V2_SIGNATURE, v2, v2_ipv6

from qactuar.proxy import ProxyHeaderParser, ProxyProtocolError


def parse(data: bytes, *, bytewise: bool = False):
    """Feed ``data`` whole, or a byte at a time: then nothing comes before the last byte."""
    parser = ProxyHeaderParser()
    if not bytewise:
        return parser.feed(data)
    for i in range(len(data) - 1):
        assert parser.feed(data[i : i + 1]) is None
    return parser.feed(data[-1:])


@pytest.mark.parametrize("bytewise", [False, True])
def test_v1_tcp4(bytewise):
    header = parse(b"PROXY TCP4 198.51.100.4 192.0.2.1 51000 443\r\n", bytewise=bytewise)
    assert header.addresses == (("198.51.100.4", 51000), ("192.0.2.1", 443))
    assert header.version == 1 and header.rest == b""
    header = parse(b"PROXY TCP4 198.51.100.4 192.0.2.1 51000 443\r\nGET / HTTP/1.1\r\n")
    assert header.rest == b"GET / HTTP/1.1\r\n"


def test_v1_tcp6_and_unknown():
    header = parse(b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 8443\r\n")
    assert header.addresses == (("2001:db8::7", 40000), ("2001:db8::1", 8443))
    assert parse(b"PROXY UNKNOWN\r\n").addresses is None
    assert parse(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nX").rest == b"X"


def test_incomplete_headers_wait():
    assert ProxyHeaderParser().feed(b"PROXY TCP4 198.51.100.4") is None
    assert ProxyHeaderParser().feed(V2_SIGNATURE[:5]) is None
    assert ProxyHeaderParser().feed(v2()[:20]) is None


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\n\r\n",
    b"PROXX TCP4",
    b"\r\n\r\nGET",
    b"PROXY TCP4 198.51.100.4 192.0.2.1 51000\r\n",
    b"PROXY TCP4 2001:db8::1 192.0.2.1 1 2\r\n",
    b"PROXY TCP6 198.51.100.4 192.0.2.1 1 2\r\n",
    b"PROXY TCP4 198.51.100.4 192.0.2.1 65536 2\r\n",
    b"PROXY TCP4 198.51.100.4 192.0.2.1 080 2\r\n",
    b"PROXY TCP4 198.51.100.4 192.0.2.1 -1 2\r\n",
    b"PROXY TCP4  198.51.100.4 192.0.2.1 1 2\r\n",
    b"PROXY TCP4 host 192.0.2.1 1 2\r\n",
    b"PROXY UDP4 198.51.100.4 192.0.2.1 1 2\r\n",
    b"PROXY \xff\r\n",
    b"PROXY TCP4 " + b"1" * 120,
    b"PROXY UNKNOWN " + b"x" * 100 + b"\r\n",
    v2(version=1),
    v2(command=2),
    v2(family=0x51),
    v2(family=0x11, body=b"\x00" * 8),
    v2(family=0x21, body=b"\x00" * 20),
])
def test_garbage_is_refused(data):
    with pytest.raises(ProxyProtocolError):
        parse(data)


def test_v2_tcp4_with_tlvs_skipped():
    header = parse(v2(tlv=b"\x04\x00\x03abc") + b"GET")
    assert header.addresses == (("198.51.100.4", 51000), ("192.0.2.1", 443))
    assert header.rest == b"GET" and header.version == 2


@pytest.mark.parametrize("bytewise", [False, True])
def test_v2_ipv6(bytewise):
    header = parse(v2_ipv6(), bytewise=bytewise)
    assert header.addresses == (("2001:db8::7", 40000), ("2001:db8::1", 8443))


def test_v2_local_and_unspec_keep_the_socket_addresses():
    assert parse(v2(command=0, family=0, body=b"") + b"GET").addresses is None
    assert parse(v2(command=0) + b"x").rest == b"x"  # LOCAL ignores an address block
    assert parse(v2(family=0x00, body=b"")).addresses is None
    assert parse(v2(family=0x31, body=b"\x00" * 216)).addresses is None  # a Unix socket


def test_v2_ssl_tlv_says_the_client_spoke_tls():
    ssl_tlv = b"\x20\x00\x05" + b"\x01" + b"\x00\x00\x00\x00"  # PP2_TYPE_SSL, client bit
    assert parse(v2(tlv=b"\x04\x00\x00" + ssl_tlv)).tls
    assert not parse(v2(tlv=b"\x20\x00\x05" + b"\x00" * 5)).tls
    assert not parse(v2()).tls
    assert not parse(b"PROXY TCP4 198.51.100.4 192.0.2.1 51000 443\r\n").tls
    with pytest.raises(ProxyProtocolError):
        parse(v2(tlv=b"\x20\x00\x09\x01"))  # a TLV longer than the block


def test_v2_udp_and_unix_datagram_keep_the_socket_addresses_and_read_tlvs_after_them():
    ssl_tlv = b"\x20\x00\x05\x01\x00\x00\x00\x00"
    header = parse(v2(family=0x12, tlv=ssl_tlv))
    assert header.addresses is None and header.tls
    header = parse(v2(family=0x32, body=b"\x00" * 216, tlv=ssl_tlv))
    assert header.addresses is None and header.tls
    assert ProxyHeaderParser().feed(b"") is None
