"""Confirms of persistent messages wait for the group commit; a failed sync nacks (issue 3/4)."""

from pamqp import commands as c

from amqpbroker.core import BrokerCore
from amqpbroker.settings import Settings
from amqpbroker.store.memory import MemoryDefinitionStore, MemoryMessageStore
from wire import WireClient

PERSISTENT = c.Basic.Properties(delivery_mode=2)


class SyncingStore(MemoryMessageStore):
    needs_sync = True  # behave like the disk store: confirms wait for sync()


def _client():
    core = BrokerCore(Settings(data_dir=None), SyncingStore(), MemoryDefinitionStore())
    cl = WireClient(core)
    cl.handshake()
    cl.open_channel(1)
    cl.send(1, c.Queue.Declare(queue="d", durable=True))
    cl.send(1, c.Queue.Declare(queue="t"))
    cl.send(1, c.Confirm.Select())
    return core, cl


def _confirms(frames):
    return [(type(f).__name__, f.delivery_tag, f.multiple) for _, f in frames
            if isinstance(f, (c.Basic.Ack, c.Basic.Nack))]


def test_persistent_confirm_waits_for_sync_and_keeps_order():
    core, cl = _client()
    assert _confirms(cl.publish(1, "", "d", b"p1", PERSISTENT)) == []
    # A transient message after it must not be confirmed before it.
    assert _confirms(cl.publish(1, "", "t", b"t2")) == []
    generation = core.persister.begin()
    assert _confirms(cl.publish(1, "", "d", b"p3", PERSISTENT)) == []  # next sync's
    core.persister.complete(generation)
    assert _confirms(cl.drain()) == [("Ack", 2, True)]
    core.persister.complete(core.persister.begin())
    assert _confirms(cl.drain()) == [("Ack", 3, False)]


def test_transient_message_to_durable_queue_is_confirmed_at_once():
    core, cl = _client()
    assert _confirms(cl.publish(1, "", "d", b"x")) == [("Ack", 1, False)]


def test_failed_sync_nacks_what_waited_for_it():
    core, cl = _client()
    cl.publish(1, "", "d", b"p1", PERSISTENT)
    cl.publish(1, "", "d", b"p2", PERSISTENT)
    generation = core.persister.begin()
    core.persister.fail(generation, OSError(28, "No space left on device"))
    assert _confirms(cl.drain()) == [("Nack", 1, False), ("Nack", 2, False)]
    # Later publishes are confirmed normally once a sync succeeds.
    cl.publish(1, "", "d", b"p3", PERSISTENT)
    core.persister.complete(core.persister.begin())
    assert _confirms(cl.drain()) == [("Ack", 3, False)]
