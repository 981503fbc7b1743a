"""x-consistent-hash and x-local-random in the model (no IO)."""

import random
from collections import Counter

import pytest

from amqpbroker import errors
from amqpbroker.model.consistent_hash import ConsistentHashExchange, jump_hash
from amqpbroker.model.local_random import LocalRandomExchange
from amqpbroker.model.message import Message
from amqpbroker.model.vhost import VirtualHost
from amqpbroker.protocol.properties import encode_properties
from pamqp.commands import Basic


def _keys(n, seed=7):
    rnd = random.Random(seed)
    return [f"k{rnd.getrandbits(64):x}" for _ in range(n)]


def test_jump_hash_is_in_range_and_stable():
    for key in range(1000):
        b = jump_hash(key, 10)
        assert 0 <= b < 10 and jump_hash(key, 10) == b
    assert jump_hash(123, 1) == 0


def test_shares_follow_weights_within_5_percent_over_100k_keys():
    ex = ConsistentHashExchange("chx")
    weights = {"q1": 1, "q2": 1, "q3": 2, "q4": 3}
    for q, w in weights.items():
        ex.bind(q, str(w))
    n = 100_000
    counts = Counter(ex.route(k)[0] for k in _keys(n))
    total_w = sum(weights.values())
    for q, w in weights.items():
        expected = n * w / total_w
        assert abs(counts[q] - expected) / expected < 0.05, (q, counts[q], expected)


def test_adding_a_queue_moves_about_one_nth_of_the_keys_all_to_it():
    ex = ConsistentHashExchange("chx")
    for i in range(4):
        ex.bind(f"q{i}", "10")
    keys = _keys(20_000)
    before = {k: ex.route(k)[0] for k in keys}
    ex.bind("q4", "10")
    after = {k: ex.route(k)[0] for k in keys}
    moved = [k for k in keys if before[k] != after[k]]
    assert all(after[k] == "q4" for k in moved)
    assert 0.8 / 5 < len(moved) / len(keys) < 1.2 / 5


def test_unbind_shifts_buckets_and_routes_only_to_remaining():
    ex = ConsistentHashExchange("chx")
    ex.bind("a", "1")
    ex.bind("b", "2")
    ex.bind("c", "1")
    assert ex.bucket_count == 4
    ex.unbind("b", "2")
    assert ex.bucket_count == 2
    assert {ex.route(k)[0] for k in _keys(200)} == {"a", "c"}
    ex.unbind_all("a")
    ex.unbind_all("c")
    assert ex.route("x") == ()


@pytest.mark.parametrize("key,text", [
    ("abc", 'The binding key must be an integer: <<"abc">>'),
    ("", 'The binding key must be an integer: <<"">>'),
    ("0", "The binding key must be greater than 0"),
    ("-3", "The binding key must be greater than 0"),
])
def test_binding_key_must_be_a_positive_integer(key, text):
    vhost = VirtualHost("/")
    vhost.declare_exchange("chx", "x-consistent-hash")
    q = vhost.declare_queue("q")
    with pytest.raises(errors.PreconditionFailed, match=text.replace('"', '.').replace("<", ".")
                       .replace(">", ".")):
        vhost.bind(q, "chx", key)


def test_hash_header_and_property_arguments():
    vhost = VirtualHost("/")
    with pytest.raises(errors.PreconditionFailed, match="mutually exclusive"):
        vhost.declare_exchange("x", "x-consistent-hash",
                               arguments={"hash-header": "h", "hash-property": "message_id"})
    with pytest.raises(errors.PreconditionFailed, match="Unsupported property: app_id"):
        vhost.declare_exchange("x", "x-consistent-hash", arguments={"hash-property": "app_id"})
    hx = vhost.declare_exchange("hx", "x-consistent-hash", arguments={"hash-header": "user"})
    px = vhost.declare_exchange("px", "x-consistent-hash",
                                arguments={"hash-property": "message_id"})
    qs = [vhost.declare_queue(f"q{i}") for i in range(4)]
    for q in qs:
        vhost.bind(q, "hx", "1")
        vhost.bind(q, "px", "1")

    def msg(props):
        raw = encode_properties(Basic.Properties(**props))
        return Message("", "rk-%d" % random.random(), raw, b"", 0)

    # Same header value -> same queue whatever the routing key; different values spread.
    for user in ("alice", "bob", "carol"):
        targets = {vhost.route(hx, msg({"headers": {"user": user}}))[0].name for _ in range(20)}
        assert len(targets) == 1
    spread = {vhost.route(hx, msg({"headers": {"user": f"u{i}"}}))[0].name for i in range(200)}
    assert spread == {q.name for q in qs}
    for mid in ("m1", "m2"):
        targets = {vhost.route(px, msg({"message_id": mid}))[0].name for _ in range(20)}
        assert len(targets) == 1
    spread = {vhost.route(px, msg({"message_id": f"id{i}"}))[0].name for i in range(200)}
    assert spread == {q.name for q in qs}


def test_local_random_picks_one_bound_queue_each_time():
    ex = LocalRandomExchange("lr")

    class Q:
        is_stream = False
        is_quorum = False

    qs = [Q() for _ in range(3)]
    for q in qs:
        ex.bind(q, "")
    picks = Counter(ex.route("anything")[0] for _ in range(3000))
    assert set(picks) == set(qs)
    assert all(600 < n < 1400 for n in picks.values())
    ex.unbind(qs[0], "")
    assert {ex.route("")[0] for _ in range(100)} <= set(qs[1:])


def test_local_random_binding_rules():
    vhost = VirtualHost("/")
    vhost.declare_exchange("lr", "x-local-random")
    classic = vhost.declare_queue("c")
    with pytest.raises(errors.PreconditionFailed, match="Non empty binding 'k' key not permitted"):
        vhost.bind(classic, "lr", "k")
    other = vhost.declare_exchange("other", "fanout")
    with pytest.raises(errors.PreconditionFailed, match="Destination not found"):
        vhost.bind(other, "lr", "")
    quorum = vhost.declare_queue("qq", durable=True, arguments={"x-queue-type": "quorum"})
    with pytest.raises(errors.PreconditionFailed,
                       match="Queue type rabbit_quorum_queue not valid for this exchange type"):
        vhost.bind(quorum, "lr", "")
    vhost.bind(classic, "lr", "")
    m = Message("lr", "", b"\x00\x00", b"x", 1)
    assert list(vhost.route(vhost.exchange("lr"), m)) == [classic]
