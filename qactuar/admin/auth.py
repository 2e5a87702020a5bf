"""Who may use the admin socket: the bearer token, the dashboard's session, CSRF.

Every request needs ``Authorization: Bearer <token>`` or the dashboard's
session cookie (``POST /login`` trades the token for one). The token is
compared with ``hmac.compare_digest``; it is never logged, nor any part of
it. A refused request is logged on ``qt_server`` with the client's address
and answered 401 at once. A wrong credential (token, session or its secret)
is a failure; a request with none at all guesses nothing and is not counted
(the dashboard's first look at ``/status``, a favicon). From the second
failure in a row, the address is
in penalty for a time that doubles with each failure (``delay_base``, up to
``delay_cap``): every request from it is answered 429 with ``Retry-After``
before any credential is looked at, so guesses sent in parallel gain nothing
and a right guess cannot be told by its timing. An IPv6 address counts by
its /64 (one host holds a whole /64). A success resets a single failure
(a typo), never an address in penalty (every local user is 127.0.0.1: an
open dashboard's polls must not wipe an attacker's count); the table of
addresses is bounded (the oldest is forgotten) and a count is forgotten
after ``FORGET_AFTER`` seconds without a failure.

Every request's ``Host`` must name the admin socket itself (``localhost``,
``127.0.0.1``, ``[::1]`` or ADMIN_HOST, with the admin port), else 421: a
web page whose name an attacker re-points at 127.0.0.1 (DNS rebinding)
reaches the socket with its own name as Host. On a Unix socket (no browser
reaches it) any Host is fine.

The session cookie holds a random id (``secrets.token_urlsafe``), never the
token; sessions are bounded in number (the oldest is dropped) and in age.
The cookie alone is not enough: cookies are not isolated by port (RFC 6265
section 8.5), so any other local service the browser visits receives it.
``POST /login`` also answers a per-session secret (random, never the token)
that the dashboard keeps in ``sessionStorage`` and sends as
``X-Qactuar-Session`` with every request; a cookie without the matching
header is a 401. The cookie's name holds the admin port (or a short hash of
the ADMIN_UDS path), so two servers on one host keep their own sessions.
It is ``HttpOnly; SameSite=Strict; Path=/`` and never ``Secure``: the
admin socket listens on loopback or a Unix socket (or behind the user's own
TLS proxy, which may add it), where a ``Secure`` cookie would never be sent
back. A mutating request (not GET/HEAD/OPTIONS) signed in by the cookie
must carry an ``Origin`` (else a ``Referer``) equal to the admin socket's
own origin (the request's scheme and ``Host``): else 403 (CSRF). A bearer
request needs none: a browser never adds the header by itself.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import secrets
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable

from ..logs import printable
from .web import Refusal, Request

__all__ = ["COOKIE", "SESSION_HEADER", "Guard", "cookie_name", "penalty_key"]

logger = logging.getLogger("qt_server")

#: The session cookie's name, before its port (or socket) suffix: ``cookie_name``.
COOKIE = "qactuar_admin"
#: Why a request that brought no credential at all was refused (not a guess).
NO_CREDENTIAL = "no token"
#: The header that carries a session's secret, beside its cookie.
SESSION_HEADER = "x-qactuar-session"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
#: Seconds after which an address's failures are forgotten.
FORGET_AFTER = 900.0


class Guard:
    """The admin socket's door: token and sessions, the failure penalties, CSRF."""

    def __init__(
        self,
        token: str,
        *,
        delay_base: float = 0.25,
        delay_cap: float = 8.0,
        max_addresses: int = 4096,
        max_sessions: int = 64,
        session_age: float = 12 * 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not token:
            raise ValueError("the admin socket needs a token")
        self._token = token.encode("utf-8")
        self.delay_base = delay_base
        self.delay_cap = delay_cap
        self.max_addresses = max_addresses
        self.max_sessions = max_sessions
        self.session_age = session_age
        self.clock = clock
        #: penalty key -> (failures in a row, clock() of the last one, clock() when its
        #: penalty ends); oldest first
        self._failures: OrderedDict[str, tuple[int, float, float]] = OrderedDict()
        #: sha256 of a session id -> (clock() when it was made, sha256 of its secret);
        #: oldest first
        self._sessions: OrderedDict[str, tuple[float, str]] = OrderedDict()

    # -- the token and the sessions --

    def token_matches(self, given: str) -> bool:
        # surrogatepass: a lone surrogate ("\ud800" in JSON) is a wrong token, not a 500
        return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), self._token)

    def new_session(self) -> tuple[str, str]:
        """(session id, its secret): the cookie's value and the header's."""
        sid, secret = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self._sessions[_digest(sid)] = (self.clock(), _digest(secret))
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)
        return sid, secret

    def end_session(self, sid: str) -> None:
        self._sessions.pop(_digest(sid), None)

    def _session(self, sid: str) -> str | None:
        """The digest of a live session's secret; None when it is unknown or expired."""
        key = _digest(sid)
        found = self._sessions.get(key)
        if found is None:
            return None
        if self.clock() - found[0] > self.session_age:
            del self._sessions[key]
            return None
        return found[1]

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    def identify(self, request: Request) -> tuple[str, str]:
        """("token" | "dashboard session" | "", why not) for ``request``."""
        authorization = request.headers.get("authorization")
        if authorization is not None:
            scheme, _, given = authorization.strip().partition(" ")
            if scheme.lower() != "bearer":
                return "", "an Authorization header that is not Bearer"
            if self.token_matches(given.strip()):
                return "token", ""
            return "", "a wrong token"
        sid = session_cookie(request)
        if sid is None:
            return "", NO_CREDENTIAL
        secret = self._session(sid)
        if secret is None:
            return "", "an unknown or expired session"
        header = request.headers.get(SESSION_HEADER)
        if header is None:
            return "", f"a session cookie without its {SESSION_HEADER} header"
        if not hmac.compare_digest(_digest(header), secret):
            return "", f"a session cookie with a wrong {SESSION_HEADER} header"
        return "dashboard session", ""

    # -- failures --

    def failed(self, address: str) -> float:
        """Count a failure from ``address``; the penalty it starts (seconds, 0 for none)."""
        key = penalty_key(address)
        now = self.clock()
        count, last, _ = self._failures.pop(key, (0, now, now))
        if now - last > FORGET_AFTER:
            count = 0
        count += 1
        penalty = 0.0  # a typo is forgiven at once
        if count > 1:
            penalty = float(min(self.delay_cap, self.delay_base * 2 ** (count - 2)))
        self._failures[key] = (count, now, now + penalty)
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)
        return penalty

    def penalty_left(self, address: str) -> float:
        """Seconds ``address`` is still in penalty (0: it may try)."""
        found = self._failures.get(penalty_key(address))
        return max(0.0, found[2] - self.clock()) if found is not None else 0.0

    def succeeded(self, address: str) -> None:
        """A success: forgets a single failure, never the count of an address in penalty."""
        key = penalty_key(address)
        found = self._failures.get(key)
        if found is not None and found[0] <= 1:
            del self._failures[key]

    def check_penalty(self, request: Request) -> None:
        """429 with Retry-After while the request's address is in penalty."""
        left = self.penalty_left(request.address)
        if left <= 0:
            return
        wait = max(1, math.ceil(left))
        logger.warning("admin: 429 for %s %s from %s: in penalty for %.2f s more after "
                       "repeated failures", request.method, printable(request.path),
                       request.client, left)
        raise Refusal(429, f"too many failed attempts from this address: retry in {wait} s",
                      [("retry-after", str(wait))])

    def refuse(self, request: Request, why: str, guess: bool = True) -> Refusal:
        """Log the refusal and, for a credential that was wrong (``guess``), count it as a
        failure and start its penalty; the 401 to answer. A request that brings no
        credential at all (the dashboard's first look, a favicon) guesses nothing."""
        if not guess:
            logger.info("admin: 401 for %s %s from %s: %s", request.method,
                        printable(request.path), request.client, why)
        else:
            penalty = self.failed(request.address)
            logger.warning(
                "admin: 401 for %s %s from %s: %s (failure %d in a row, next try in %.2f s)",
                request.method, printable(request.path), request.client, why,
                self._failures.get(penalty_key(request.address), (0, 0.0, 0.0))[0], penalty,
            )
        return Refusal(
            401, "this admin socket needs its token: Authorization: Bearer <token>",
            [("www-authenticate", 'Bearer realm="qactuar admin"')],
        )

    # -- DNS rebinding --

    @staticmethod
    def host_problem(request: Request, admin_host: str) -> str | None:
        """Why the request's Host is not the admin socket's own name, or None."""
        server = request.scope.get("server")
        if not server:
            return None  # a Unix socket: no browser reaches it
        port = int(server[1])
        host = request.headers.get("host")
        if host is None:
            return "the request has no Host header"
        names = {"localhost", "127.0.0.1", "[::1]", _bracketed(admin_host)}
        allowed = {f"{name}:{port}".lower() for name in names}
        if port == 80:
            allowed |= {name.lower() for name in names}
        if host.strip().lower() in allowed:
            return None
        return (f"the Host {printable(host)!r} is not this admin socket's name "
                f"(localhost, 127.0.0.1, [::1] or ADMIN_HOST, with port {port})")

    # -- CSRF --

    def csrf_problem(self, request: Request) -> tuple[int, str] | None:
        """(status, why) a cookie-signed mutating request cannot be trusted, or None."""
        if request.identity != "dashboard session" or request.method in SAFE_METHODS:
            return None
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            # a plain form or text/plain post (no CORS preflight) never passes
            return 415, (f"a change signed in by the dashboard's cookie must be "
                         f"content-type: application/json, not {printable(kind or 'none')!r}")
        own = own_origin(request)
        origin = request.headers.get("origin")
        header = "Origin"
        if origin is None:
            referer = request.headers.get("referer")
            if referer is None:
                return 403, ("CSRF: a request signed in by the dashboard's cookie must carry "
                             "an Origin or Referer header")
            parts = urllib.parse.urlsplit(referer)
            origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme else referer
            header = "Referer"
        if origin.rstrip("/").lower() != own.lower():
            return 403, (f"CSRF: the {header} {printable(origin)!r} is not this admin "
                         f"socket's origin {printable(own)!r}")
        return None


def penalty_key(address: str) -> str:
    """The key an address's failures count under: an IPv6 address by its /64."""
    if ":" not in address:
        return address
    try:
        return str(ipaddress.IPv6Network(f"{address.split('%')[0]}/64", strict=False))
    except ValueError:
        return address


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def own_origin(request: Request) -> str:
    scheme = request.scope.get("scheme", "http")
    return f"{scheme}://{request.headers.get('host', '')}"


def cookie_name(server: object, uds: str) -> str:
    """The session cookie's name for an admin socket: ``qactuar_admin_<port>`` on TCP
    (``server``: the scope's), ``qactuar_admin_<8 hex of the ADMIN_UDS path>`` else."""
    if isinstance(server, tuple | list) and len(server) >= 2:
        return f"{COOKIE}_{int(server[1])}"
    return f"{COOKIE}_{hashlib.sha256(uds.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"


def session_cookie(request: Request) -> str | None:
    for part in request.headers.get("cookie", "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name == request.cookie_name:
            return value.strip('"')
    return None


def cookie_header(name: str, sid: str, max_age: float) -> tuple[str, str]:
    """The Set-Cookie of a new session (``sid`` empty: the one that ends it)."""
    age = int(max_age) if sid else 0
    return ("set-cookie",
            f"{name}={sid}; Max-Age={age}; Path=/; HttpOnly; SameSite=Strict")


def _digest(sid: str) -> str:
    # sessions are looked up by a hash: the lookup's timing says nothing of an id
    return hashlib.sha256(sid.encode("utf-8", "surrogatepass")).hexdigest()
