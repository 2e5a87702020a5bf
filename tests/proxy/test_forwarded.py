"""Proxy headers as pure functions: header lists of byte strings in, addresses out."""

from __future__ import annotations

import pytest

from qactuar.proxy import TrustedPeers, check_entries, parse_node, resolve
from qactuar.proxy.forwarded import forwarded_elements

PEER = ("127.0.0.1", 40000)
SERVER = ("127.0.0.1", 8000)
TRUSTED = TrustedPeers(["127.0.0.1", "::1", "10.0.0.0/8"])


def view(*headers: tuple[bytes, bytes], scheme: str = "http", trusted: TrustedPeers = TRUSTED,
         server: tuple[str, int] | None = SERVER):
    return resolve(list(headers), PEER, server, scheme, trusted)


# trust -------------------------------------------------------------------------


def test_trust_addresses_networks_unix_and_everyone():
    peers = TrustedPeers(["192.0.2.1, 2001:db8::/32", "unix"])
    assert peers.trusts("192.0.2.1")
    assert not peers.trusts("192.0.2.2")
    assert peers.trusts("2001:db8::5")
    assert peers.trusts("2001:DB8:0:0::5")  # any spelling of the address
    assert peers.trusts("::ffff:192.0.2.1")  # an IPv4 peer on a dual-stack socket
    assert not peers.trusts("not-an-address")
    assert peers.unix and not peers.everyone
    everyone = TrustedPeers(["*"])
    assert everyone.trusts("203.0.113.9") and everyone.unix
    nobody = TrustedPeers([])
    assert not nobody.trusts("127.0.0.1") and not nobody.unix


def test_trust_default_does_not_take_in_unix_peers():
    assert not TrustedPeers(["127.0.0.1", "::1"]).unix


@pytest.mark.parametrize("entry", ["localhost", "10.0.0.0/33", "1.2.3", "unix:", "**"])
def test_check_entries_refuses_what_is_no_address(entry):
    assert entry in (check_entries(["127.0.0.1", entry]) or "")


def test_trust_cache_stays_bounded():
    peers = TrustedPeers(["10.0.0.0/8"])
    for i in range(10000):
        peers.trusts(f"192.168.{i // 256}.{i % 256}")
    assert len(peers._cache) <= 4096


# X-Forwarded-* -------------------------------------------------------------------


def test_no_proxy_header_changes_nothing():
    assert view((b"host", b"example.com"), (b"x-forwarded", b"1.2.3.4")) is None


def test_x_forwarded_for_and_proto():
    assert view((b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-proto", b"https")) == (
        ("203.0.113.7", 0), SERVER, "https")


def test_rightmost_untrusted_hop_is_the_client():
    # the client forged the two on the left; 10.1.2.3 is a trusted proxy
    headers = (b"x-forwarded-for", b"6.6.6.6, 198.51.100.4, 10.1.2.3")
    assert view(headers)[0] == ("198.51.100.4", 0)


def test_every_hop_trusted_gives_the_leftmost():
    assert view((b"x-forwarded-for", b"10.0.0.1, 127.0.0.1"))[0] == ("10.0.0.1", 0)


def test_repeated_x_forwarded_for_fields_make_one_list():
    got = view((b"x-forwarded-for", b"198.51.100.4"), (b"x-forwarded-for", b"10.9.9.9"))
    assert got[0] == ("198.51.100.4", 0)


@pytest.mark.parametrize(("hop", "client"), [
    (b"198.51.100.4:5555", ("198.51.100.4", 5555)),
    (b"2001:db8::1", ("2001:db8::1", 0)),
    (b"[2001:db8::1]:443", ("2001:db8::1", 443)),
    (b"[2001:DB8::1]", ("2001:db8::1", 0)),
])
def test_hops_with_ports_and_ipv6(hop, client):
    assert view((b"x-forwarded-for", hop))[0] == client


@pytest.mark.parametrize("hop", [b"", b"garbage", b"1.2.3.4:99999", b"[1.2.3.4]:80", b"[::1",
                                 b"1.2.3.4:80:90", b"\xff\xfe", b"example.com"])
def test_malformed_hop_keeps_the_peer(hop):
    got = view((b"x-forwarded-for", hop))
    assert got is None or got[0] == PEER


def test_proto_values():
    assert view((b"x-forwarded-proto", b"wss"))[2] == "https"
    assert view((b"x-forwarded-proto", b"HTTPS "))[2] == "https"
    assert view((b"x-forwarded-proto", b"http"), scheme="https")[2] == "http"
    assert view((b"x-forwarded-proto", b"gopher"))[2] == "http"
    assert view((b"x-forwarded-proto", b"\xe9t\xe9"))[2] == "http"


def test_proto_aligned_with_the_client_hop_when_one_per_hop():
    got = view((b"x-forwarded-for", b"198.51.100.4, 10.0.0.1"),
               (b"x-forwarded-proto", b"https, http"))
    assert got[0] == ("198.51.100.4", 0) and got[2] == "https"
    # one value for several hops: the nearest proxy's
    got = view((b"x-forwarded-for", b"198.51.100.4, 10.0.0.1"), (b"x-forwarded-proto", b"https"))
    assert got[2] == "https"


def test_host_and_port_set_server():
    assert view((b"x-forwarded-host", b"example.com"), (b"x-forwarded-proto", b"https"))[1] == (
        "example.com", 443)
    assert view((b"x-forwarded-host", b"example.com"))[1] == ("example.com", 80)
    assert view((b"x-forwarded-host", b"example.com:8443"))[1] == ("example.com", 8443)
    assert view((b"x-forwarded-host", b"example.com"), (b"x-forwarded-port", b"81"))[1] == (
        "example.com", 81)
    assert view((b"x-forwarded-host", b"[2001:db8::2]:81"))[1] == ("2001:db8::2", 81)
    assert view((b"x-forwarded-port", b"8443"))[1] == ("127.0.0.1", 8443)
    assert view((b"x-forwarded-port", b"8443"), server=None)[1] is None


@pytest.mark.parametrize("host", [b"bad host", b"a/b", b"example.com:99999", b"", b"h:x"])
def test_malformed_host_keeps_the_server(host):
    assert view((b"x-forwarded-host", host))[1] == SERVER


@pytest.mark.parametrize("port", [b"x", b"70000", b"-1", b"\xd9\xa1"])
def test_malformed_port_is_ignored(port):
    assert view((b"x-forwarded-port", port))[1] == SERVER


# Forwarded (RFC 7239) -------------------------------------------------------------


def test_forwarded_rfc_examples():
    assert view((b"forwarded", b'for="_gazonk"')) == (PEER, SERVER, "http")
    assert view((b"forwarded", b'For="[2001:db8:cafe::17]:4711"'))[0] == ("2001:db8:cafe::17", 4711)
    got = view((b"forwarded", b"for=192.0.2.60;proto=http;by=203.0.113.43"), scheme="https")
    assert got == (("192.0.2.60", 0), SERVER, "http")
    assert view((b"forwarded", b"for=192.0.2.43, for=198.51.100.17"))[0] == ("198.51.100.17", 0)


def test_forwarded_walks_past_trusted_proxies_and_takes_the_elements_values():
    got = view((b"forwarded",
                b'for=6.6.6.6;proto=http, for=198.51.100.4;proto=https;host="example.com:8443", '
                b"for=10.0.0.1;proto=http"))
    assert got == (("198.51.100.4", 0), ("example.com", 8443), "https")


def test_forwarded_unknown_or_obfuscated_client_keeps_the_peer_but_not_the_rest():
    got = view((b"forwarded", b"for=unknown;proto=https;host=example.com"))
    assert got == (PEER, ("example.com", 443), "https")
    assert view((b"forwarded", b'for="[::1]:_port"'))[0] == ("::1", 0)
    assert view((b"forwarded", b"proto=https"))[2] == "https"


def test_forwarded_repeated_fields_join():
    got = view((b"forwarded", b"for=198.51.100.4"), (b"forwarded", b"for=10.0.0.1"))
    assert got[0] == ("198.51.100.4", 0)


@pytest.mark.parametrize("value", [
    b"for", b"for=", b'for="unterminated', b"for=1.2.3.4;for=5.6.7.8", b"for=a b",
    b"=1.2.3.4", b'for="1.2.3.4"x', b"\x00", b"for=1.2.3.4;proto=https\xff",
])
def test_forwarded_malformed_is_ignored(value):
    assert view((b"forwarded", value)) is None


def test_forwarded_elements_syntax():
    assert forwarded_elements('for="a\\"b" , ;proto=https') == [{"for": 'a"b'}, {"proto": "https"}]
    assert forwarded_elements("") == []
    assert forwarded_elements("for=1.2.3.4;") == [{"for": "1.2.3.4"}]


def test_x_forwarded_family_wins_over_forwarded():
    got = view((b"forwarded", b"for=6.6.6.6;proto=https"), (b"x-forwarded-for", b"198.51.100.4"))
    assert got == (("198.51.100.4", 0), SERVER, "http")


def test_parse_node():
    assert parse_node("unknown") is None
    assert parse_node("_hidden") is None
    assert parse_node("[::1]:x") is None
    assert parse_node(" 1.2.3.4 ") == ("1.2.3.4", 0)


def test_memo_gives_the_same_answers_and_stays_bounded():
    peers = TrustedPeers(["127.0.0.1"])
    headers = [(b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-proto", b"https")]
    first = resolve(headers, PEER, SERVER, "http", peers)
    assert resolve(headers, PEER, SERVER, "http", peers) == first == (
        ("203.0.113.7", 0), SERVER, "https")
    # what the memo holds does not depend on the connection's own values
    assert resolve(headers[:1] + [(b"x-forwarded-port", b"81")], None, None, "https", peers) == (
        ("203.0.113.7", 0), None, "https")
    for i in range(10000):
        resolve([(b"x-forwarded-for", f"198.51.{i // 256}.{i % 256}".encode())],
                PEER, SERVER, "http", peers)
    assert len(peers.memo) <= 4096
    peers.memo.clear()
    long_value = b", ".join([b"10.0.0.1"] * 100)
    assert resolve([(b"x-forwarded-for", long_value)], PEER, SERVER, "http", peers)[0] == (
        "10.0.0.1", 0)
    assert not peers.memo  # long values are not kept
