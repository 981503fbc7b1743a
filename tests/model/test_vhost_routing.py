"""VirtualHost.route: an exchange bound to queues only hands back its own route as it is;
one bound to exchanges too is walked (exchange-to-exchange bindings, alternate exchanges).
The count of exchange destinations that picks between them must follow binds and unbinds,
whichever way a binding goes (unbind, a deleted destination exchange)."""

from __future__ import annotations

from amqpbroker.model.message import Message
from amqpbroker.model.vhost import VirtualHost


def _names(vhost: VirtualHost, exchange: str, key: str) -> list[str]:
    msg = Message(exchange, key, b"\x00\x00", b"x", 1)
    return sorted(q.name for q in vhost.route(vhost.exchange(exchange), msg))


def test_routes_follow_exchange_bindings_as_they_come_and_go() -> None:
    vhost = VirtualHost("/")
    vhost.declare_exchange("src", "topic")
    vhost.declare_exchange("mid", "fanout")
    for name in ("a", "b", "m"):
        vhost.declare_queue(name)
    vhost.bind(vhost.queues["a"], "src", "k.*")
    vhost.bind(vhost.queues["m"], "mid", "")
    src = vhost.exchange("src")
    assert src.exchange_dests == 0 and _names(vhost, "src", "k.1") == ["a"]

    mid = vhost.exchange("mid")
    vhost.bind(mid, "src", "k.#")
    vhost.bind(mid, "src", "#.1")  # a second binding to the same exchange counts once
    assert src.exchange_dests == 1
    assert _names(vhost, "src", "k.1") == ["a", "m"]
    assert _names(vhost, "src", "x.1") == ["m"]

    vhost.unbind(mid, "src", "k.#")
    assert src.exchange_dests == 1 and _names(vhost, "src", "k.2") == ["a"]
    vhost.unbind(mid, "src", "#.1")
    assert src.exchange_dests == 0 and _names(vhost, "src", "x.1") == []

    vhost.bind(mid, "src", "#")
    assert _names(vhost, "src", "k.1") == ["a", "m"]
    vhost.delete_exchange("mid")
    assert src.exchange_dests == 0 and _names(vhost, "src", "k.1") == ["a"]


def test_an_unrouted_message_still_goes_to_the_alternate_exchange() -> None:
    vhost = VirtualHost("/")
    vhost.declare_exchange("ae", "fanout")
    vhost.declare_exchange("main", "direct", arguments={"alternate-exchange": "ae"})
    for name in ("q", "lost"):
        vhost.declare_queue(name)
    vhost.bind(vhost.queues["q"], "main", "k")
    vhost.bind(vhost.queues["lost"], "ae", "")
    assert vhost.exchange("main").exchange_dests == 0
    assert _names(vhost, "main", "k") == ["q"]
    assert _names(vhost, "main", "other") == ["lost"]
