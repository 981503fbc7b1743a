"""The MQTT session over an in-memory core: packets in, core operations and packets out."""

from __future__ import annotations

import pytest

from amqpbroker.mqtt import packets as p
from amqpbroker.mqtt.registry import MQTTSettings
from mqtt_harness import Client, make


@pytest.fixture
def world():
    return make()


def test_connect_and_ping(world):
    core, reg = world
    c = Client(reg)
    ack = c.connect()
    assert ack == p.ConnAck(False, 0)
    assert c.send(p.PingReq()) == [p.PingResp()]


def test_first_packet_must_be_connect(world):
    core, reg = world
    c = Client(reg)
    assert c.send(p.PingReq()) == []
    assert c.session.closed


def test_bad_password_311_and_5(world):
    core, reg = world
    c = Client(reg)
    out = c.send(p.Connect(client_id="x", username="guest", password=b"nope"))
    assert out == [p.ConnAck(False, 0x04)] and c.session.closed
    c5 = Client(reg, 5)
    out = c5.send(p.Connect(client_id="x", protocol_level=5, username="guest", password=b"nope"))
    assert out[0].reason_code == 0x86 and c5.session.closed


def test_anonymous_only_when_configured():
    core, reg = make()
    c = Client(reg)
    assert c.send(p.Connect(client_id="x")) == [p.ConnAck(False, 0x04)]
    core, reg = make(MQTTSettings(allow_anonymous=True))
    c = Client(reg)
    assert c.send(p.Connect(client_id="x")) == [p.ConnAck(False, 0)]


def test_vhost_in_user_name(world):
    core, reg = world
    core.vhosts.add("iot")
    c = Client(reg)
    assert c.send(p.Connect(client_id="x", username="iot:guest", password=b"guest")) == [p.ConnAck(False, 0x05)]
    core.users["guest"].vhosts.add("iot")
    c = Client(reg)
    c.connect(username="iot:guest")
    assert c.session.vhost.name == "iot"


def test_unsupported_level_answers_in_its_own_version(world):
    core, reg = world
    c = Client(reg)
    data = bytes.fromhex("100c00044d5154540702003c0000")  # level 7
    assert c.session.feed(data, 0) is None
    assert c.session.data_to_send() == b"\x20\x02\x00\x01" and c.session.closed


def test_publish_maps_topic_to_routing_key(world):
    core, reg = world
    c = Client(reg)
    c.connect()
    c.send(p.Publish("sensors/1/temp", b"21.5"))
    [msg] = core.published
    assert (msg.exchange, msg.routing_key, msg.body, msg.persistent) == ("amq.topic", "sensors.1.temp", b"21.5", False)


def test_puback_waits_for_the_core_confirm_and_keeps_order(world):
    core, reg = world
    core.auto_confirm = False
    c = Client(reg)
    c.connect()
    assert c.send(p.Publish("a", b"1", qos=1, packet_id=1), p.Publish("b", b"2", qos=1, packet_id=2)) == []
    assert core.published[0].persistent
    core.confirm_all()
    assert c.received() == [p.PubAck(1), p.PubAck(2)]


def test_subscribe_deliver_and_ack(world):
    core, reg = world
    sub, pub = Client(reg), Client(reg)
    sub.connect("sub")
    pub.connect("pub")
    assert sub.subscribe("sensors/+/temp", qos=1) == [p.SubAck(1, [1])]
    q = core.queue("/", "mqtt-subscription-subqos1")
    assert q.bindings[0][:2] == ("amq.topic", "sensors.*.temp")
    pub.send(p.Publish("sensors/7/temp", b"x", qos=1, packet_id=5))
    [m] = sub.received()
    assert (m.topic, m.payload, m.qos) == ("sensors/7/temp", b"x", 1)
    assert q.consumers[0].unacked == 1
    sub.send(p.PubAck(m.packet_id))
    assert q.consumers[0].unacked == 0


def test_qos0_subscription_of_clean_session_uses_qos0_queue(world):
    core, reg = world
    c = Client(reg)
    c.connect("z")
    c.subscribe("t", qos=0)
    assert core.queue("/", "mqtt-subscription-zqos0") is not None
    assert not core.queue("/", "mqtt-subscription-zqos0").durable


def test_delivered_qos_is_the_minimum(world):
    core, reg = world
    sub, pub = Client(reg), Client(reg)
    sub.connect("s")
    pub.connect("p")
    sub.subscribe("t", qos=1)
    pub.send(p.Publish("t", b"0", qos=0))
    [m] = sub.received()
    assert m.qos == 0 and core.queue("/", "mqtt-subscription-sqos1").consumers[0].unacked == 0


def test_qos2_inbound_handshake_and_duplicate_suppression(world):
    core, reg = world
    c = Client(reg)
    c.connect()
    assert c.send(p.Publish("t", b"x", qos=2, packet_id=9)) == [p.PubRec(9)]
    assert c.send(p.Publish("t", b"x", qos=2, packet_id=9, dup=True)) == [p.PubRec(9)]
    assert len(core.published) == 1
    assert c.send(p.PubRel(9)) == [p.PubComp(9)]
    c.send(p.Publish("t", b"y", qos=2, packet_id=9))
    assert len(core.published) == 2


def test_qos2_outbound(world):
    core, reg = world
    sub, pub = Client(reg), Client(reg)
    sub.connect("s")
    pub.connect("p")
    sub.subscribe("t", qos=2)
    pub.send(p.Publish("t", b"x", qos=2, packet_id=1))
    [m] = sub.received()
    assert m.qos == 2
    assert sub.send(p.PubRec(m.packet_id)) == [p.PubRel(m.packet_id)]
    assert core.queue("/", "mqtt-subscription-sqos1").consumers[0].unacked == 0
    sub.send(p.PubComp(m.packet_id))
    assert not sub.session.subs.released


def test_retained_delivered_on_subscribe_and_cleared(world):
    core, reg = world
    pub = Client(reg)
    pub.connect("p")
    pub.send(p.Publish("home/temp", b"20", retain=True, qos=1, packet_id=1))
    sub = Client(reg)
    sub.connect("s")
    out = sub.subscribe("home/#", qos=1)
    assert out[0] == p.SubAck(1, [1])
    assert (out[1].topic, out[1].payload, out[1].retain) == ("home/temp", b"20", True)
    pub.send(p.Publish("home/temp", b"", retain=True))
    late = Client(reg)
    late.connect("l")
    assert late.subscribe("home/#") == [p.SubAck(1, [1])]


def test_persistent_session_survives_disconnect(world):
    core, reg = world
    c = Client(reg)
    assert c.connect("dev", clean=False).session_present is False
    c.subscribe("a/b", qos=1)
    c.send(p.Disconnect())
    assert c.session.closed
    q = core.queue("/", "mqtt-subscription-devqos1")
    assert q.durable and q.arguments["x-expires"] == 86400 * 1000
    pub = Client(reg)
    pub.connect("p")
    pub.send(p.Publish("a/b", b"while away", qos=1, packet_id=1))
    c2 = Client(reg)
    ack = c2.send(p.Connect(client_id="dev", clean_start=False, username="guest", password=b"guest"))
    assert ack[0] == p.ConnAck(True, 0)
    assert ack[1].payload == b"while away"


def test_clean_session_deletes_its_queue(world):
    core, reg = world
    c = Client(reg)
    c.connect("dev")
    c.subscribe("a", qos=1)
    c.send(p.Disconnect())
    assert core.queue("/", "mqtt-subscription-devqos1") is None


def test_unacked_comes_back_with_dup(world):
    core, reg = world
    c = Client(reg)
    c.connect("dev", clean=False)
    c.subscribe("a", qos=1)
    pub = Client(reg)
    pub.connect("p")
    pub.send(p.Publish("a", b"m", qos=1, packet_id=1))
    [m] = c.received()
    assert not m.dup
    c.session.connection_lost()
    c2 = Client(reg)
    out = c2.send(p.Connect(client_id="dev", clean_start=False, username="guest", password=b"guest"))
    assert out[1].dup and out[1].payload == b"m"


def test_client_id_takeover(world):
    core, reg = world
    a, b = Client(reg, 5), Client(reg)
    a.connect("same")
    b.connect("same")
    assert a.session.closed
    assert a.received() == [p.Disconnect(0x8E)]
    assert not b.session.closed


def test_will_on_abnormal_close_not_on_disconnect(world):
    core, reg = world
    c = Client(reg)
    c.connect("w", will=p.Will("status/w", b"gone"))
    c.send(p.Disconnect())
    assert core.published == []
    c = Client(reg)
    c.connect("w", will=p.Will("status/w", b"gone"))
    c.session.connection_lost()
    assert [m.routing_key for m in core.published] == ["status.w"]


def test_will_delay_and_cancel_on_reconnect(world):
    core, reg = world
    c = Client(reg, 5)
    c.connect("w", properties={"session_expiry_interval": 100},
              will=p.Will("s", b"gone", properties={"will_delay_interval": 30}))
    c.session.connection_lost()
    reg.tick(10)
    assert core.published == []
    reg.tick(31)
    assert len(core.published) == 1
    c = Client(reg, 5)
    c.connect("w", properties={"session_expiry_interval": 100},
              will=p.Will("s", b"again", properties={"will_delay_interval": 30}))
    c.session.connection_lost()
    Client(reg, 5).connect("w", clean=False, properties={"session_expiry_interval": 100})
    reg.tick(100)
    assert len(core.published) == 1


def test_keepalive_one_and_a_half(world):
    core, reg = world
    c = Client(reg)
    c.connect(keepalive=10, will=p.Will("k", b"dead"))
    c.session.tick(14.9)
    assert not c.session.closed
    c.session.tick(15.1)
    assert c.session.closed and len(core.published) == 1


def test_mqtt5_properties_to_amqp_and_back(world):
    core, reg = world
    sub, pub = Client(reg, 5), Client(reg, 5)
    sub.connect("s")
    pub.connect("p")
    sub.send(p.Subscribe(1, [("req/#", p.SubOptions(1))], {"subscription_identifier": [42]}))
    pub.send(p.Publish("req/1", b"q", qos=1, packet_id=1, properties={
        "content_type": "application/json", "correlation_data": b"abc", "response_topic": "resp/1",
        "message_expiry_interval": 60, "user_property": [("k", "v")]}))
    msg = core.published[0]
    assert msg.properties["content_type"] == "application/json"
    assert msg.properties["correlation_id"] == "abc"
    assert msg.properties["reply_to"] == "resp.1"
    assert msg.properties["expiration"] == "60000"
    assert msg.properties["headers"]["k"] == "v"
    [m] = [x for x in sub.received() if isinstance(x, p.Publish)]
    assert m.properties["subscription_identifier"] == [42]
    assert m.properties["correlation_data"] == b"abc" and m.properties["response_topic"] == "resp/1"
    assert ("k", "v") in m.properties["user_property"]


def test_topic_alias(world):
    core, reg = world
    c = Client(reg, 5)
    c.connect()
    c.send(p.Publish("long/topic", b"1", properties={"topic_alias": 3}))
    c.send(p.Publish("", b"2", properties={"topic_alias": 3}))
    assert [m.routing_key for m in core.published] == ["long.topic", "long.topic"]
    out = c.send(p.Publish("", b"3", properties={"topic_alias": 4}))
    assert out[0].reason_code == 0x82 and c.session.closed


def test_topic_alias_above_maximum(world):
    core, reg = world
    c = Client(reg, 5)
    c.connect()
    out = c.send(p.Publish("x", b"1", properties={"topic_alias": 17}))
    assert out[0].reason_code == 0x94


def test_no_local(world):
    core, reg = world
    c = Client(reg, 5)
    c.connect("me")
    c.send(p.Subscribe(1, [("t", p.SubOptions(1, no_local=True))]))
    c.send(p.Publish("t", b"mine", qos=1, packet_id=1))
    assert [x for x in c.received() if isinstance(x, p.Publish)] == []


def test_retain_as_published(world):
    core, reg = world
    c = Client(reg, 5)
    c.connect("me")
    c.send(p.Subscribe(1, [("a", p.SubOptions(0, retain_as_published=True)),
                           ("b", p.SubOptions(0))]))
    out = c.send(p.Publish("a", b"1", retain=True), p.Publish("b", b"2", retain=True))
    pubs = [x for x in out if isinstance(x, p.Publish)]
    assert [(x.topic, x.retain) for x in pubs] == [("a", True), ("b", False)]


def test_shared_subscription_competing_consumers(world):
    core, reg = world
    a, b, pub = Client(reg, 5), Client(reg, 5), Client(reg)
    a.connect("a")
    b.connect("b")
    pub.connect("p")
    for c in (a, b):
        assert c.send(p.Subscribe(1, [("$share/g/jobs/#", p.SubOptions(0))])) == [p.SubAck(1, [0])]
    for i in range(4):
        pub.send(p.Publish("jobs/x", str(i).encode()))
    got_a = [x.payload for x in a.received()]
    got_b = [x.payload for x in b.received()]
    assert sorted(got_a + got_b) == [b"0", b"1", b"2", b"3"] and got_a and got_b


def test_invalid_filters_are_refused_per_filter(world):
    core, reg = world
    c = Client(reg, 5)
    c.connect()
    assert c.send(p.Subscribe(1, [("a/#/b", p.SubOptions()), ("ok", p.SubOptions())])) == [p.SubAck(1, [0x8F, 0])]
    c3 = Client(reg)
    c3.connect("c3")
    assert c3.subscribe("a+", qos=0) == [p.SubAck(1, [0x80])]


def test_topic_permissions(world):
    core, reg = world
    core.users["guest"].write_ok = lambda rk: not rk.startswith("secret")
    core.users["guest"].read_ok = lambda rk: not rk.startswith("secret")
    c = Client(reg, 5)
    c.connect()
    assert c.send(p.Publish("secret/x", b"", qos=1, packet_id=1)) == [p.PubAck(1, 0x87)]
    assert c.send(p.Subscribe(2, [("secret/#", p.SubOptions())])) == [p.SubAck(2, [0x87])]
    c3 = Client(reg)
    c3.connect("c3")
    c3.send(p.Publish("secret/x", b"", qos=1, packet_id=1))
    assert c3.session.closed


def test_unsubscribe(world):
    core, reg = world
    c = Client(reg, 5)
    c.connect()
    c.subscribe("a")
    assert c.send(p.Unsubscribe(2, ["a", "b"])) == [p.UnsubAck(2, [0, 0x11])]
    assert core.queue("/", "mqtt-subscription-c1qos1").bindings == []


def test_server_assigned_client_id_5(world):
    core, reg = world
    c = Client(reg, 5)
    ack = c.send(p.Connect(client_id="", protocol_level=5, username="guest", password=b"guest"))[0]
    assert ack.properties["assigned_client_identifier"]
    c3 = Client(reg)
    assert c3.send(p.Connect(client_id="", clean_start=False, username="guest",
                             password=b"guest")) == [p.ConnAck(False, 0x02)]


def test_malformed_after_connect_5_gets_disconnect_with_reason(world):
    core, reg = world
    c = Client(reg, 5)
    c.connect()
    out = c.send_bytes(b"\x36\x05\x00\x01a\x00\x01")  # QoS 3
    assert out[0].reason_code == 0x81 and c.session.closed


def test_packet_too_large_before_connect(world):
    core, reg = world
    c = Client(reg)
    c.send_bytes(b"\x10\xff\xff\x7f")  # a 2 MiB CONNECT announced
    assert c.session.closed


def test_second_connect_is_a_protocol_error(world):
    core, reg = world
    c = Client(reg, 5)
    c.connect()
    out = c.send(p.Connect(client_id="c1", protocol_level=5))
    assert out[0].reason_code == 0x82


def test_session_expiry_5(world):
    core, reg = world
    c = Client(reg, 5)
    ack = c.connect("e", properties={"session_expiry_interval": 300})
    c.subscribe("x")
    c.send(p.Disconnect())
    assert core.queue("/", "mqtt-subscription-eqos1").arguments["x-expires"] == 300_000
    c = Client(reg, 5)
    assert c.connect("e", clean=False, properties={"session_expiry_interval": 300}).session_present


def test_mqtt_31_clients_are_served_as_311(world):
    core, reg = world
    c = Client(reg, 3)
    assert c.connect("old") == p.ConnAck(False, 0)
    assert c.send(p.PingReq()) == [p.PingResp()]
