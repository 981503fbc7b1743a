"""paho-mqtt (MQTT 3.1.1 and 5.0) against the broker's MQTT listener: QoS 0/1/2, retained
messages, wills, persistent sessions, client id takeover, MQTT 5 properties, shared
subscriptions, topic aliases, WebSocket transport."""

from __future__ import annotations

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from .mqtt_clients import collect_garbage, V5, V311, Paho, mqtt_broker, props, wait_until

pytestmark = pytest.mark.interop


@pytest.fixture(autouse=True)
def _no_leaked_sockets():
    yield
    collect_garbage()
VERSIONS = pytest.mark.parametrize("version", [V311, V5], ids=["3.1.1", "5.0"])


@pytest.fixture(scope="module")
def broker():
    with mqtt_broker(mqtt_ws_port=0) as b:
        yield b


@VERSIONS
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_publish_subscribe_each_qos(broker, version, qos):
    sub = Paho(broker.mqtt_port, f"sub-{version}-{qos}", version)
    pub = Paho(broker.mqtt_port, f"pub-{version}-{qos}", version)
    codes = sub.subscribe(f"q{qos}/+/temp", qos)
    assert [int(getattr(c, "value", c)) for c in codes] == [qos]
    for i in range(5):
        pub.publish(f"q{qos}/{i}/temp", b"%d" % i, qos)
    got = [sub.get() for _ in range(5)]
    assert [(m.topic, m.payload, m.qos) for m in got] == [
        (f"q{qos}/{i}/temp", b"%d" % i, qos) for i in range(5)]
    assert sub.nothing(0.3)  # QoS 2: exactly once
    sub.disconnect()
    pub.disconnect()


@VERSIONS
def test_bad_password_is_refused(broker, version):
    c = Paho(broker.mqtt_port, "bad", version, password="wrong")
    # 3.1.1 return code 4 / 5.0 reason 0x86 (paho reports both as 0x86)
    assert str(c.rc) == "Bad user name or password" and c.rc.value == 0x86
    c.stop()


@VERSIONS
def test_retained_message_delivered_on_subscribe_then_cleared(broker, version):
    pub = Paho(broker.mqtt_port, f"rpub{version}", version)
    pub.publish(f"retained{version}/kitchen", b"22C", qos=1, retain=True)
    sub = Paho(broker.mqtt_port, f"rsub{version}", version)
    sub.subscribe(f"retained{version}/#", 1)
    m = sub.get()
    assert (m.topic, m.payload, m.retain) == (f"retained{version}/kitchen", b"22C", True)
    pub.publish(f"retained{version}/kitchen", b"", qos=1, retain=True)
    late = Paho(broker.mqtt_port, f"rlate{version}", version)
    late.subscribe(f"retained{version}/#", 1)
    assert late.nothing(0.5)
    for c in (pub, sub, late):
        c.disconnect()


@VERSIONS
def test_will_on_abnormal_disconnect_only(broker, version):
    watcher = Paho(broker.mqtt_port, f"watch{version}", version)
    watcher.subscribe(f"status{version}/#", 1)
    polite = Paho(broker.mqtt_port, f"polite{version}", version,
                  will=(f"status{version}/polite", b"gone", 1, False))
    polite.disconnect()
    assert watcher.nothing(0.5)
    rude = Paho(broker.mqtt_port, f"rude{version}", version,
                will=(f"status{version}/rude", b"gone", 1, False))
    rude.drop()
    m = watcher.get()
    assert (m.topic, m.payload) == (f"status{version}/rude", b"gone")
    watcher.disconnect()


def test_persistent_session_keeps_subscriptions_and_messages_311(broker):
    dev = Paho(broker.mqtt_port, "device-311", V311, clean=False)
    assert not dev.session_present
    dev.subscribe("cmd/device-311", 1)
    dev.disconnect()
    pub = Paho(broker.mqtt_port, "cmd-sender", V311)
    for i in range(3):
        pub.publish("cmd/device-311", b"c%d" % i, qos=1)
    dev = Paho(broker.mqtt_port, "device-311", V311, clean=False)
    assert dev.session_present
    assert [dev.get().payload for _ in range(3)] == [b"c0", b"c1", b"c2"]
    dev.disconnect()
    clean = Paho(broker.mqtt_port, "device-311", V311, clean=True)
    assert not clean.session_present
    clean.disconnect()
    pub.disconnect()


def test_session_expiry_interval_5(broker):
    cp = props(PacketTypes.CONNECT, SessionExpiryInterval=600)
    dev = Paho(broker.mqtt_port, "device-5", V5, clean=True, connect_props=cp)
    dev.subscribe("cmd5/#", 1)
    dev.disconnect()
    pub = Paho(broker.mqtt_port, "cmd5-sender", V5)
    pub.publish("cmd5/x", b"later", qos=1)
    dev = Paho(broker.mqtt_port, "device-5", V5, clean=False, connect_props=cp)
    assert dev.session_present
    assert dev.get().payload == b"later"
    dev.disconnect()
    pub.disconnect()


def test_client_id_takeover_5(broker):
    first = Paho(broker.mqtt_port, "twin", V5)
    second = Paho(broker.mqtt_port, "twin", V5)
    rc = first.disconnects.get(timeout=10)
    assert isinstance(rc, ReasonCode) and rc.value == 0x8E  # Session taken over
    second.disconnect()
    first.stop()


def test_mqtt5_properties_round_trip(broker):
    sub = Paho(broker.mqtt_port, "props-sub", V5)
    sub.subscribe("rpc/request", 1, properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=7))
    pub = Paho(broker.mqtt_port, "props-pub", V5)
    pub.publish("rpc/request", b"{}", 1, properties=props(
        ContentType="application/json", CorrelationData=b"corr-1", ResponseTopic="rpc/reply/1",
        MessageExpiryInterval=120, UserProperty=[("tenant", "a"), ("trace", "xyz")]))
    m = sub.get()
    p = m.properties
    assert p.ContentType == "application/json"
    assert p.CorrelationData == b"corr-1"
    assert p.ResponseTopic == "rpc/reply/1"
    assert 0 < p.MessageExpiryInterval <= 120
    assert ("tenant", "a") in p.UserProperty and ("trace", "xyz") in p.UserProperty
    assert p.SubscriptionIdentifier == [7]
    sub.disconnect()
    pub.disconnect()


def test_no_local_and_retain_as_published(broker):
    c = Paho(broker.mqtt_port, "self-talker", V5)
    c.subscribe("echo/nolocal", 1, noLocal=True)
    c.subscribe("echo/rap", 0, retainAsPublished=True)
    c.publish("echo/nolocal", b"mine", 1)
    c.publish("echo/rap", b"r", 0, retain=True)
    m = c.get()
    assert (m.topic, m.retain) == ("echo/rap", True)
    assert c.nothing(0.3)
    c.publish("echo/rap", b"", 0, retain=True)
    c.disconnect()


def test_shared_subscription_competing_consumers(broker):
    workers = [Paho(broker.mqtt_port, f"worker{i}", V5) for i in range(2)]
    for w in workers:
        w.subscribe("$share/pool/jobs/#", 1)
    pub = Paho(broker.mqtt_port, "job-source", V311)
    for i in range(20):
        pub.publish(f"jobs/{i}", b"%d" % i, 1)
    got: list[list[bytes]] = [[], []]
    assert wait_until(lambda: sum(w.messages.qsize() for w in workers) >= 20)
    for i, w in enumerate(workers):
        while not w.messages.empty():
            got[i].append(w.get().payload)
    assert sorted(got[0] + got[1], key=int) == [b"%d" % i for i in range(20)]
    assert got[0] and got[1]
    for c in (*workers, pub):
        c.disconnect()


def test_topic_alias_from_client(broker):
    sub = Paho(broker.mqtt_port, "alias-sub", V5)
    sub.subscribe("very/long/topic/name", 0)
    pub = Paho(broker.mqtt_port, "alias-pub", V5)
    pub.publish("very/long/topic/name", b"1", 0, properties=props(TopicAlias=1))
    pub.publish("", b"2", 0, properties=props(TopicAlias=1))
    assert [(m.topic, m.payload) for m in (sub.get(), sub.get())] == [
        ("very/long/topic/name", b"1"), ("very/long/topic/name", b"2")]
    sub.disconnect()
    pub.disconnect()


@VERSIONS
def test_websocket_transport(broker, version):
    sub = Paho(broker.mqtt_ws_port, f"ws-sub{version}", version, transport="websockets")
    pub = Paho(broker.mqtt_ws_port, f"ws-pub{version}", version, transport="websockets")
    sub.subscribe("ws/#", 1)
    pub.publish("ws/a", b"over websocket", 1)
    m = sub.get()
    assert (m.topic, m.payload) == ("ws/a", b"over websocket")
    sub.disconnect()
    pub.disconnect()


def test_server_assigned_client_id_5(broker):
    c = Paho(broker.mqtt_port, "", V5)
    assert c.connack_props.AssignedClientIdentifier
    c.disconnect()


def test_topic_permissions(broker):
    from amqpbroker.broker.admin import Admin

    def grant():
        admin = Admin(broker.core)
        admin.set_topic_permission("guest", "/", "amq.topic", write="^tp\\.{client_id}\\.",
                                   read="^tp\\.")
    broker.call_soon(grant)
    try:
        c = Paho(broker.mqtt_port, "dev7", V5)
        c.subscribe("tp/#", 1)
        c.publish("tp/dev7/ok", b"allowed", 1)
        assert c.get().payload == b"allowed"
        info = c.client.publish("tp/other/x", b"refused", 1)
        info.wait_for_publish(10)
        assert info.rc == 0  # paho reports the PUBACK; the broker answered 0x87
        assert c.nothing(0.5)
        codes = c.subscribe("elsewhere/#", 1)
        assert codes[0].value == 0x87
        c.disconnect()
    finally:
        broker.call_soon(lambda: broker.core.runtime.topic_permissions.clear())
