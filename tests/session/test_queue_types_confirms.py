"""Confirms of messages routed to quorum queues and streams wait for the group commit
whatever their delivery mode; one sync round covers the message store and every stream
log with unsynced appends (issues 10 and 11)."""

from pamqp import commands as c

from amqpbroker.core import BrokerCore
from amqpbroker.settings import Settings
from amqpbroker.store.memory import MemoryDefinitionStore, MemoryMessageStore
from wire import WireClient


class SyncingStore(MemoryMessageStore):
    needs_sync = True  # behave like the disk store: confirms wait for sync()

    def __init__(self) -> None:
        super().__init__()
        self.syncs = 0

    def sync(self) -> None:
        self.syncs += 1


def _client(tmp_path):
    core = BrokerCore(Settings(data_dir=str(tmp_path)), SyncingStore(), MemoryDefinitionStore())
    cl = WireClient(core)
    cl.handshake()
    cl.open_channel(1)
    cl.send(1, c.Queue.Declare(queue="qq", durable=True, arguments={"x-queue-type": "quorum"}))
    cl.send(1, c.Queue.Declare(queue="s", durable=True, arguments={"x-queue-type": "stream"}))
    cl.send(1, c.Queue.Declare(queue="cq", durable=True))
    cl.send(1, c.Confirm.Select())
    return core, cl


def _acks(frames):
    return [(type(f).__name__, f.delivery_tag) for _, f in frames
            if isinstance(f, (c.Basic.Ack, c.Basic.Nack))]


def _sync_round(core: BrokerCore) -> None:
    generation = core.persister.begin()
    core.sync_job()()
    core.persister.complete(generation)


def test_transient_message_to_a_quorum_queue_waits_for_the_sync(tmp_path):
    core, cl = _client(tmp_path)
    assert _acks(cl.publish(1, "", "cq", b"t")) == [("Ack", 1)]  # classic: at once
    assert _acks(cl.publish(1, "", "qq", b"t")) == []
    assert core.persister.dirty
    _sync_round(core)
    assert _acks(cl.drain()) == [("Ack", 2)]
    assert core.store.syncs == 1
    core.close()


def test_stream_confirm_waits_for_the_log_sync_in_the_same_round(tmp_path):
    core, cl = _client(tmp_path)
    stream = core.vhosts["/"].queues["s"]
    assert _acks(cl.publish(1, "", "s", b"a")) == []
    assert _acks(cl.publish(1, "", "qq", b"b")) == []
    assert stream.log.needs_sync and stream.log.committed_offset == 0
    assert core.streams.dirty_logs() == [stream.log]
    _sync_round(core)
    assert stream.log.committed_offset == 1 and not stream.log.needs_sync
    assert _acks(cl.drain()) == [("Ack", 2)]  # multiple: both at once
    assert core.streams.dirty_logs() == []
    core.close()


def test_a_failed_stream_sync_nacks(tmp_path):
    core, cl = _client(tmp_path)
    stream = core.vhosts["/"].queues["s"]
    cl.publish(1, "", "s", b"a")
    generation = core.persister.begin()
    stream.log.close()  # what a failed fsync leaves: the round fails
    core.persister.fail(generation, OSError(5, "I/O error"))
    assert _acks(cl.drain()) == [("Nack", 1)]
    core.close()
