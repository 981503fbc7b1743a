"""The per-second connection tick (heartbeats, timeouts) runs TICK_SLICE connections per
loop turn: 10,000 connections in one callback stalled every other client ~20 ms a second.
Fake connections show the slicing; real ones that negotiated a 1 s heartbeat each get
their heartbeats with slices of two."""

from __future__ import annotations

import asyncio
import struct

from pamqp import commands, frame

from amqpbroker import server as server_module
from amqpbroker.embed import Broker
from amqpbroker.protocol.frames import PROTOCOL_HEADER


class FakeProtocol:
    def __init__(self, ticked: list[int], n: int) -> None:
        self.ticked, self.n = ticked, n

    def tick(self, now: float) -> None:
        self.ticked.append(self.n)


async def test_connections_are_ticked_a_slice_per_loop_turn(monkeypatch) -> None:
    monkeypatch.setattr(server_module, "TICK_SLICE", 3)
    async with Broker() as broker:
        ticked: list[int] = []
        protos = [FakeProtocol(ticked, i) for i in range(10)]
        broker.server._tick_connections(protos, 0, 0.0)
        assert ticked == [0, 1, 2]
        turns = 0
        while len(ticked) < 10 and turns < 20:
            await asyncio.sleep(0)
            turns += 1
        assert ticked == list(range(10)) and turns >= 3


async def _heartbeats(port: int, seconds: float) -> int:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(PROTOCOL_HEADER + b"".join([
        frame.marshal(commands.Connection.StartOk(client_properties={}, mechanism="PLAIN",
                                                  response="\0guest\0guest"), 0),
        frame.marshal(commands.Connection.TuneOk(channel_max=0, frame_max=131072,
                                                 heartbeat=1), 0),
        frame.marshal(commands.Connection.Open(virtual_host="/"), 0)]))
    seen = 0
    buf = b""
    deadline = asyncio.get_running_loop().time() + seconds
    try:
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            try:
                data = await asyncio.wait_for(r.read(65536), left)
            except asyncio.TimeoutError:
                break
            if not data:
                break
            buf += data
            while len(buf) >= 8:
                ftype, _, size = struct.unpack_from(">BHI", buf)
                if len(buf) < size + 8:
                    break
                seen += ftype == 8
                buf = buf[size + 8:]
            w.write(b"\x08\x00\x00\x00\x00\x00\x00\xce")  # a heartbeat: we are alive too
    finally:
        w.close()
    return seen


async def test_every_connection_gets_its_heartbeats_with_small_slices(monkeypatch) -> None:
    monkeypatch.setattr(server_module, "TICK_SLICE", 2)
    async with Broker() as broker:
        counts = await asyncio.gather(*(_heartbeats(broker.port, 3.5) for _ in range(5)))
    assert all(c >= 2 for c in counts), counts
