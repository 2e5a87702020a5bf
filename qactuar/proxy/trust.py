"""Which peers may speak for a client: ``FORWARDED_ALLOW_IPS``.

Each entry is an IP address (``10.0.0.7``, ``::1``), a network in CIDR
form (``10.0.0.0/8``, ``fd00::/8``), ``unix`` (peers on a Unix socket) or
``*`` (everyone, which also takes in Unix-socket peers); an entry may itself
be a comma-separated list. A proxy's connection is judged once, when it
opens, so a request costs nothing more than a bit already set; forwarded
hops (``X-Forwarded-For`` walks) are judged with the same rules.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

__all__ = ["TrustedPeers", "check_entries"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: Answers remembered for addresses that needed a network check; the cache
#: is emptied when full, so a flood of distinct peers costs no memory.
_CACHE_SIZE = 4096


def _entries(values: Iterable[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def check_entries(values: Iterable[str]) -> str | None:
    """Why ``values`` is not a valid FORWARDED_ALLOW_IPS, or None."""
    for entry in _entries(values):
        if entry in ("*", "unix"):
            continue
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return f"{entry!r} is not an IP address, a CIDR network, 'unix' or '*'"
    return None


class TrustedPeers:
    """``trusts(host)`` for an address string; ``unix`` for Unix-socket peers."""

    __slots__ = ("everyone", "unix", "_exact", "_networks", "_cache", "memo")

    def __init__(self, values: Iterable[str]) -> None:
        entries = _entries(values)
        problem = check_entries(entries)
        if problem:
            raise ValueError(problem)
        #: ``*``: every peer, a Unix-socket one included.
        self.everyone = "*" in entries
        #: Peers on a Unix socket (which have no address) are trusted.
        self.unix = self.everyone or "unix" in entries
        #: Single addresses, as the socket layer spells them (compressed,
        #: lower-case), for a set lookup with no parsing.
        self._exact: set[str] = set()
        self._networks: list[IPNetwork] = []
        for entry in entries:
            if entry in ("*", "unix"):
                continue
            network = ipaddress.ip_network(entry, strict=False)
            if network.num_addresses == 1:
                self._exact.add(str(network.network_address))
            else:
                self._networks.append(network)
        self._cache: dict[str, bool] = {}
        #: What ``forwarded.resolve`` learnt from header values with this
        #: trust set (bounded there), so that a proxy's usual values are
        #: parsed once.
        self.memo: dict[Any, Any] = {}

    def trusts(self, host: str) -> bool:
        """True if ``host`` (an address as text) is a trusted proxy."""
        if self.everyone or host in self._exact:
            return True
        known = self._cache.get(host)
        if known is not None:
            return known
        answer = self._judge(host)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        if len(host) <= 64:  # anything longer is no address: never pin it
            self._cache[host] = answer
        return answer

    def _judge(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [address]
        if isinstance(address, ipaddress.IPv6Address):
            if address.ipv4_mapped is not None:
                # a dual-stack socket shows an IPv4 peer as ::ffff:a.b.c.d
                candidates.append(address.ipv4_mapped)
            if address.scope_id:
                candidates.append(ipaddress.IPv6Address(str(address).partition("%")[0]))
        return any(
            str(candidate) in self._exact or any(candidate in net for net in self._networks)
            for candidate in candidates
        )
