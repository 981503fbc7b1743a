"""amqpbroker.tls without sockets: contexts, reload, the memory-BIO session, login names."""

from __future__ import annotations

import pathlib
import ssl

import pytest

from amqpbroker import tls


def _client_ctx(certs, bundle: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=certs.ca)
    if bundle:
        ctx.load_cert_chain(bundle)
    return ctx


def _handshake(server_ctx, client_ctx):
    """Run a TLS handshake between a TLSSession and a client SSLObject in memory."""
    session = tls.TLSSession(server_ctx)
    cin, cout = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(cin, cout, server_hostname="localhost")
    for _ in range(10):
        try:
            client.do_handshake()
        except ssl.SSLWantReadError:
            pass
        data = cout.read()
        if data:
            session.receive(data)
        back = session.data_to_send()
        if back:
            cin.write(back)
        if session.established:
            try:
                client.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass
    return session, client, cin, cout


def test_session_round_trip_and_peer_certificate(certs):
    opts = tls.TLSOptions(certs.server_cert, certs.server_key, cafile=certs.ca,
                          verify="verify_peer", fail_if_no_peer_cert=True)
    session, client, cin, cout = _handshake(tls.server_context(opts),
                                            _client_ctx(certs, certs.client_pem))
    assert session.established and session.version in ("TLSv1.2", "TLSv1.3")
    client.write(b"AMQP\x00\x00\x09\x01")
    assert session.receive(cout.read()) == b"AMQP\x00\x00\x09\x01"
    session.send(b"hello")
    cin.write(session.data_to_send())
    assert client.read(100) == b"hello"
    cert = session.peer_certificate()
    assert tls.common_name(cert) == "alice"
    # RFC 4514 order and escaping, as cryptography (and RabbitMQ) print the subject
    from cryptography import x509

    expected = x509.load_pem_x509_certificate(pathlib.Path(certs.client_cert).read_bytes())
    assert tls.cert_login_name(cert) == expected.subject.rfc4514_string()
    assert tls.distinguished_name(cert).startswith("CN=alice,")
    assert tls.cert_login_name(cert, "common_name") == "alice"
    assert tls.cert_login_name(cert, "subject_alternative_name", "email") == "alice@example.com"
    assert tls.cert_login_name(cert, "subject_alternative_name", "dns") is None


def test_verify_none_has_no_peer_certificate(certs):
    opts = tls.TLSOptions(certs.server_cert, certs.server_key)
    session, *_ = _handshake(tls.server_context(opts), _client_ctx(certs, certs.client_pem))
    assert session.established and session.peer_certificate() is None


def test_untrusted_client_certificate_fails_the_handshake(certs):
    opts = tls.TLSOptions(certs.server_cert, certs.server_key, cafile=certs.ca,
                          verify="verify_peer", fail_if_no_peer_cert=True)
    with pytest.raises(ssl.SSLError, match="certificate verify failed"):
        _handshake(tls.server_context(opts), _client_ctx(certs, certs.untrusted_pem))


def test_bad_files_are_config_errors(certs, tmp_path):
    with pytest.raises(tls.TLSConfigError, match="not found"):
        tls.server_context(tls.TLSOptions(str(tmp_path / "missing.pem")))
    with pytest.raises(tls.TLSConfigError, match="CA file"):
        tls.server_context(tls.TLSOptions(certs.server_cert, certs.server_key,
                                          verify="verify_peer"))
    with pytest.raises(tls.TLSConfigError, match="cannot load certificate"):
        tls.server_context(tls.TLSOptions(certs.server_cert, certs.client_key))
    with pytest.raises(tls.TLSConfigError, match="ciphers"):
        tls.server_context(tls.TLSOptions(certs.server_cert, certs.server_key,
                                          ciphers="NO-SUCH-CIPHER"))


def test_only_tls_1_2_and_1_3(certs):
    ctx = tls.server_context(tls.TLSOptions(certs.server_cert, certs.server_key))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.maximum_version == ssl.TLSVersion.TLSv1_3


def test_reload_keeps_the_context_on_a_bad_file(certs, tmp_path):
    opts = tls.TLSOptions(certs.server_cert, certs.server_key)
    ctx = tls.server_context(opts)
    with pytest.raises(tls.TLSConfigError):
        tls.reload_context(ctx, tls.TLSOptions(certs.server_cert, certs.client_key))
    session, *_ = _handshake(ctx, _client_ctx(certs))
    assert session.established


def test_listener_contexts_reload_all_or_nothing(certs, tmp_path):
    import shutil

    key = tmp_path / "server.key"
    shutil.copy(certs.server_key, key)
    contexts = tls.ListenerContexts(tls.TLSOptions(certs.server_cert, str(key)))
    amqps, https = contexts.context("amqps"), contexts.context("https")
    assert amqps is not https and contexts.context("https") is https
    assert contexts.reload() == ["amqps", "https"]
    key.write_text("not a key")
    with pytest.raises(tls.TLSConfigError):
        contexts.reload()
    for ctx in (amqps, https):  # both still serve the old certificate
        assert _handshake(ctx, _client_ctx(certs))[0].established


def test_encrypted_key_with_password(certs, tmp_path):
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pathlib.Path(certs.server_key).read_bytes(), None)
    enc = tmp_path / "enc.key"
    enc.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"s3cret")))
    with pytest.raises(tls.TLSConfigError, match="password"):
        tls.server_context(tls.TLSOptions(certs.server_cert, str(enc), password="wrong"))
    ctx = tls.server_context(tls.TLSOptions(certs.server_cert, str(enc), password="s3cret"))
    assert _handshake(ctx, _client_ctx(certs))[0].established


def test_distinguished_name_escapes_rfc4514_specials():
    cert = {"subject": ((("countryName", "US"),), (("organizationName", "A, B+C"),),
                        (("commonName", " x=y "),))}
    assert tls.distinguished_name(cert) == "CN=\\ x\\=y\\ ,O=A\\, B\\+C,C=US"
