"""amqps with real clients: aio-pika, pika and amqplib over TLS next to plain AMQP, mutual TLS
with SASL EXTERNAL, refused certificates logged, TLS versions, certificate reload."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
import sys
from pathlib import Path

import aio_pika
import pika
import pytest
from structlog.testing import capture_logs

from amqpbroker.embed import Broker
from amqpbroker.tls import TLSOptions

NODE_DIR = Path(__file__).resolve().parents[2] / "interop" / "node"


def server_tls(certs, **kw) -> TLSOptions:
    return TLSOptions(certs.server_cert, certs.server_key, **kw)


def mutual(certs) -> TLSOptions:
    return server_tls(certs, cafile=certs.ca, verify="verify_peer", fail_if_no_peer_cert=True)


def client_ctx(certs, bundle: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=certs.ca)
    if bundle:
        ctx.load_cert_chain(bundle)
    return ctx


def external_config(user: str) -> dict:
    """guest, plus a user named as the client certificate names it (no usable password)."""
    return {"users": [{"name": "guest", "password": "guest"},
                      {"name": user, "password_hash": ""}],
            "permissions": [{"user": "guest", "vhost": "/", "configure": ".*",
                             "write": ".*", "read": ".*"},
                            {"user": user, "vhost": "/", "configure": ".*", "write": ".*",
                             "read": ".*"}]}


async def roundtrip(connection: aio_pika.abc.AbstractConnection, body: bytes) -> bytes:
    ch = await connection.channel()
    q = await ch.declare_queue("", exclusive=True)
    await ch.default_exchange.publish(aio_pika.Message(body), routing_key=q.name)
    for _ in range(100):
        msg = await q.get(no_ack=True, fail=False)
        if msg is not None:
            return msg.body
        await asyncio.sleep(0.02)
    raise AssertionError("message not delivered")


async def test_aiopika_over_tls_next_to_plain(certs):
    async with Broker(tls=server_tls(certs)) as broker:
        assert broker.tls_port != broker.port
        tls_conn = await aio_pika.connect(broker.amqps_url, ssl_context=client_ctx(certs))
        plain = await aio_pika.connect(broker.url)
        try:
            assert await roundtrip(tls_conn, b"secret") == b"secret"
            assert await roundtrip(plain, b"plain") == b"plain"
            # one broker: a queue declared over TLS is seen over plain AMQP
            ch = await tls_conn.channel()
            await ch.declare_queue("shared-q")
            await ch.default_exchange.publish(aio_pika.Message(b"x" * 300_000),
                                              routing_key="shared-q")
            q = await (await plain.channel()).declare_queue("shared-q", passive=True)
            for _ in range(100):
                msg = await q.get(no_ack=True, fail=False)
                if msg:
                    break
                await asyncio.sleep(0.02)
            assert msg is not None and msg.body == b"x" * 300_000
        finally:
            await tls_conn.close()
            await plain.close()


async def test_embedded_broker_has_no_tls_unless_asked():
    async with Broker() as broker:
        assert broker.server.tls_port == 0
        with pytest.raises(AssertionError):
            broker.tls_port


def _pika_roundtrip(params: pika.ConnectionParameters) -> bytes:
    conn = pika.BlockingConnection(params)
    try:
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", q, b"pika over tls")
        for _ in range(100):
            _, _, body = ch.basic_get(q, auto_ack=True)
            if body is not None:
                return body
            conn.sleep(0.02)
        raise AssertionError("message not delivered")
    finally:
        conn.close()


async def test_pika_over_tls(certs):
    async with Broker(tls=server_tls(certs)) as broker:
        params = pika.ConnectionParameters(
            "127.0.0.1", broker.tls_port,
            ssl_options=pika.SSLOptions(client_ctx(certs), "localhost"))
        assert await asyncio.to_thread(_pika_roundtrip, params) == b"pika over tls"


async def test_pika_mutual_tls_external_login_by_distinguished_name(certs):
    from cryptography import x509

    dn = x509.load_pem_x509_certificate(Path(certs.client_cert).read_bytes()) \
        .subject.rfc4514_string()
    async with Broker(tls=mutual(certs), config=external_config(dn)) as broker:
        params = pika.ConnectionParameters(
            "127.0.0.1", broker.tls_port, credentials=pika.credentials.ExternalCredentials(),
            ssl_options=pika.SSLOptions(client_ctx(certs, certs.client_pem), "localhost"))
        assert await asyncio.to_thread(_pika_roundtrip, params) == b"pika over tls"
        conn = await asyncio.to_thread(pika.BlockingConnection, params)
        try:
            assert [c.user.name for c in broker.core.connections] == [dn]
            assert [c.auth_mechanism for c in broker.core.connections] == ["EXTERNAL"]
        finally:
            await asyncio.to_thread(conn.close)


async def test_aiopika_external_login_by_common_name(certs):
    async with Broker(tls=mutual(certs), config=external_config("alice"),
                      ssl_cert_login_from="common_name") as broker:
        url = f"amqps://127.0.0.1:{broker.tls_port}/?auth=external"
        conn = await aio_pika.connect(url, ssl_context=client_ctx(certs, certs.client_pem))
        try:
            assert await roundtrip(conn, b"as alice") == b"as alice"
        finally:
            await conn.close()


async def test_external_without_client_certificate_is_refused(certs):
    opts = server_tls(certs, cafile=certs.ca, verify="verify_peer")  # certificate optional
    async with Broker(tls=opts, auth_failure_delay=0.1) as broker:
        url = f"amqps://127.0.0.1:{broker.tls_port}/?auth=external"
        with pytest.raises(Exception):
            await aio_pika.connect(url, ssl_context=client_ctx(certs))
        # EXTERNAL is not even offered without a certificate; PLAIN still works
        assert broker.core.security.auth_attempts_succeeded == 0
        conn = await aio_pika.connect(broker.amqps_url, ssl_context=client_ctx(certs))
        await conn.close()


async def _tls_probe(port: int, ctx: ssl.SSLContext) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                   server_hostname="localhost")
    try:
        writer.write(b"AMQP\x00\x00\x09\x01")
        await writer.drain()
        return await asyncio.wait_for(reader.read(100), 10)
    finally:
        writer.close()


@pytest.mark.parametrize("which,reason", [("expired_pem", "certificate has expired"),
                                          ("untrusted_pem", "unable to get local issuer")])
async def test_bad_client_certificates_are_refused_with_a_log_line(certs, which, reason):
    async with Broker(tls=mutual(certs)) as broker:
        with capture_logs() as logs:
            with pytest.raises((ssl.SSLError, ConnectionError)):
                data = await _tls_probe(broker.tls_port, client_ctx(certs, getattr(certs, which)))
                if not data:  # TLS 1.3: the refusal can arrive as a closed stream
                    raise ConnectionError("closed")
            await asyncio.sleep(0.1)
        failed = [e for e in logs if e["event"] == "connection.tls_handshake_failed"]
        assert failed and reason in failed[0]["reason"], logs
        assert failed[0]["peer"].startswith("127.0.0.1:")
        assert broker.core.security.tls_handshake_failures == 1
        # a good certificate still gets in
        assert (await _tls_probe(broker.tls_port, client_ctx(certs, certs.client_pem)))[:1] \
            == b"\x01"


def _openssl(port: int, *flags: str) -> subprocess.CompletedProcess:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl (Debian package openssl) is needed for this test")
    return subprocess.run(
        [openssl, "s_client", "-connect", f"127.0.0.1:{port}", *flags],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("flag", ["-tls1", "-tls1_1"])
async def test_openssl_old_tls_versions_are_refused(certs, flag):
    async with Broker(tls=server_tls(certs)) as broker:
        # SECLEVEL=0 lets this client offer TLS 1.0/1.1: the refusal is the broker's
        r = await asyncio.to_thread(_openssl, broker.tls_port, flag,
                                    "-cipher", "DEFAULT@SECLEVEL=0")
        assert r.returncode != 0
        assert "alert protocol version" in r.stdout + r.stderr, r.stdout + r.stderr


@pytest.mark.parametrize("flag,version", [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
async def test_openssl_tls_1_2_and_1_3_are_accepted(certs, flag, version):
    async with Broker(tls=server_tls(certs)) as broker:
        r = await asyncio.to_thread(_openssl, broker.tls_port, flag, "-CAfile", certs.ca)
        out = r.stdout + r.stderr
        assert f"Protocol  : {version}" in out or f"New, {version}" in out, out
        assert "Verify return code: 0 (ok)" in out


async def test_reload_certificates_keeps_established_connections(certs, tmp_path):
    import trustme

    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    shutil.copy(certs.server_cert, cert)
    shutil.copy(certs.server_key, key)
    async with Broker(tls=TLSOptions(str(cert), str(key))) as broker:
        before = await aio_pika.connect(broker.amqps_url, ssl_context=client_ctx(certs))
        new_ca = trustme.CA()
        leaf = new_ca.issue_cert("localhost", "127.0.0.1")
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
        broker.reload_certificates()
        new_ctx = ssl.create_default_context()
        new_ca.configure_trust(new_ctx)
        after = await aio_pika.connect(broker.amqps_url, ssl_context=new_ctx)
        try:
            assert await roundtrip(before, b"old cert") == b"old cert"
            assert await roundtrip(after, b"new cert") == b"new cert"
            with pytest.raises(ssl.SSLError):  # the old CA no longer verifies the server
                await _tls_probe(broker.tls_port, client_ctx(certs))
        finally:
            await before.close()
            await after.close()


def _node(args: dict[str, str]) -> subprocess.CompletedProcess:
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "amqplib").is_dir():
        pytest.fail("node and interop/node/node_modules (npm ci) are needed for this test")
    return subprocess.run([node, "tls_check.js"], cwd=NODE_DIR, capture_output=True,
                          text=True, timeout=60, env={**os.environ, **args})


async def test_amqplib_over_tls_and_with_external(certs):
    async with Broker(tls=mutual(certs), config=external_config("alice"),
                      ssl_cert_login_from="common_name") as broker:
        env = {"TLS_CA": certs.ca, "TLS_CERT": certs.client_cert, "TLS_KEY": certs.client_key}
        r = await asyncio.to_thread(_node, {**env, "AMQP_URL": broker.amqps_url})
        assert r.returncode == 0 and "got: over tls" in r.stdout, r.stdout + r.stderr
        r = await asyncio.to_thread(_node, {**env, "TLS_EXTERNAL": "1",
                                            "AMQP_URL": f"amqps://127.0.0.1:{broker.tls_port}"})
        assert r.returncode == 0 and "got: over tls" in r.stdout, r.stdout + r.stderr


def test_cli_tls_flags(certs):
    from amqpbroker.cli import _serve_parser, build_settings
    import argparse

    parser = argparse.ArgumentParser()
    _serve_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", "--tls-cert", certs.server_cert, "--tls-key",
                              certs.server_key, "--tls-ca", certs.ca, "--tls-verify", "peer",
                              "--tls-fail-if-no-peer-cert"])
    s = build_settings(args)
    assert s.tls_port == 5671 and s.port == 5672
    assert s.tls == mutual(certs)
    args = parser.parse_args(["serve", "--tls-port", "0", "--tls-cert", certs.server_cert])
    assert build_settings(args).tls_port == 0
    with pytest.raises(SystemExit):
        build_settings(parser.parse_args(["serve", "--tls-port", "5671"]))


def test_sighup_reloads_certificates(certs, tmp_path):
    """The real process: SIGHUP reloads (logged), a bad file keeps the old certificate."""
    import signal
    import time

    key = tmp_path / "server.key"
    shutil.copy(certs.server_key, key)
    proc = subprocess.Popen(
        [sys.executable, "-m", "amqpbroker", "serve", "--in-memory", "--port", "0",
         "--management-port", "0", "--prometheus-port", "0", "--mqtt-port", "0", "--mqtt-ws-port", "0", "--tls-port", "0", "--tls-cert", certs.server_cert,
         "--tls-key", str(key)],
        stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        deadline = time.monotonic() + 30
        while "listening on" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
        assert "amqps port" in line, line
        proc.send_signal(signal.SIGHUP)
        while "tls.certificates_reloaded" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
        assert "tls.certificates_reloaded" in line
        key.write_text("not a key")
        proc.send_signal(signal.SIGHUP)
        while "tls.reload_failed" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
        assert "tls.reload_failed" in line
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(30)
        proc.stderr.close()
