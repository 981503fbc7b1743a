"""Tx.CommitOk waits for the fsync of the transaction's persistent messages (issue 15).

The group commit decides when: the commit takes a ticket for the next sync, exactly as a
publisher confirm does, and never forces an fsync of its own. The store's sync is "held"
by not running the persister's sync round until the test says so.
"""

from pamqp import commands as c

from amqpbroker.core import BrokerCore
from amqpbroker.settings import Settings
from amqpbroker.store.memory import MemoryDefinitionStore, MemoryMessageStore
from wire import WireClient

PERSISTENT = c.Basic.Properties(delivery_mode=2)


class CountingStore(MemoryMessageStore):
    needs_sync = True  # behave like the disk store: durability waits for sync()

    def __init__(self) -> None:
        super().__init__()
        self.syncs = 0

    def sync(self) -> None:
        self.syncs += 1
        super().sync()


def _client():
    store = CountingStore()
    core = BrokerCore(Settings(data_dir=None), store, MemoryDefinitionStore())
    cl = WireClient(core)
    cl.handshake()
    cl.open_channel(1)
    cl.send(1, c.Queue.Declare(queue="d", durable=True))
    cl.send(1, c.Queue.Declare(queue="t"))
    cl.send(1, c.Tx.Select())
    return core, store, cl


def _commit_oks(frames):
    return [f for _, f in frames if isinstance(f, c.Tx.CommitOk)]


def _sync_round(core):
    """What the server does: one sync job for everything dirty, then complete."""
    assert core.persister.dirty and not core.persister.running
    generation = core.persister.begin()
    core.sync_job()()
    core.persister.complete(generation)


def test_commit_ok_only_after_the_fsync_of_persistent_messages():
    core, store, cl = _client()
    cl.publish(1, "", "d", b"p1", PERSISTENT)
    out = cl.send(1, c.Tx.Commit())
    assert _commit_oks(out) == []  # the message is routed but not yet on disk
    assert store.syncs == 0 and core.persister.dirty
    _sync_round(core)
    assert store.syncs == 1
    assert len(_commit_oks(cl.drain())) == 1


def test_commits_share_one_group_commit():
    core, store, cl = _client()
    cl2 = WireClient(core)
    cl2.handshake()
    cl2.open_channel(1)
    cl2.send(1, c.Tx.Select())
    cl.publish(1, "", "d", b"a", PERSISTENT)
    cl2.publish(1, "", "d", b"b", PERSISTENT)
    assert _commit_oks(cl.send(1, c.Tx.Commit())) == []
    assert _commit_oks(cl2.send(1, c.Tx.Commit())) == []
    _sync_round(core)  # one fsync releases both commits
    assert store.syncs == 1
    assert len(_commit_oks(cl.drain())) == 1 and len(_commit_oks(cl2.drain())) == 1


def test_commit_during_a_running_sync_waits_for_the_next_one():
    core, store, cl = _client()
    cl.publish(1, "", "d", b"a", PERSISTENT)
    cl.send(1, c.Tx.Commit())
    generation = core.persister.begin()  # sync 1 starts (covers "a")
    cl.publish(1, "", "d", b"b", PERSISTENT)
    assert _commit_oks(cl.send(1, c.Tx.Commit())) == []
    core.persister.complete(generation)
    assert len(_commit_oks(cl.drain())) == 1  # the first commit only
    _sync_round(core)
    assert len(_commit_oks(cl.drain())) == 1


def test_transient_or_non_durable_commit_is_answered_at_once():
    core, store, cl = _client()
    cl.publish(1, "", "d", b"transient")
    cl.publish(1, "", "t", b"persistent-on-transient-queue", PERSISTENT)
    assert len(_commit_oks(cl.send(1, c.Tx.Commit()))) == 1
    assert not core.persister.dirty


def test_failed_sync_fails_the_commit_loudly():
    core, store, cl = _client()
    cl.publish(1, "", "d", b"p1", PERSISTENT)
    cl.send(1, c.Tx.Commit())
    core.persister.fail(core.persister.begin(), OSError(28, "No space left on device"))
    out = cl.drain()
    assert _commit_oks(out) == []
    closes = [f for _, f in out if isinstance(f, c.Connection.Close)]
    assert closes and closes[0].reply_code == 541
