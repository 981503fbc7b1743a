"""TLS for every listener: settings -> `ssl.SSLContext`, certificate reload, a sans-IO session.

    opts = TLSOptions(certfile="server.pem", keyfile="key.pem", cafile="ca.pem",
                      verify="verify_peer", fail_if_no_peer_cert=True)
    ctx = server_context(opts)      # TLS 1.2 and 1.3 only (RabbitMQ's default since 3.12)
    reload_context(ctx, opts)       # new handshakes use the files' current cert and key;
                                    # established connections keep theirs
    session = TLSSession(ctx)       # bytes in -> plaintext out, plaintext in -> bytes out

    contexts = ListenerContexts(opts)           # one broker's TLS listeners
    ctx = contexts.context("https")             # amqps, https, mqtt/ssl, https/web-mqtt, ...
    contexts.reload()                           # SIGHUP / ctl reload_certificates: all of them

The option names follow RabbitMQ's `ssl_options.*` (https://www.rabbitmq.com/docs/ssl):
`verify_none` / `verify_peer`, `fail_if_no_peer_cert`. Any listener (AMQP, HTTP, MQTT) can
pass the context to asyncio or aiohttp (`ListenerContexts.context(name)`); the AMQP listener uses `TLSSession` instead, so that
a refused handshake (expired or untrusted client certificate) is logged with its peer and
reason, which asyncio only does in debug mode.

`cert_login_name` maps a verified client certificate to a user name for SASL EXTERNAL
(RabbitMQ's `ssl_cert_login_from`: `distinguished_name`, `common_name` or
`subject_alternative_name`).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

VERIFY_MODES = ("verify_none", "verify_peer")
LOGIN_FROM = ("distinguished_name", "common_name", "subject_alternative_name")
SAN_TYPES = ("dns", "ip", "email", "uri")


class TLSConfigError(ValueError):
    """The certificate, key or CA cannot be loaded (message says which and why)."""


@dataclass(frozen=True)
class TLSOptions:
    certfile: str
    keyfile: str | None = None  # None: the key is in certfile
    password: str | None = None  # of an encrypted key
    cafile: str | None = None  # CAs that sign client certificates
    verify: str = "verify_none"
    fail_if_no_peer_cert: bool = False
    # OpenSSL cipher list for TLS 1.2. TLS 1.3 suites cannot be chosen: Python's `ssl` has
    # no binding for SSL_CTX_set_ciphersuites, so OpenSSL's default 1.3 suites are offered
    # (docs/security.md, "Cipher suites").
    ciphers: str | None = None


def server_context(opts: TLSOptions) -> ssl.SSLContext:
    """A server-side context for these options; raises TLSConfigError on a bad file."""
    if opts.verify not in VERIFY_MODES:
        raise TLSConfigError(f"verify must be one of {', '.join(VERIFY_MODES)}")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # https://www.rabbitmq.com/docs/ssl#tls-versions: TLS 1.0 and 1.1 are off.
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    if opts.ciphers:
        try:
            ctx.set_ciphers(opts.ciphers)
        except ssl.SSLError as exc:
            raise TLSConfigError(f"ciphers {opts.ciphers!r}: {_reason(exc)}") from None
    _load_chain(ctx, opts)
    if opts.verify == "verify_peer":
        if not opts.cafile:
            raise TLSConfigError("verify_peer needs a CA file (cacertfile) to verify "
                                 "client certificates with")
        _load_ca(ctx, opts.cafile)
        ctx.verify_mode = ssl.CERT_REQUIRED if opts.fail_if_no_peer_cert else ssl.CERT_OPTIONAL
    else:
        if opts.cafile:
            _load_ca(ctx, opts.cafile)
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def reload_context(ctx: ssl.SSLContext, opts: TLSOptions) -> None:
    """Load the files again into the live context: handshakes from now on present the new
    certificate; established connections are untouched. The files are first loaded into a
    scratch context, so a bad file raises TLSConfigError and leaves `ctx` as it was."""
    server_context(opts)
    _load_chain(ctx, opts)
    if opts.cafile:
        _load_ca(ctx, opts.cafile)


class ListenerContexts:
    """The `ssl.SSLContext`s of one broker's TLS listeners (amqps, HTTPS management and
    metrics, MQTT over TLS, MQTT over secure WebSocket), all built from the same settings
    (the `tls:` section, RabbitMQ's `ssl_options`) and reloaded together.

    Each listener gets its own context (`context(name)`, built on first use), so that one
    can set its ALPN protocols without touching the others; `reload()` loads the files
    once into a scratch context, then into every live one: all listeners present the
    new certificate from their next handshake on, or (a bad file) none does.
    """

    def __init__(self, options: TLSOptions) -> None:
        self.options = options
        self._contexts: dict[str, ssl.SSLContext] = {}

    def context(self, listener: str) -> ssl.SSLContext:
        """The context of the listener called `listener` (raises TLSConfigError)."""
        ctx = self._contexts.get(listener)
        if ctx is None:
            ctx = self._contexts[listener] = server_context(self.options)
        return ctx

    @property
    def listeners(self) -> list[str]:
        return sorted(self._contexts)

    def reload(self, options: TLSOptions | None = None) -> list[str]:
        """Reload every listener's certificate, key and CA; returns the listeners' names."""
        options = self.options if options is None else options
        server_context(options)  # all or nothing: a bad file raises before any change
        for ctx in self._contexts.values():
            _load_chain(ctx, options)
            if options.cafile:
                _load_ca(ctx, options.cafile)
        self.options = options
        return self.listeners


def _load_chain(ctx: ssl.SSLContext, opts: TLSOptions) -> None:
    try:
        ctx.load_cert_chain(opts.certfile, opts.keyfile, password=opts.password)
    except FileNotFoundError as exc:
        raise TLSConfigError(f"certificate or key file not found: {exc.filename}") from None
    except (ssl.SSLError, OSError) as exc:
        raise TLSConfigError(
            f"cannot load certificate {opts.certfile} / key {opts.keyfile or opts.certfile}: "
            f"{_reason(exc)} (wrong key password?)") from None


def _load_ca(ctx: ssl.SSLContext, cafile: str) -> None:
    try:
        ctx.load_verify_locations(cafile)
    except (ssl.SSLError, OSError) as exc:
        raise TLSConfigError(f"cannot load CA file {cafile}: "
                             f"{_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "reason", None) or exc)


class TLSSession:
    """Server side of one TLS connection over memory buffers (no socket, no event loop).

    `receive(data)` takes what the socket delivered and returns the application bytes it
    decrypted; `send(plain)` encrypts; `data_to_send()` is what must go to the socket
    (handshake messages, records, alerts). A failed handshake raises `ssl.SSLError` from
    `receive` after queueing the alert for the peer.
    """

    __slots__ = ("_in", "_out", "_obj", "established")

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = ctx.wrap_bio(self._in, self._out, server_side=True)
        self.established = False

    def receive(self, data: bytes) -> bytes:
        self._in.write(data)
        if not self.established:
            try:
                self._obj.do_handshake()
            except ssl.SSLWantReadError:
                return b""
            self.established = True
        chunks = []
        while True:
            try:
                chunk = self._obj.read(65536)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def send(self, plain: bytes) -> None:
        if plain:
            self._obj.write(plain)

    def data_to_send(self) -> bytes:
        return self._out.read() if self._out.pending else b""

    @property
    def version(self) -> str | None:
        return self._obj.version()

    @property
    def cipher(self) -> str | None:
        c = self._obj.cipher()
        return c[0] if c else None

    def peer_certificate(self) -> dict[str, Any] | None:
        """The verified client certificate (as `ssl.SSLSocket.getpeercert`), or None when
        verification is off or the client sent none."""
        return self._obj.getpeercert() or None


# -- certificate -> user name (SASL EXTERNAL) -----------------------------------------------

# The short names OpenSSL's RFC 2253 output (and so RabbitMQ) uses for subject attributes.
_SHORT = {
    "commonName": "CN", "countryName": "C", "localityName": "L",
    "stateOrProvinceName": "ST", "organizationName": "O", "organizationalUnitName": "OU",
    "streetAddress": "STREET", "domainComponent": "DC", "userId": "UID",
    "emailAddress": "emailAddress", "serialNumber": "serialNumber", "title": "title",
    "givenName": "GN", "surname": "SN", "initials": "initials",
}


def distinguished_name(cert: dict[str, Any]) -> str:
    """The subject as RFC 4514 text, most specific RDN first (`CN=alice,O=Org,C=US`), the
    form RabbitMQ's `ssl_cert_login_from = distinguished_name` yields."""
    rdns = []
    for rdn in reversed(cert.get("subject", ())):
        rdns.append("+".join(f"{_SHORT.get(k, k)}={_escape(v)}" for k, v in rdn))
    return ",".join(rdns)


def _escape(value: str) -> str:
    out = []
    for i, ch in enumerate(value):
        if ch in ',+"\\<>;=' or (ch == "#" and i == 0) or (ch == " " and i in (0, len(value) - 1)):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def common_name(cert: dict[str, Any]) -> str | None:
    names = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]
    return names[-1] if names else None


_SAN_KINDS = {"dns": "DNS", "ip": "IP Address", "email": "email", "uri": "URI"}


def cert_login_name(cert: dict[str, Any] | None, login_from: str = "distinguished_name",
                    san_type: str = "dns", san_index: int = 0) -> str | None:
    """The user name a verified client certificate logs in as, or None if it has none."""
    if not cert:
        return None
    if login_from == "common_name":
        return common_name(cert)
    if login_from == "subject_alternative_name":
        kind = _SAN_KINDS[san_type]
        values = [v for k, v in cert.get("subjectAltName", ()) if k == kind]
        return values[san_index] if san_index < len(values) else None
    return distinguished_name(cert) or None
