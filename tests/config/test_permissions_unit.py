"""The pure permission check (RabbitMQ's access-control semantics and wording)."""

import pytest

from amqpbroker import errors
from amqpbroker.model import permissions
from amqpbroker.model.users import Permission, User


def user(**vhosts: Permission) -> User:
    return User("u", "", [], {("/" if k == "root" else k): v for k, v in vhosts.items()})


def refused(u: User, *args: str) -> str:
    with pytest.raises(errors.AccessRefused) as info:
        permissions.check(u, *args)
    assert info.value.reply_code == 403 and not info.value.hard  # closes the channel only
    return info.value.text


def test_full_permissions_allow_everything():
    u = user(root=Permission())
    for kind in ("configure", "write", "read"):
        for resource in ("exchange", "queue"):
            permissions.check(u, "/", kind, resource, "anything")


def test_exact_rabbitmq_wording():
    u = user(root=Permission("^$", "^$", "^$"))
    assert refused(u, "/", "configure", "queue", "q") == (
        "access to queue 'q' in vhost '/' refused for user 'u'")
    assert refused(u, "/", "read", "exchange", "amq.fanout") == (
        "access to exchange 'amq.fanout' in vhost '/' refused for user 'u'")


def test_default_exchange_is_checked_as_amq_default():
    u = user(root=Permission(write="^amq\\.default$"))
    permissions.check(u, "/", "write", "exchange", "")
    with_other = user(root=Permission(write="^orders$"))
    assert refused(with_other, "/", "write", "exchange", "") == (
        "access to exchange 'amq.default' in vhost '/' refused for user 'u'")


def test_patterns_match_anywhere_unless_anchored():
    u = user(root=Permission(configure="app", write="^app\\.", read="^app\\.x$"))
    permissions.check(u, "/", "configure", "queue", "my-app-queue")  # unanchored: found
    permissions.check(u, "/", "write", "queue", "app.orders")
    refused(u, "/", "write", "queue", "my.app.orders")
    permissions.check(u, "/", "read", "queue", "app.x")
    refused(u, "/", "read", "queue", "app.xy")


def test_empty_pattern_allows_nothing():
    u = user(root=Permission("", "", ""))
    for kind in ("configure", "write", "read"):
        refused(u, "/", kind, "queue", "q")
        refused(u, "/", kind, "exchange", "")  # not even the default exchange


def test_kinds_are_independent():
    u = user(root=Permission(configure="^$", write=".*", read="^$"))
    permissions.check(u, "/", "write", "exchange", "x")
    refused(u, "/", "configure", "exchange", "x")
    refused(u, "/", "read", "queue", "x")


def test_permissions_are_per_vhost():
    u = user(root=Permission("^$", "^$", "^$"), staging=Permission())
    permissions.check(u, "staging", "configure", "queue", "q")
    assert refused(u, "/", "configure", "queue", "q").endswith("in vhost '/' refused for user 'u'")
    assert refused(u, "other", "read", "queue", "q") == (
        "access to queue 'q' in vhost 'other' refused for user 'u'")


def test_server_named_queues_are_checked_by_their_generated_name():
    u = user(root=Permission(configure="^amq\\.gen-"))
    permissions.check(u, "/", "configure", "queue", "amq.gen-abc123")
    refused(u, "/", "configure", "queue", "named")


def test_allowed_is_the_boolean_form():
    u = user(root=Permission(read="^q$"))
    assert permissions.allowed(u, "/", "read", "queue", "q")
    assert not permissions.allowed(u, "/", "read", "queue", "r")
    assert not permissions.allowed(u, "nope", "read", "queue", "q")


def test_cache_remembers_grants_but_never_refusals():
    u = user(root=Permission(write="^x$"))
    cache: set = set()
    permissions.check(u, "/", "write", "exchange", "x", cache=cache)
    assert ("write", "exchange", "x") in cache
    u.permissions["/"] = Permission("^$", "^$", "^$")
    permissions.check(u, "/", "write", "exchange", "x", cache=cache)  # remembered
    refused(u, "/", "write", "exchange", "y")
    with pytest.raises(errors.AccessRefused):
        permissions.check(u, "/", "write", "exchange", "y", cache=cache)
    assert ("write", "exchange", "y") not in cache


def test_reply_text_carries_the_code_name():
    u = user(root=Permission("^$", "^$", "^$"))
    with pytest.raises(errors.AccessRefused) as info:
        permissions.check(u, "/", "read", "queue", "q")
    assert info.value.reply_text == (
        "ACCESS_REFUSED - access to queue 'q' in vhost '/' refused for user 'u'")
