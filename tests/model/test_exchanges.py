"""Exchange routing tables, checked without a server."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amqpbroker.model.exchanges import (
    ConsistentHashExchange,
    LocalRandomExchange,
    EXCHANGE_TYPES,
    DirectExchange,
    Exchange,
    FanoutExchange,
    HeadersExchange,
    TopicExchange,
    values_equal,
)

ALL_TYPES = [DirectExchange, FanoutExchange, TopicExchange, HeadersExchange]


# ------------------------------------------------------------- common behaviour


def test_registry_and_flags() -> None:
    assert EXCHANGE_TYPES == {
        "direct": DirectExchange,
        "fanout": FanoutExchange,
        "topic": TopicExchange,
        "headers": HeadersExchange,
        "x-consistent-hash": ConsistentHashExchange,
        "x-local-random": LocalRandomExchange,
    }
    for name, cls in EXCHANGE_TYPES.items():
        x = cls("x")
        assert x.type == name
        assert x.needs_headers == (name == "headers")


def test_attributes() -> None:
    x = TopicExchange("logs", durable=True, auto_delete=False, internal=True,
                      arguments={"alternate-exchange": "ae"})
    assert (x.name, x.type, x.durable, x.auto_delete, x.internal) == (
        "logs", "topic", True, False, True)
    assert x.arguments == {"alternate-exchange": "ae"}
    assert not x.has_bindings()


@pytest.mark.parametrize("cls", ALL_TYPES)
def test_identical_binding_is_a_noop(cls: type[Exchange]) -> None:
    x = cls("x")
    assert x.bind("q", "k", {"a": 1, "b": "2"})
    # Same binding, arguments in another order: still identical.
    assert not x.bind("q", "k", {"b": "2", "a": 1})
    assert x.bind("q", "k", {"a": True, "b": "2"})  # True is not 1
    assert x.bind("q", "k", {"a": 1.0, "b": "2"})  # nor is 1.0
    assert x.bind("q", "other", {"a": 1, "b": "2"})
    assert x.bind("q", "k")
    assert not x.bind("q", "k", {})
    assert len(list(x.bindings())) == 5


@pytest.mark.parametrize("cls", ALL_TYPES)
def test_bindings_in_insertion_order_and_unbind(cls: type[Exchange]) -> None:
    x = cls("x")
    made = [("q2", "b", {}), ("q1", "a", {"k": "v"}), ("q1", "a", {}), ("q3", "c", {})]
    for dest, key, args in made:
        x.bind(dest, key, args)
    assert list(x.bindings()) == made
    assert x.unbind("q1", "a", {"k": "v"})
    assert not x.unbind("q1", "a", {"k": "v"})
    assert not x.unbind("q1", "a", {"k": "other"})
    assert not x.unbind("nobody", "a", {})
    assert list(x.bindings()) == [made[0], made[2], made[3]]
    assert x.has_bindings()


@pytest.mark.parametrize("cls", ALL_TYPES)
def test_unbind_all(cls: type[Exchange]) -> None:
    x = cls("x")
    x.bind("q1", "a", {})
    x.bind("q1", "b", {"k": "v"})
    x.bind("q2", "a", {})
    assert x.unbind_all("q1") == 2
    assert x.unbind_all("q1") == 0
    assert x.unbind_all("never-bound") == 0
    assert [d for d, _, _ in x.bindings()] == ["q2"]
    assert x.unbind_all("q2") == 1
    assert not x.has_bindings()
    assert x.route("a", {}) == ()


def test_bindings_returns_copies() -> None:
    x = DirectExchange("x")
    args = {"k": "v"}
    x.bind("q", "a", args)
    args["k"] = "changed"  # the caller's dict is not the stored one
    (_, _, stored), = x.bindings()
    stored["k"] = "changed too"
    assert list(x.bindings()) == [("q", "a", {"k": "v"})]
    assert x.unbind("q", "a", {"k": "v"})


# ----------------------------------------------------------------- equivalence


def test_is_equivalent() -> None:
    x = DirectExchange("x", durable=True, arguments={"alternate-exchange": "ae", "foo": 1})
    same = ("direct", True, False, False, {"alternate-exchange": "ae", "foo": 1})
    assert x.is_equivalent(*same)
    # RabbitMQ compares only alternate-exchange among the arguments.
    assert x.is_equivalent("direct", True, False, False, {"alternate-exchange": "ae"})
    assert x.inequivalent_field(*same) is None
    cases = {
        "type": ("topic", True, False, False, {"alternate-exchange": "ae"}),
        "durable": ("direct", False, False, False, {"alternate-exchange": "ae"}),
        "auto_delete": ("direct", True, True, False, {"alternate-exchange": "ae"}),
        "internal": ("direct", True, False, True, {"alternate-exchange": "ae"}),
        "alternate-exchange": ("direct", True, False, False, {"alternate-exchange": "other"}),
    }
    for field, props in cases.items():
        assert not x.is_equivalent(*props)
        assert x.inequivalent_field(*props) == field
    assert x.inequivalent_field("direct", True, False, False, {}) == "alternate-exchange"
    assert x.inequivalent_field("direct", True, False, False, None) == "alternate-exchange"


def test_is_equivalent_without_arguments() -> None:
    x = FanoutExchange("x")
    assert x.is_equivalent("fanout", False, False, False, None)
    assert x.is_equivalent("fanout", False, False, False, {"anything": "else"})
    assert not x.is_equivalent("fanout", False, False, False, {"alternate-exchange": "ae"})


# ---------------------------------------------------------------------- direct


def test_direct_routing() -> None:
    x = DirectExchange("x")
    x.bind("q1", "black")
    x.bind("q2", "black")
    x.bind("q2", "green")
    x.bind("q3", "")
    assert x.route("black", None) == ("q1", "q2")
    assert x.route("green", None) == ("q2",)
    assert x.route("", None) == ("q3",)
    assert x.route("orange", None) == ()
    assert x.route("Black", None) == ()


def test_direct_same_destination_via_two_bindings() -> None:
    x = DirectExchange("x")
    x.bind("q", "k", {})
    x.bind("q", "k", {"x-extra": 1})
    assert x.route("k", None) == ("q",)
    x.unbind("q", "k", {})
    assert x.route("k", None) == ("q",)  # the other binding still routes
    x.unbind("q", "k", {"x-extra": 1})
    assert x.route("k", None) == ()


# ---------------------------------------------------------------------- fanout


def test_fanout_routing() -> None:
    x = FanoutExchange("x")
    assert x.route("anything", None) == ()
    x.bind("q1", "")
    x.bind("q2", "ignored")
    x.bind("q1", "different key")
    assert x.route("anything", None) == ("q1", "q2")
    x.unbind("q1", "")
    assert x.route("", None) == ("q1", "q2")
    x.unbind("q1", "different key")
    assert x.route("", None) == ("q2",)


# ----------------------------------------------------------------------- topic


def test_topic_routing_tutorial_five() -> None:
    # https://www.rabbitmq.com/tutorials/tutorial-five-python
    x = TopicExchange("x")
    x.bind("Q1", "*.orange.*")
    x.bind("Q2", "*.*.rabbit")
    x.bind("Q2", "lazy.#")
    cases = {
        "quick.orange.rabbit": {"Q1", "Q2"},
        "lazy.orange.elephant": {"Q1", "Q2"},
        "quick.orange.fox": {"Q1"},
        "lazy.brown.fox": {"Q2"},
        "lazy.pink.rabbit": {"Q2"},
        "quick.brown.fox": set(),
        "orange": set(),
        "quick.orange.new.rabbit": set(),
        "lazy.orange.new.rabbit": {"Q2"},
    }
    for key, dests in cases.items():
        got = x.route(key, None)
        assert len(got) == len(set(got))
        assert set(got) == dests, key


def test_topic_bindings_differing_in_arguments() -> None:
    x = TopicExchange("x")
    x.bind("q", "a.#", {})
    x.bind("q", "a.#", {"k": "v"})
    x.bind("r", "#")
    assert set(x.route("a.b", None)) == {"q", "r"}
    x.unbind("q", "a.#", {})
    assert set(x.route("a.b", None)) == {"q", "r"}
    x.unbind_all("q")
    assert x.route("a.b", None) == ("r",)


# --------------------------------------------------------------------- headers


def headers_route(bindings: list[tuple[str, dict[str, Any]]],
                  headers: Mapping[str, Any] | None) -> set[str]:
    x = HeadersExchange("x")
    for dest, args in bindings:
        x.bind(dest, "", args)
    got = x.route("ignored", headers)
    assert len(got) == len(set(got))
    return set(got)


# Bindings from the headers exchange example in RabbitMQ's exchange docs.
DOC_BINDINGS = [
    ("A", {"x-match": "all", "format": "pdf", "type": "report"}),
    ("B", {"x-match": "any", "format": "pdf", "type": "log"}),
    ("C", {"x-match": "all", "format": "zip", "type": "report"}),
]


@pytest.mark.parametrize(
    "headers, dests",
    [
        ({"format": "pdf", "type": "report"}, {"A", "B"}),
        ({"format": "pdf"}, {"B"}),
        ({"type": "log"}, {"B"}),
        ({"format": "zip", "type": "report"}, {"C"}),
        ({"format": "zip", "type": "report", "extra": 1}, {"C"}),
        ({"format": "zip", "type": "log"}, {"B"}),
        ({"format": "doc"}, set()),
        ({}, set()),
        (None, set()),
    ],
)
def test_headers_all_and_any(headers: dict[str, Any] | None, dests: set[str]) -> None:
    assert headers_route(DOC_BINDINGS, headers) == dests


def test_headers_x_match_defaults_to_all() -> None:
    bindings = [("q", {"a": "1", "b": "2"})]
    assert headers_route(bindings, {"a": "1", "b": "2"}) == {"q"}
    assert headers_route(bindings, {"a": "1"}) == set()


def test_headers_no_arguments() -> None:
    # Nothing to compare: "all" holds vacuously, even without headers, while
    # "any" has nothing that could match.
    assert headers_route([("q", {})], None) == {"q"}
    assert headers_route([("q", {"x-match": "all"})], {}) == {"q"}
    assert headers_route([("q", {"x-match": "any"})], {"a": 1}) == set()
    assert headers_route([("q", {"x-match": "all", "x-foo": "bar"})], None) == {"q"}


def test_headers_x_arguments_ignored_unless_with_x() -> None:
    args = {"a": "1", "x-tenant": "t1"}
    headers = {"a": "1", "x-tenant": "t2"}
    assert headers_route([("q", {"x-match": "all", **args})], headers) == {"q"}
    assert headers_route([("q", {"x-match": "all-with-x", **args})], headers) == set()
    assert headers_route(
        [("q", {"x-match": "all-with-x", **args})], {"a": "1", "x-tenant": "t1"}
    ) == {"q"}
    # Under "any", an x- argument alone can never match...
    assert headers_route([("q", {"x-match": "any", "x-tenant": "t1"})], {"x-tenant": "t1"}) == set()
    # ...but under any-with-x it can.
    assert headers_route(
        [("q", {"x-match": "any-with-x", "x-tenant": "t1", "a": "9"})], {"x-tenant": "t1"}
    ) == {"q"}
    # x-match itself is never a header to match, in any mode.
    assert headers_route([("q", {"x-match": "all-with-x"})], {}) == {"q"}
    assert headers_route([("q", {"x-match": "any-with-x"})], {"x-match": "any-with-x"}) == set()


def test_headers_void_value_matches_presence() -> None:
    assert headers_route([("q", {"a": None})], {"a": "anything"}) == {"q"}
    assert headers_route([("q", {"a": None})], {"a": None}) == {"q"}
    assert headers_route([("q", {"a": None})], {"b": 1}) == set()
    assert headers_route([("q", {"x-match": "any", "a": None, "b": 1})], {"a": 0}) == {"q"}
    # A void header value only matches a void (presence) binding value.
    assert headers_route([("q", {"a": "1"})], {"a": None}) == set()


@pytest.mark.parametrize(
    "bound, sent, match",
    [
        (1, 1, True),
        (1, True, False),  # Python says True == 1; AMQP/Erlang does not
        (True, 1, False),
        (0, False, False),
        (True, True, True),
        (False, False, True),
        (1, 1.0, True),  # Erlang == compares numbers by value
        (1, "1", False),
        ("pdf", b"pdf", True),  # long string vs byte array, same bytes
        ("pdf", bytearray(b"pdf"), True),
        ({"k": 1}, {"k": 1}, True),
        ({"k": 1}, {"k": True}, False),
        ([1, "a"], [1, "a"], True),
        ([1], [True], False),
    ],
)
def test_headers_value_equality(bound: Any, sent: Any, match: bool) -> None:
    assert headers_route([("q", {"h": bound})], {"h": sent}) == ({"q"} if match else set())
    assert values_equal(bound, sent) is match


def test_headers_each_destination_once() -> None:
    bindings = [("q", {"a": "1"}), ("q", {"b": "2"}), ("r", {"x-match": "any", "a": "1"})]
    x = HeadersExchange("x")
    for dest, args in bindings:
        x.bind(dest, "", args)
    assert x.route("", {"a": "1", "b": "2"}) == ("q", "r")
    x.unbind("q", "", {"a": "1"})
    assert x.route("", {"a": "1"}) == ("r",)
    assert x.route("", {"b": "2"}) == ("q",)


@pytest.mark.parametrize(
    "value, message",
    [
        ("bogus", 'Invalid x-match field value <<"bogus">>; '
                  "expected all, any, all-with-x, or any-with-x"),
        ("", "Invalid x-match field value <<>>; expected all, any, all-with-x, or any-with-x"),
        ("ALL", 'Invalid x-match field value <<"ALL">>; '
                "expected all, any, all-with-x, or any-with-x"),
        (1, "Invalid x-match field type byte (value 1); expected longstr"),
        (True, "Invalid x-match field type bool (value true); expected longstr"),
        (None, "Invalid x-match field type void (value undefined); expected longstr"),
    ],
)
def test_headers_invalid_x_match(value: Any, message: str) -> None:
    x = HeadersExchange("x")
    with pytest.raises(ValueError) as err:
        x.bind("q", "", {"x-match": value, "a": "1"})
    assert str(err.value) == message
    assert not x.has_bindings()


@pytest.mark.parametrize("mode", ["all", "any", "all-with-x", "any-with-x"])
def test_headers_valid_x_match(mode: str) -> None:
    assert HeadersExchange("x").bind("q", "", {"x-match": mode})


def test_other_types_ignore_x_match() -> None:
    # Only the headers exchange validates x-match.
    assert DirectExchange("x").bind("q", "k", {"x-match": "bogus"})


# ------------------------------------------------- property: bookkeeping model

ARG_CHOICES = [{}, {"a": 1}, {"a": True}, {"x-b": "1"}]
OPS = st.lists(
    st.tuples(
        st.sampled_from(["bind", "bind", "unbind", "unbind_all"]),
        st.sampled_from(["q0", "q1", "q2"]),
        st.sampled_from(["", "a", "a.b", "#", "a.*"]),
        st.integers(0, len(ARG_CHOICES) - 1),
    ),
    max_size=25,
)


def model_route(x: Exchange, live: list[tuple[str, str, int]], key: str) -> set[str]:
    if x.type == "fanout":
        return {d for d, _, _ in live}
    if x.type == "direct":
        return {d for d, k, _ in live if k == key}
    assert x.type == "topic"
    probe = TopicExchange("probe")  # each pattern checked alone
    found = set()
    for d, k, _ in live:
        probe.bind("hit", k)
        if probe.route(key, None):
            found.add(d)
        probe.unbind("hit", k)
    return found


@settings(max_examples=200, deadline=None, database=None)
@given(st.sampled_from([DirectExchange, FanoutExchange, TopicExchange]), OPS)
def test_bookkeeping_matches_model(
    cls: type[Exchange], ops: list[tuple[str, str, str, int]]
) -> None:
    x = cls("x")
    live: list[tuple[str, str, int]] = []
    for op, dest, key, arg in ops:
        binding = (dest, key, arg)
        if op == "bind":
            assert x.bind(dest, key, ARG_CHOICES[arg]) == (binding not in live)
            if binding not in live:
                live.append(binding)
        elif op == "unbind":
            assert x.unbind(dest, key, ARG_CHOICES[arg]) == (binding in live)
            if binding in live:
                live.remove(binding)
        else:
            gone = [b for b in live if b[0] == dest]
            assert x.unbind_all(dest) == len(gone)
            live = [b for b in live if b[0] != dest]
    assert list(x.bindings()) == [(d, k, ARG_CHOICES[a]) for d, k, a in live]
    assert x.has_bindings() == bool(live)
    for key in ["", "a", "a.b", "a.b.c", "b"]:
        got = x.route(key, None)
        assert len(got) == len(set(got))
        assert set(got) == model_route(x, live, key)
