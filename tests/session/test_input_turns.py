"""Input fairness: a large read is cut into frames a 64 KiB chunk at a time, handled
FRAMES_PER_CHECK frames at a time, and once one feed has taken `input_turn` seconds the
rest waits for a later turn (ClientConnection._feed_turn),
in order, nothing lost. Bytes against the sans-IO connection with a clock the test moves,
then a real socket against a running broker."""

from __future__ import annotations

import asyncio

import aio_pika
from pamqp import commands, frame

from amqpbroker.embed import Broker
from amqpbroker.session.connection import (FAST_READ_FRAMES, FRAMES_PER_CHECK, INPUT_CHUNK,
                                           METHOD_TURN_SHARE)
from wire import WireClient, publish_frames


def declares(names: list[str]) -> bytes:
    return b"".join(frame.marshal(commands.Queue.Declare(queue=n), 1) for n in names)


class SteppingClock:
    """Each reading is `step` seconds after the previous one."""

    def __init__(self, step: float) -> None:
        self.t = 0.0
        self.step = step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


def declared(out) -> list[str]:
    return [m.queue for _, m in out if isinstance(m, commands.Queue.DeclareOk)]


def test_a_large_read_past_its_turn_keeps_the_rest_for_later_turns(client: WireClient):
    client.open_channel()
    names = [f"q{i}" for i in range(10000)]
    data = declares(names)
    assert len(data) > 3 * INPUT_CHUNK
    client.conn.clock = SteppingClock(1.0)  # every check ends past the turn
    got = declared(client.feed_once(data))
    assert 0 < len(got) < len(names)
    assert client.conn.input_waiting
    turns = 1
    while client.conn.input_waiting:
        got += declared(client.feed_once(b""))
        turns += 1
    assert got == names  # every declare answered once, in order
    assert turns >= 3
    assert list(client.core.vhosts["/"].queues) == names


def test_input_arriving_while_some_is_held_goes_after_it(client: WireClient):
    client.open_channel()
    client.conn.clock = SteppingClock(1.0)
    first = [f"a{i}" for i in range(6000)]
    got = declared(client.feed_once(declares(first)))
    assert client.conn.input_waiting
    got += declared(client.feed_once(declares(["late"])))
    while client.conn.input_waiting:
        got += declared(client.feed_once(b""))
    assert got == first + ["late"]


def test_a_64_KiB_read_of_expensive_frames_is_cut_too(client: WireClient):
    client.open_channel()
    client.conn.clock = SteppingClock(1.0)
    names = [f"m{i}" for i in range(2 * FAST_READ_FRAMES)]
    assert len(declares(names)) <= INPUT_CHUNK
    got = declared(client.feed_once(declares(names)))
    assert got == names[:FRAMES_PER_CHECK]  # one check's worth, then the turn ended
    turns = 1
    while client.conn.input_waiting:
        got += declared(client.feed_once(b""))
        turns += 1
    assert got == names and turns == len(names) // FRAMES_PER_CHECK


def test_a_run_of_methods_ends_its_turn_sooner_than_a_run_of_publishes(client: WireClient):
    """Declares (each with a reply, 10-30 us) get METHOD_TURN_SHARE of the turn; publishes
    (method, header, body) the whole turn, so the message path pauses less often."""
    client.open_channel()
    client.core.vhosts["/"].declare_queue("target")
    turn = client.conn.input_turn
    step = turn * (METHOD_TURN_SHARE + 0.05)  # one reading: past the methods' share only
    client.conn.clock = SteppingClock(step)
    names = [f"d{i}" for i in range(2 * FAST_READ_FRAMES)]
    assert declared(client.feed_once(declares(names))) == names[:FRAMES_PER_CHECK]
    while client.conn.input_waiting:
        client.feed_once(b"")
    client.conn.clock = SteppingClock(step)
    # A publish whose content is in the same read is one item (FrameReader's FRAME_PUBLISH).
    count = 2 * FAST_READ_FRAMES
    data = b"".join(publish_frames(1, "", "target", b"x") for _ in range(count))
    client.feed_once(data)
    assert client.conn.input_waiting
    checks = int(1 + turn / step)  # readings until the whole turn is used
    queue = client.core.vhosts["/"].queues["target"]
    assert queue.message_count == checks * FRAMES_PER_CHECK > FRAMES_PER_CHECK
    while client.conn.input_waiting:
        client.feed_once(b"")
    assert queue.message_count == count


def test_reads_within_one_check_or_one_turn_are_handled_at_once(client: WireClient):
    client.open_channel()
    client.conn.clock = SteppingClock(1.0)
    small = [f"s{i}" for i in range(FAST_READ_FRAMES)]
    assert len(declares(small)) <= INPUT_CHUNK
    assert declared(client.feed_once(declares(small))) == small  # no clock check at all
    client.conn.clock = SteppingClock(0.0)  # time stands still: the turn never ends
    big = [f"b{i}" for i in range(6000)]
    assert declared(client.feed_once(declares(big))) == big
    assert not client.conn.input_waiting


def test_a_close_in_the_middle_discards_what_follows(client: WireClient):
    client.open_channel()
    client.conn.clock = SteppingClock(1.0)
    data = (declares([f"c{i}" for i in range(3000)])
            + frame.marshal(commands.Connection.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0), 0)
            + declares([f"after{i}" for i in range(3000)]))
    out = client.feed_once(data)
    while client.conn.input_waiting and not client.conn.closed:
        out += client.feed_once(b"")
    assert any(isinstance(m, commands.Connection.CloseOk) for _, m in out)
    assert not any(n.startswith("after") for n in client.core.vhosts["/"].queues)


async def test_a_pipelining_client_is_served_in_turns_and_others_in_between():
    """20,000 declares in one write with a 1 ms turn: the broker pauses reading that
    socket between turns, answers every declare in order, and a second client's
    round trips complete while the burst is being handled."""
    from amqpbroker.fuzz.oracle import handshake_bytes

    async with Broker(input_turn=0.001) as broker:
        reader, writer = await asyncio.open_connection("127.0.0.1", broker.port)
        names = [f"burst-{i}" for i in range(20000)]
        writer.write(handshake_bytes() + declares(names))
        other = await aio_pika.connect(broker.url)
        och = await other.channel()
        served_during = 0
        vhost = broker.core.vhosts["/"]
        while len([n for n in vhost.queues if n.startswith("burst-")]) < len(names):
            await och.declare_queue("", exclusive=True, auto_delete=True)
            served_during += 1
            await asyncio.sleep(0)
        await other.close()
        held = [p for p in broker.server.protocols if p.conn is not None and p.conn.input_waiting]
        assert not held
        got: list[str] = []
        buf = b""
        while len(got) < len(names):
            buf += await asyncio.wait_for(reader.read(1 << 20), 10)
            while len(buf) >= 7:
                size = int.from_bytes(buf[3:7], "big")
                if len(buf) < size + 8:
                    break
                _, _, m = frame.unmarshal(buf[:size + 8])
                buf = buf[size + 8:]
                if isinstance(m, commands.Queue.DeclareOk):
                    got.append(m.queue)
        assert got == names
        assert [n for n in vhost.queues if n.startswith("burst-")] == names
        assert served_during >= 1
        writer.close()
