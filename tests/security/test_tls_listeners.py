"""The TLS listeners besides amqps, with real clients: HTTPS management (aiohttp, requests,
`amqpbroker ctl`), MQTT over TLS and over secure WebSocket (paho-mqtt), client certificate
login for MQTT (mqtt.ssl_cert_login), TLS >= 1.2 on every TLS port (openssl s_client), and
`ctl reload_certificates` swapping the certificate of every listener while an established
amqps connection keeps working."""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import aio_pika
import paho.mqtt.client as mqtt
import pytest
import requests
from cryptography import x509
from paho.mqtt.enums import CallbackAPIVersion

from amqpbroker.embed import Broker, run_in_thread
from amqpbroker.mqtt.options import MQTTSettings
from amqpbroker.tls import TLSOptions

TIMEOUT = 20.0
AUTH = {"Authorization": "Basic Z3Vlc3Q6Z3Vlc3Q="}  # guest:guest


def server_tls(certs: Any, **kw: Any) -> TLSOptions:
    return TLSOptions(certs.server_cert, certs.server_key, **kw)


def client_ctx(cafile: str, bundle: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cafile)
    if bundle:
        ctx.load_cert_chain(bundle)
    return ctx


ALL_TLS = {"management_tls_port": 0, "mqtt_tls_port": 0, "mqtt_wss_port": 0}


def tls_ports(broker: Broker) -> dict[str, int]:
    return {"amqps": broker.tls_port, "https": broker.management_tls_port,
            "mqtt/ssl": broker.mqtt_tls_port, "https/web-mqtt": broker.mqtt_wss_port}


class PahoTLS:
    """A paho-mqtt 3.1.1 client over TLS (TCP or WebSocket); calls wait for their acks."""

    def __init__(self, port: int, ctx: ssl.SSLContext, client_id: str, *,
                 transport: str = "tcp", user: str | None = "guest",
                 password: str = "guest") -> None:
        c = self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                      protocol=mqtt.MQTTv311, transport=transport)
        if transport == "websockets":
            c.ws_set_options(path="/ws")
        c.tls_set_context(ctx)
        if user is not None:
            c.username_pw_set(user, password)
        self.messages: "queue.Queue[Any]" = queue.Queue()
        self.connack: "queue.Queue[Any]" = queue.Queue()
        self.subacks: "queue.Queue[Any]" = queue.Queue()
        c.on_message = lambda cl, u, m: self.messages.put(m)
        c.on_connect = lambda cl, u, flags, rc, pr: self.connack.put(rc)
        c.on_subscribe = lambda cl, u, mid, codes, pr: self.subacks.put(codes)
        c.connect("127.0.0.1", port, keepalive=30)
        c.loop_start()
        self.rc = self.connack.get(timeout=TIMEOUT)

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, 1)
        self.subacks.get(timeout=TIMEOUT)

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, 1)
        info.wait_for_publish(TIMEOUT)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.client._reset_sockets()  # its wake-up socket pair too (ResourceWarning)


def served_serial(port: int) -> int:
    """The serial number of the certificate a new handshake on `port` gets."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        with ctx.wrap_socket(raw) as s:
            der = s.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def cert_serial(path: str) -> int:
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read()).serial_number


# -- HTTPS management ------------------------------------------------------------------------

async def test_https_management_with_aiohttp_requests_and_aiopika(certs):
    async with Broker(tls=server_tls(certs), management_tls_port=0,
                      loopback_users=()) as broker:
        assert broker.management.port == 0  # HTTP off: only HTTPS was asked for
        conn = await aio_pika.connect(broker.amqps_url, ssl_context=client_ctx(certs.ca))
        try:
            ch = await conn.channel()
            await ch.declare_queue("seen-over-https")
            url = broker.management_https_url
            async with aiohttp.ClientSession(headers=AUTH) as http:
                async with http.get(f"{url}/api/queues/%2F/seen-over-https",
                                    ssl=client_ctx(certs.ca)) as resp:
                    assert resp.status == 200
                    assert (await resp.json())["name"] == "seen-over-https"
                async with http.get(f"{url}/api/overview", ssl=client_ctx(certs.ca)) as resp:
                    listeners = {(x["protocol"], x["port"])
                                 for x in (await resp.json())["listeners"]}
                    assert ("https", broker.management_tls_port) in listeners
                    assert ("amqp/ssl", broker.tls_port) in listeners
                with pytest.raises(aiohttp.ClientConnectorCertificateError):  # untrusted CA
                    await http.get(f"{url}/api/overview", ssl=ssl.create_default_context())

            def with_requests() -> tuple[int, Any]:
                r = requests.get(f"{url}/api/whoami", auth=("guest", "guest"),
                                 verify=certs.ca, timeout=TIMEOUT)
                return r.status_code, r.json()

            assert await asyncio.to_thread(with_requests) == (
                200, {"name": "guest", "tags": ["administrator"]})
        finally:
            await conn.close()


async def test_embedded_broker_has_no_other_tls_listener_unless_asked(certs):
    async with Broker(tls=server_tls(certs), management=True) as broker:
        assert broker.management.tls_port == 0
        assert broker.mqtt_tls_port is None and broker.mqtt_wss_port is None
        assert broker.server.tls_contexts.listeners == ["amqps"]


async def test_tls_listeners_without_tls_settings_do_not_start():
    from amqpbroker.tls import TLSConfigError

    for port in ALL_TLS:
        with pytest.raises(TLSConfigError):
            await Broker(**{port: 0}).start()


# -- MQTT over TLS and WSS -----------------------------------------------------------------

def test_paho_over_tls_and_secure_websocket(certs):
    with run_in_thread(tls=server_tls(certs), mqtt_tls_port=0, mqtt_wss_port=0) as broker:
        ctx = client_ctx(certs.ca)
        tcp = PahoTLS(broker.mqtt_tls_port, ctx, "over-tls")
        wss = PahoTLS(broker.mqtt_wss_port, ctx, "over-wss", transport="websockets")
        try:
            assert tcp.rc == 0 and wss.rc == 0
            tcp.subscribe("sensors/+/temp")
            wss.subscribe("sensors/#")
            wss.publish("sensors/kitchen/temp", b"21.5")
            tcp.publish("sensors/hall/temp", b"19")
            got_tcp = tcp.messages.get(timeout=TIMEOUT)
            got_wss = {wss.messages.get(timeout=TIMEOUT).payload for _ in range(2)}
            assert (got_tcp.topic, got_tcp.payload) == ("sensors/kitchen/temp", b"21.5")
            assert got_wss == {b"21.5", b"19"}
            bad = PahoTLS(broker.mqtt_tls_port, ctx, "bad", password="wrong")
            assert bad.rc.value == 0x86  # bad user name or password, as over TCP
            bad.stop()
        finally:
            tcp.stop()
            wss.stop()


def external_config(user: str) -> dict:
    return {"users": [{"name": "guest", "password": "guest"},
                      {"name": user, "password_hash": ""}],
            "permissions": [{"user": u, "vhost": "/", "configure": ".*", "write": ".*",
                             "read": ".*"} for u in ("guest", user)]}


@pytest.mark.parametrize("transport", ["tcp", "websockets"])
def test_mqtt_client_certificate_login(certs, transport):
    opts = server_tls(certs, cafile=certs.ca, verify="verify_peer")  # certificate optional
    with run_in_thread(tls=opts, config=external_config("alice"), mqtt_tls_port=0,
                       mqtt_wss_port=0, ssl_cert_login_from="common_name",
                       mqtt=MQTTSettings(ssl_cert_login=True)) as broker:
        port = broker.mqtt_tls_port if transport == "tcp" else broker.mqtt_wss_port
        alice = PahoTLS(port, client_ctx(certs.ca, certs.client_pem), "alice", user=None,
                        transport=transport)
        try:
            assert alice.rc == 0
            users = broker.call_soon(lambda: sorted(
                s.user.name for s in broker.core.sessions))
            assert users == ["alice"]
        finally:
            alice.stop()
        # no certificate and no user name: nobody to log in as
        anonymous = PahoTLS(port, client_ctx(certs.ca), "anon", user=None,
                            transport=transport)
        assert anonymous.rc.value == 0x86
        anonymous.stop()
        # a user name and password take priority over the certificate (RabbitMQ's order)
        guest = PahoTLS(port, client_ctx(certs.ca, certs.client_pem), "g",
                        transport=transport)
        assert guest.rc == 0
        guest.stop()


def test_mqtt_certificate_login_is_off_by_default(certs):
    opts = server_tls(certs, cafile=certs.ca, verify="verify_peer")
    with run_in_thread(tls=opts, config=external_config("alice"), mqtt_tls_port=0,
                       ssl_cert_login_from="common_name") as broker:
        alice = PahoTLS(broker.mqtt_tls_port, client_ctx(certs.ca, certs.client_pem),
                        "alice", user=None)
        assert alice.rc.value == 0x86
        alice.stop()


# -- every TLS port: TLS 1.2 and 1.3 only ----------------------------------------------------

def _openssl(port: int, *flags: str) -> subprocess.CompletedProcess:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl (Debian package openssl) is needed for this test")
    return subprocess.run([openssl, "s_client", "-connect", f"127.0.0.1:{port}", *flags],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=30)


def test_openssl_sees_only_tls_1_2_and_1_3_on_every_tls_port(certs):
    with run_in_thread(tls=server_tls(certs), management_tls_port=0, mqtt_tls_port=0,
                       mqtt_wss_port=0) as broker:
        for name, port in tls_ports(broker).items():
            for flag, version in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
                out = _openssl(port, flag, "-CAfile", certs.ca)
                text = out.stdout + out.stderr
                assert f"Protocol  : {version}" in text or f"New, {version}" in text, (
                    name, text)
                assert "Verify return code: 0 (ok)" in text, (name, text)
            for flag in ("-tls1", "-tls1_1"):
                out = _openssl(port, flag, "-cipher", "DEFAULT@SECLEVEL=0")
                text = out.stdout + out.stderr
                assert out.returncode != 0, (name, flag)
                assert "no peer certificate available" in text, (name, flag, text)
                # amqps sends the alert; asyncio's TLS (HTTPS, MQTT) closes without it
                assert "alert protocol version" in text or (
                    name != "amqps" and "unexpected eof" in text), (name, flag, text)


# -- ctl reload_certificates ------------------------------------------------------------------

def _ctl(url: str, cafile: str, *args: str, user: str = "guest") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "amqpbroker", "ctl", "--url", url, "--ssl-ca-cert-file",
         cafile, "--username", user, "--password", user, *args],
        capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("AMQPBROKER_")})


async def test_ctl_reload_certificates_swaps_every_listener_keeps_connections(certs, tmp_path):
    import trustme

    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    shutil.copy(certs.server_cert, cert)
    shutil.copy(certs.server_key, key)
    new_ca = trustme.CA()
    both_cas = tmp_path / "cas.pem"  # ctl trusts the old and the new server certificate
    both_cas.write_bytes(Path(certs.ca).read_bytes() + new_ca.cert_pem.bytes())
    users = {"users": [{"name": "guest", "password": "guest", "tags": ["administrator"]},
                       {"name": "watcher", "password": "watcher", "tags": ["monitoring"]}],
             "permissions": [{"user": "guest", "vhost": "/", "configure": ".*",
                              "write": ".*", "read": ".*"}]}
    async with Broker(tls=TLSOptions(str(cert), str(key)), config=users, **ALL_TLS) as broker:
        ports = tls_ports(broker)
        old = cert_serial(certs.server_cert)
        assert {n: await asyncio.to_thread(served_serial, p) for n, p in ports.items()} == {
            n: old for n in ports}
        established = await aio_pika.connect(broker.amqps_url,
                                             ssl_context=client_ctx(certs.ca))
        try:
            ch = await established.channel()
            q = await ch.declare_queue("", exclusive=True)
            url = broker.management_https_url
            leaf = new_ca.issue_cert("localhost", "127.0.0.1")
            leaf.cert_chain_pems[0].write_to_path(str(cert))
            leaf.private_key_pem.write_to_path(str(key))
            denied = await asyncio.to_thread(_ctl, url, str(both_cas), "reload_certificates",
                                             user="watcher")
            assert denied.returncode == 77, denied.stderr  # administrators only
            assert await asyncio.to_thread(served_serial, ports["amqps"]) == old
            done = await asyncio.to_thread(_ctl, url, str(both_cas), "reload_certificates")
            assert done.returncode == 0, done.stderr
            assert "amqps, https, https/web-mqtt, mqtt/ssl" in done.stdout
            new = cert_serial(str(cert))
            assert {n: await asyncio.to_thread(served_serial, p) for n, p in ports.items()} \
                == {n: new for n in ports}
            # the connection made before the reload still works
            await ch.default_exchange.publish(aio_pika.Message(b"still here"),
                                              routing_key=q.name)
            msg = await q.get(timeout=TIMEOUT, fail=False)
            for _ in range(100):
                if msg is not None:
                    break
                await asyncio.sleep(0.05)
                msg = await q.get(fail=False)
            assert msg is not None and msg.body == b"still here"
            # a bad key: refused with the reason, the certificate in use stays
            key.write_text("not a key")
            bad = await asyncio.to_thread(_ctl, url, str(both_cas), "reload_certificates")
            assert bad.returncode == 65 and "not reloaded" in bad.stderr, bad.stderr
            assert await asyncio.to_thread(served_serial, ports["https"]) == new
        finally:
            await established.close()


async def test_reload_without_tls_is_a_400():
    async with Broker(management=True) as broker:
        async with aiohttp.ClientSession(headers=AUTH) as http:
            async with http.post(f"{broker.management_url}/api/tls/reload-certificates") as r:
                assert r.status == 400
                assert "no TLS listener" in (await r.json())["reason"]


# -- TLS 1.3 cipher suites: OpenSSL's configuration, the documented way ------------------------

OPENSSL_CNF = """openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
MinProtocol = TLSv1.2
Ciphersuites = TLS_AES_256_GCM_SHA384
"""


def test_tls_1_3_suites_chosen_through_openssl_conf(certs, tmp_path):
    """Python's ssl cannot set TLS 1.3 suites; OPENSSL_CONF given to the broker can
    (docs/security.md, "Cipher suites")."""
    import time

    cnf = tmp_path / "openssl.cnf"
    cnf.write_text(OPENSSL_CNF)
    proc = subprocess.Popen(
        [sys.executable, "-m", "amqpbroker", "serve", "--in-memory", "--port", "0",
         "--management-port", "0", "--prometheus-port", "0", "--mqtt-port", "0", "--mqtt-ws-port", "0",
         "--tls-port", "0", "--tls-cert", certs.server_cert, "--tls-key", certs.server_key],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "OPENSSL_CONF": str(cnf)})
    try:
        line, deadline = "", time.monotonic() + 60
        while "listening on" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
        port = int(line.split("amqps port ")[1].split(",")[0].split()[0])
        ok = _openssl(port, "-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384",
                      "-CAfile", certs.ca)
        assert "Cipher is TLS_AES_256_GCM_SHA384" in ok.stdout + ok.stderr, ok.stdout
        refused = _openssl(port, "-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256")
        assert refused.returncode != 0
        assert "handshake failure" in refused.stdout + refused.stderr, refused.stderr
    finally:
        proc.terminate()
        proc.wait(30)
        proc.stderr.close()
