"""Replication below the processes: frame bytes, change encoding, member proof, and a
follower replica fed by a real core's change stream recovering the same state."""

from __future__ import annotations

import pytest

from amqpbroker.broker.core import BrokerCore
from amqpbroker.cluster import wire
from amqpbroker.cluster.leader import ReplicationSource
from amqpbroker.cluster.replica import Replica
from amqpbroker.message import Message
from amqpbroker.settings import Settings
from amqpbroker.store.disk import DiskDefinitionStore, DiskMessageStore


def test_frames_are_cut_from_any_split_and_checked():
    data = wire.frame(1, b"Xq1") + wire.frame(2, b"F{}") + wire.frame(3, b"K")
    reader = wire.FrameReader()
    got = []
    for i in range(len(data)):  # one byte at a time
        got += reader.feed(data[i:i + 1])
    assert got == [(1, b"Xq1"), (2, b"F{}"), (3, b"K")]
    corrupt = bytearray(wire.frame(4, b"Xqueue"))
    corrupt[-1] ^= 0xFF
    with pytest.raises(wire.WireError, match="checksum"):
        wire.FrameReader().feed(bytes(corrupt))


def test_a_message_round_trips_through_the_wire():
    msg = Message("ex", "rk", b"\x00\x00", b"body", 4, True, 3, "60000")
    msg.store_id = 77
    kind, (key, sid, copy) = wire.decode(wire.encode_add("/\x00q", msg, b"body", 123))
    assert (kind, key, sid) == ("add", "/\x00q", 77)
    assert (copy.exchange, copy.routing_key, copy.properties, copy.body, copy.persistent,
            copy.priority, copy.expiration, copy.enqueued_ms) == (
        "ex", "rk", b"\x00\x00", b"body", True, 3, "60000", 123)
    assert wire.decode(wire.encode_ref(b"R", "k", 5)) == ("remove", ("k", 5))
    assert wire.decode(wire.encode_ref(b"M", "k", 5)) == ("mark_delivered", ("k", 5))
    with pytest.raises(wire.WireError):
        wire.decode(b"Z")


def test_member_proof_needs_the_secret():
    challenge = wire.nonce()
    answer = wire.proof("s3cret", b"F", challenge, "n2")
    assert wire.check_proof("s3cret", b"F", challenge, "n2", answer)
    assert not wire.check_proof("other", b"F", challenge, "n2", answer)
    assert not wire.check_proof("s3cret", b"L", challenge, "n2", answer)  # roles differ
    assert not wire.check_proof("s3cret", b"F", challenge, "n3", answer)  # names differ


def _leader(tmp_path):
    core = BrokerCore(Settings(data_dir=str(tmp_path / "leader")),
                      DiskMessageStore(tmp_path / "leader" / "messages"),
                      DiskDefinitionStore(tmp_path / "leader" / "definitions"))
    core.recover()
    async def set_isr(_: set[str]) -> bool:
        return True

    source = ReplicationSource(core, term=7, set_isr=set_isr)
    core.changes.tap(source.observe)
    return core, source


def _apply(replica: Replica, data: bytes) -> None:
    for seq, payload in wire.FrameReader().feed(data):
        kind, args = wire.decode(payload)
        replica.apply(seq, kind, args)


class _Sink:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    transport = None

    def close(self) -> None:
        pass


def test_snapshot_then_stream_gives_the_follower_the_leaders_state(tmp_path):
    from amqpbroker.cluster.leader import Link

    core, source = _leader(tmp_path)
    vhost = core.vhosts["/"]
    vhost.apply({"op": "queue.declare", "vhost": "/", "name": "q", "durable": True,
                 "exclusive": False, "auto_delete": False, "arguments": {}})
    core.changes.definition({"op": "queue.declare", "vhost": "/", "name": "q",
                             "durable": True, "exclusive": False, "auto_delete": False,
                             "arguments": {}})
    q = vhost.queues["q"]
    for i in range(5):
        q.publish(Message("", "q", b"\x00\x00", b"m%d" % i, 2, persistent=True))
    delivered = q.get()  # m0 handed out: the follower must recover it as redelivered
    assert delivered is not None

    sink = _Sink()
    link = Link("n2", sink)  # type: ignore[arg-type]
    assert source.attach(link, {"term": 0, "seq": 0}) == "snapshot"
    # after the snapshot, the live stream: one more message, one ack
    q.publish(Message("", "q", b"\x00\x00", b"m5", 2, persistent=True))
    q.settle(delivered[0])
    assert q.get() is not None  # m1 handed out after the snapshot, not acked

    replica = Replica(str(tmp_path / "follower"))
    _apply(replica, bytes(sink.data))
    assert replica.term == 7 and replica.applied == source.seq
    replica.sync()
    replica.close()

    follower = BrokerCore(Settings(data_dir=str(tmp_path / "follower")),
                          DiskMessageStore(tmp_path / "follower" / "messages"),
                          DiskDefinitionStore(tmp_path / "follower" / "definitions"))
    follower.recover()
    fq = follower.vhosts["/"].queues["q"]
    bodies = []
    while (got := fq.get()) is not None:
        bodies.append((bytes(got[0].body or follower.changes.load_body(got[0])), got[1]))
    assert bodies == [(b"m1", True), (b"m2", False), (b"m3", False), (b"m4", False),
                      (b"m5", False)]
    follower.close()
    core.close()


def test_a_follower_resumes_from_the_backlog_within_a_term(tmp_path):
    from amqpbroker.cluster.leader import Link

    core, source = _leader(tmp_path)
    for i in range(3):
        core.changes.definition({"op": "exchange.declare", "vhost": "/", "name": f"e{i}",
                                 "type": "direct", "durable": True, "auto_delete": False,
                                 "internal": False, "arguments": {}})
    sink = _Sink()
    assert source.attach(Link("n2", sink), {"term": 7, "seq": 1}) == "incremental"  # type: ignore[arg-type]
    seqs = [seq for seq, _ in wire.FrameReader().feed(bytes(sink.data))]
    assert seqs == [2, 3]
    # another term, or a position the backlog no longer holds: a snapshot
    source.backlog.popleft()
    assert source.attach(Link("n3", _Sink()), {"term": 7, "seq": 0}) == "snapshot"  # type: ignore[arg-type]
    assert source.attach(Link("n3", _Sink()), {"term": 6, "seq": 3}) == "snapshot"  # type: ignore[arg-type]
    core.close()


def test_stream_changes_reach_the_follower_with_the_same_offsets(tmp_path):
    """A stream's records, tracked offsets and retention go through the change stream: a
    follower fed by snapshot + live stream recovers the same log (offsets, timestamps,
    filter values, tracked offsets, first offset after retention)."""
    from amqpbroker.cluster.leader import Link
    from amqpbroker.model.stream import StreamQueue

    core, source = _leader(tmp_path)
    vhost = core.vhosts["/"]
    args = {"x-queue-type": "stream", "x-stream-max-segment-size-bytes": 400,
            "x-max-length-bytes": 2000}
    op = {"op": "queue.declare", "vhost": "/", "name": "s", "durable": True,
          "exclusive": False, "auto_delete": False, "arguments": args}
    vhost.apply(op)
    core.changes.definition(op)
    s = vhost.queues["s"]
    assert isinstance(s, StreamQueue)
    props = b"\x00\x00"
    for i in range(40):
        s.publish(Message("amq.direct", "s", props, b"m%d" % i, 3, persistent=True))
    assert s.log.first_offset > 0  # retention ran on a roll: shipped as a truncation
    s.store_offset("reader", 12)

    sink = _Sink()
    assert source.attach(Link("n2", sink), {"term": 0, "seq": 0}) == "snapshot"  # type: ignore[arg-type]
    for i in range(40, 60):  # live, after the snapshot
        s.publish(Message("amq.direct", "s", props, b"m%d" % i, 3, persistent=True))
    s.store_offset("reader", 45)
    s.enforce_retention()
    kinds = [wire.decode(p)[0] for _, p in wire.FrameReader().feed(bytes(sink.data))]
    assert "stream_append" in kinds and "stream_offset" in kinds
    assert "stream_truncate" in kinds  # retention while live

    replica = Replica(str(tmp_path / "follower"))
    _apply(replica, bytes(sink.data))
    replica.sync()
    replica.close()
    leader_log = s.log
    leader_log.flush()
    expected = [(r.offset, r.timestamp_ms, r.body) for r, _ in leader_log.entries()]

    follower = BrokerCore(Settings(data_dir=str(tmp_path / "follower")),
                          DiskMessageStore(tmp_path / "follower" / "messages"),
                          DiskDefinitionStore(tmp_path / "follower" / "definitions"))
    follower.recover()
    fs = follower.vhosts["/"].queues["s"]
    got = [(r.offset, r.timestamp_ms, r.body) for r, _ in fs.log.entries()]
    # the follower keeps whole segments: it may hold a little more before the leader's start
    assert got[-len(expected):] == expected and got[-1][0] == 59
    assert fs.log.first_offset <= leader_log.first_offset
    assert fs.stored_offset("reader") == 45
    follower.close()

    # a deletion is a change too
    vhost.delete_queue("s")
    assert wire.decode(wire.FrameReader().feed(bytes(sink.data))[-2][1])[0] == "stream_delete"
    core.close()
