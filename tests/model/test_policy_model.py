"""Policies in the pure model: selection, precedence, operator policies, live effects."""

from __future__ import annotations

import pytest

from amqpbroker.clock import ManualScheduler
from amqpbroker.model import policy
from amqpbroker.model.vhost import VirtualHost
from tests.model.test_queue_features_model import FakeConsumer, drain, headers, publish


def pol(pattern=".*", definition=None, priority=0, apply_to="all"):
    return {"pattern": pattern, "definition": definition or {}, "priority": priority,
            "apply-to": apply_to}


@pytest.fixture
def clock() -> ManualScheduler:
    return ManualScheduler()


@pytest.fixture
def vh(clock) -> VirtualHost:
    return VirtualHost("/", scheduler=clock)


def set_policies(vh, user=(), operator=()):
    vh.policies.load(user, operator)
    vh.reapply_policies()


def test_highest_priority_wins_and_ties_go_to_the_first_name():
    ps = policy.PolicySet()
    ps.load([("b", pol("^q", {"max-length": 1})), ("a", pol("^q", {"max-length": 2})),
             ("hi", pol("^qq", {"max-length": 3}, priority=5))], [])
    assert ps.effective("classic", "q1", {}).policy == "a"
    assert ps.effective("classic", "qq", {}).policy == "hi"
    assert ps.effective("classic", "other", {}).policy is None


def test_apply_to_selects_object_kinds():
    ps = policy.PolicySet()
    ps.load([("x", pol(".*", {"alternate-exchange": "ae"}, apply_to="exchanges")),
             ("s", pol(".*", {"max-age": "1h"}, apply_to="streams")),
             ("qq", pol(".*", {"delivery-limit": 3}, apply_to="quorum_queues"))], [])
    assert ps.effective("exchange", "e", {}).policy == "x"
    assert ps.effective("stream", "s", {}).policy == "s"
    assert ps.effective("quorum", "q", {}).policy == "qq"
    assert ps.effective("classic", "q", {}).policy is None


def test_arguments_vs_policy_and_operator_policy():
    eff = policy.combine("classic", {"x-message-ttl": 500, "x-max-length": 50,
                                     "x-dead-letter-exchange": "mine", "x-overflow": "drop-head"},
                         {"message-ttl": 1000, "max-length": 10, "dead-letter-exchange": "pol",
                          "overflow": "reject-publish", "expires": 60000},
                         {"max-length": 5, "expires": 120000, "overflow": "reject-publish-dlx"})
    a = eff.arguments
    assert a["x-message-ttl"] == 500  # the smaller of argument and policy
    assert a["x-max-length"] == 5  # the operator policy caps both
    assert a["x-dead-letter-exchange"] == "mine"  # the argument wins
    assert a["x-expires"] == 60000  # smaller of policy and operator policy
    assert a["x-overflow"] == "reject-publish-dlx"  # the operator policy's value
    assert eff.definition == {"message-ttl": 1000, "max-length": 5, "dead-letter-exchange": "pol",
                              "overflow": "reject-publish-dlx", "expires": 60000}


def test_negative_delivery_limit_never_undercuts_a_limit():
    assert policy.combine("quorum", {}, {"delivery-limit": -1},
                          {"delivery-limit": 20}).arguments["x-delivery-limit"] == 20
    assert policy.combine("quorum", {"x-delivery-limit": 5}, {"delivery-limit": -1},
                          {}).arguments["x-delivery-limit"] == 5
    assert policy.combine("quorum", {}, {"delivery-limit": 3},
                          {"delivery-limit": 20}).arguments["x-delivery-limit"] == 3


def test_validation_refuses_what_rabbitmq_4_refuses():
    with pytest.raises(policy.PolicyError, match="mirroring"):
        policy.validate("policy", {"ha-mode": "all"})
    with pytest.raises(policy.PolicyError, match="not recognised"):
        policy.validate("policy", {"no-such-key": 1})
    with pytest.raises(policy.PolicyError, match="not recognised"):
        policy.validate("operator_policy", {"dead-letter-exchange": "x"})
    with pytest.raises(policy.PolicyError, match="message-ttl"):
        policy.validate("policy", {"message-ttl": -5})
    policy.validate("policy", {"queue-mode": "lazy", "queue-version": 2, "max-age": "7D"})


def test_policy_ttl_and_dlx_dead_letter_existing_messages(vh, clock):
    vh.declare_exchange("dlx", "fanout")
    dlq = vh.declare_queue("dlq")
    vh.bind(dlq, "dlx", "")
    q = vh.declare_queue("work")
    assert q.features is None
    publish(vh, "work", b"old")
    clock.advance(1.0)
    set_policies(vh, [("ttl", pol("^work$", {"message-ttl": 500,
                                             "dead-letter-exchange": "dlx"}))])
    publish(vh, "work", b"new")
    assert q.message_count == 2  # "old" counts from when the queue started tracking time
    clock.advance(0.6)
    assert q.message_count == 0
    got = drain(dlq)
    assert got == [b"old", b"new"]


def test_new_ttl_expires_what_is_now_too_old(vh, clock):
    q = vh.declare_queue("q", arguments={"x-message-ttl": 60000})
    publish(vh, "q", b"a")
    clock.advance(2.0)
    publish(vh, "q", b"b")
    set_policies(vh, [("p", pol("^q$", {"message-ttl": 1000}))])
    assert q.message_count == 1  # a is 2 s old: gone at once
    clock.advance(1.1)
    assert q.message_count == 0


def test_lower_max_length_trims_the_head_and_clearing_restores(vh, clock):
    vh.declare_exchange("dlx", "fanout")
    dlq = vh.declare_queue("dlq")
    vh.bind(dlq, "dlx", "")
    q = vh.declare_queue("q", arguments={"x-dead-letter-exchange": "dlx"})
    for i in range(5):
        publish(vh, "q", str(i).encode())
    set_policies(vh, [("cap", pol("^q$", {"max-length": 2}))])
    assert q.message_count == 2
    got = [m for m, _ in [dlq.get() for _ in range(3)]]
    assert [m.body for m in got] == [b"0", b"1", b"2"]
    assert headers(got[0])["x-death"][0]["reason"] == "maxlen"
    set_policies(vh, [])
    for i in range(5):
        publish(vh, "q", b"more")
    assert q.message_count == 7
    assert q.policy is None


def test_operator_policy_caps_user_policy(vh):
    q = vh.declare_queue("q")
    set_policies(vh, [("user", pol(".*", {"max-length": 10}))],
                 [("op", pol(".*", {"max-length": 3}))])
    for i in range(6):
        publish(vh, "q", b"x")
    assert q.message_count == 3
    assert (q.policy, q.operator_policy) == ("user", "op")
    assert q.effective_policy_definition == {"max-length": 3}


def test_policy_applies_to_queues_declared_later_and_expires(vh, clock):
    set_policies(vh, [("exp", pol("^tmp", {"expires": 1000}))])
    q = vh.declare_queue("tmp1")
    assert q.policy == "exp"
    clock.advance(1.1)
    assert "tmp1" not in vh.queues


def test_alternate_exchange_by_policy_argument_wins(vh):
    vh.declare_exchange("ae", "fanout")
    caught = vh.declare_queue("caught")
    vh.bind(caught, "ae", "")
    ex = vh.declare_exchange("in", "direct")
    set_policies(vh, [("ae", pol("^in$", {"alternate-exchange": "ae"}, apply_to="exchanges"))])
    publish(vh, "nowhere", b"x", exchange="in")
    assert caught.message_count == 1
    assert ex.policy == "ae"
    set_policies(vh, [])
    publish(vh, "nowhere", b"y", exchange="in")
    assert caught.message_count == 1


def test_consumer_timeout_and_single_queue_kinds(vh):
    q = vh.declare_queue("q")
    set_policies(vh, [("ct", pol(".*", {"consumer-timeout": 5000}))])
    assert q.consumer_timeout_ms == 5000
    assert q.features is None  # nothing that changes how the queue works: still plain
    c = FakeConsumer()
    q.add_consumer(c)


def test_max_queues_limit(vh):
    vh.limits = {"max-queues": 1}
    vh.declare_queue("a")
    from amqpbroker import errors
    with pytest.raises(errors.PreconditionFailed) as e:
        vh.declare_queue("b")
    assert e.value.text == "cannot declare queue 'b': queue limit in vhost '/' (1) is reached"
    vh.declare_queue("a")  # redeclaring an existing one is fine


def test_policy_wins_for_quorum_overflow_and_stream_settings():
    eff = policy.combine("quorum", {"x-overflow": "drop-head", "x-max-length": 5},
                         {"overflow": "reject-publish", "max-length": 9}, {})
    assert eff.arguments["x-overflow"] == "reject-publish"
    assert eff.arguments["x-max-length"] == 5
    eff = policy.combine("classic", {"x-overflow": "drop-head"},
                         {"overflow": "reject-publish"}, {})
    assert eff.arguments["x-overflow"] == "drop-head"
    eff = policy.combine("stream", {"x-max-length-bytes": 100, "x-max-age": "1D"},
                         {"max-length-bytes": 5000, "max-age": "1h"}, {})
    assert eff.arguments["x-max-length-bytes"] == 5000 and eff.arguments["x-max-age"] == "1h"
    # keys that do not apply to the kind are left out of the effective definition
    eff = policy.combine("exchange", {}, {"message-ttl": 5, "alternate-exchange": "ae"}, {})
    assert eff.definition == {"alternate-exchange": "ae"}
