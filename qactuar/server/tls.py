"""TLS for every process model: the server's context and the ASGI TLS extension.

``server_tls(config)`` loads the certificate, key, client CAs and ciphers
once (each process that serves calls it as it starts, so a prefork worker
started after SIGHUP reads the files as they are then) and refuses what it
cannot load with a one-line ``ConfigError`` naming the key. TLS 1.2 is the
minimum; the handshake itself runs in the event loop's SSL transport, which
drops a client that has not finished it within ``SSL_HANDSHAKE_TIMEOUT``
(``tls_accept.TLSAcceptor`` runs it for each connection).

``ServerTLS.extension(ssl_object)`` is the scope's ``extensions["tls"]``
(ASGI TLS extension 0.2), built once per connection after the handshake.
A client certificate that fails verification fails the handshake (Python's
``ssl`` offers no way to accept it and report why), so ``client_cert_error``
is always None. Python 3.13 gives the client's whole chain; 3.11 and 3.12
give only its own certificate, which is then the chain's one entry.
"""

from __future__ import annotations

import logging
import re
import ssl
from dataclasses import dataclass
from typing import Any

from ..config import Config, ConfigError

__all__ = ["ServerTLS", "rfc4514_name", "server_tls"]

logger = logging.getLogger("qt_server")

_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----\s.*?-----END CERTIFICATE-----", re.DOTALL)
#: RFC 4514 short names of the attribute types OpenSSL names in getpeercert();
#: others get their dotted OID where known, else OpenSSL's long name.
_SHORT = {
    "commonName": "CN",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
    "emailAddress": "1.2.840.113549.1.9.1",
    "serialNumber": "2.5.4.5",
    "surname": "2.5.4.4",
    "givenName": "2.5.4.42",
    "title": "2.5.4.12",
}


@dataclass(frozen=True, slots=True)
class ServerTLS:
    """The loaded context and what every connection's TLS extension shares."""

    context: ssl.SSLContext
    #: The certificate the server sends, as PEM.
    server_cert: str | None
    #: OpenSSL cipher name -> IANA cipher suite number.
    suites: dict[str, int]
    handshake_timeout: float

    def extension(self, ssl_object: Any) -> dict[str, Any]:
        """``scope["extensions"]["tls"]`` for a connection whose handshake is done."""
        chain: list[str] = []
        name = None
        der = ssl_object.getpeercert(binary_form=True)
        if der:
            full = getattr(ssl_object, "get_unverified_chain", None)  # Python 3.13+
            ders = full() if full is not None else None
            chain = [ssl.DER_cert_to_PEM_cert(bytes(d)) for d in (ders or [der])]
            name = rfc4514_name(ssl_object.getpeercert().get("subject", ()))
        cipher = ssl_object.cipher()
        return {
            "server_cert": self.server_cert,
            "client_cert_chain": chain,
            "client_cert_name": name,
            "client_cert_error": None,
            "tls_version": _VERSIONS.get(ssl_object.version()),
            "cipher_suite": self.suites.get(cipher[0]) if cipher else None,
        }


def rfc4514_name(subject: Any) -> str:
    """``getpeercert()["subject"]`` as an RFC 4514 string (last RDN first)."""
    rdns = []
    for rdn in reversed(subject):
        rdns.append("+".join(f"{_SHORT.get(key, key)}={_escape(value)}" for key, value in rdn))
    return ",".join(rdns)


def _escape(value: str) -> str:
    out = re.sub(r'([\\"+,;<>])', r"\\\1", value).replace("\0", "\\00")
    if out.startswith((" ", "#")):
        out = "\\" + out
    if out.endswith(" ") and len(out) > 1:
        out = out[:-1] + "\\ "
    return out


def _readable(config: Config, key: str) -> str:
    path: str = getattr(config, key)
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise ConfigError(
            key, path, config.source_of(key), f"cannot read it: {exc.strerror}"
        ) from None
    return path


def _first_certificate(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            match = _PEM_CERT.search(fh.read())
        return ssl.DER_cert_to_PEM_cert(ssl.PEM_cert_to_DER_cert(match.group())) if match else None
    except (OSError, ValueError):
        return None


def _encrypted(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return b"ENCRYPTED" in fh.read(1 << 20)
    except OSError:
        return False


def _needs(config: Config, key: str, other: str) -> None:
    source = config.source_of(key)
    raise ConfigError(key, getattr(config, key), source, f"needs {other} as well")


def server_tls(config: Config) -> ServerTLS | None:
    """The TLS set-up ``config`` asks for, or None for plain HTTP.

    Raises ``ConfigError`` (one line, naming the key) for anything that does
    not load.
    """
    if not config.SSL_CERT_PATH:
        for key in ("SSL_KEY_PATH", "SSL_KEYFILE_PASSWORD", "SSL_CA_CERTS", "SSL_CIPHERS"):
            if getattr(config, key):
                _needs(config, key, "SSL_CERT_PATH")
        if config.SSL_CERT_REQS != "none":
            _needs(config, "SSL_CERT_REQS", "SSL_CERT_PATH")
        return None
    if config.SSL_CERT_REQS != "none" and not config.SSL_CA_CERTS:
        _needs(config, "SSL_CERT_REQS", "SSL_CA_CERTS")
    cert = _readable(config, "SSL_CERT_PATH")
    keyfile = _readable(config, "SSL_KEY_PATH") if config.SSL_KEY_PATH else None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= (
        ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION
    )
    password = config.SSL_KEYFILE_PASSWORD
    try:
        # A password callable even without a password: an encrypted key must
        # fail here, not make OpenSSL prompt on the terminal.
        context.load_cert_chain(cert, keyfile, password=lambda: password.encode())
    except ssl.SSLError as exc:
        # OpenSSL says only "PEM lib": tell a key that needs a password apart
        if _encrypted(keyfile or cert):
            which = "SSL_KEYFILE_PASSWORD"
            why = "wrong password for" if password else "no password given for"
            raise ConfigError(
                which,
                "***" if password else "",
                config.source_of(which),
                f"{why} the encrypted key {keyfile or cert}",
            ) from None
        raise ConfigError(
            "SSL_CERT_PATH",
            cert,
            config.source_of("SSL_CERT_PATH"),
            "cannot load the certificate and key (not PEM, or a key that does not match): "
            f"{exc.reason or exc}",
        ) from None
    if config.SSL_CA_CERTS:
        cafile = _readable(config, "SSL_CA_CERTS")
        try:
            context.load_verify_locations(cafile=cafile)
        except ssl.SSLError as exc:
            raise ConfigError(
                "SSL_CA_CERTS",
                cafile,
                config.source_of("SSL_CA_CERTS"),
                f"cannot load the CA certificates: {exc.reason or exc}",
            ) from None
    context.verify_mode = _REQS[config.SSL_CERT_REQS]
    if config.SSL_CIPHERS:
        try:
            context.set_ciphers(config.SSL_CIPHERS)
        except ssl.SSLError:
            raise ConfigError(
                "SSL_CIPHERS",
                config.SSL_CIPHERS,
                config.source_of("SSL_CIPHERS"),
                "OpenSSL selects no cipher from it",
            ) from None
    suites = {c["name"]: c["id"] & 0xFFFF for c in context.get_ciphers()}
    return ServerTLS(context, _first_certificate(cert), suites, config.SSL_HANDSHAKE_TIMEOUT)
