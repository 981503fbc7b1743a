"""The frame reader: any split of the input gives the same frames; bad frames are errors."""

import struct

import pytest
from pamqp import commands, frame

from amqpbroker import errors
from amqpbroker.protocol.frames import ACK_GROUP, FRAME_ACK, FRAME_PUBLISH, FrameReader
from wire import publish_frames


def _stream() -> bytes:
    return b"".join([
        frame.marshal(commands.Basic.Publish(exchange="x", routing_key="k"), 1),
        frame.marshal(commands.Basic.Ack(delivery_tag=7), 2),
        b"\x08\x00\x00\x00\x00\x00\x00\xce",
    ])


def test_whole_stream_gives_three_frames():
    frames = FrameReader(131072).feed(_stream())
    assert [(t, c) for t, c, _ in frames] == [(1, 1), (1, 2), (8, 0)]


@pytest.mark.parametrize("step", [1, 2, 3, 7, 8, 13])
def test_split_at_every_boundary_gives_same_frames(step):
    data = _stream()
    expected = FrameReader(131072).feed(data)
    for cut in range(len(data) + 1):
        reader = FrameReader(131072)
        got = reader.feed(data[:cut])
        for i in range(cut, len(data), step):
            got += reader.feed(data[i:i + step])
        assert got == expected, cut
        assert reader.buffered == 0


def test_frame_larger_than_frame_max_is_frame_error():
    data = frame.marshal(commands.Basic.Publish(exchange="x" * 100, routing_key="k"), 1)
    with pytest.raises(errors.FrameError):
        FrameReader(64).feed(data)


def test_bad_frame_end_is_frame_error():
    data = bytearray(frame.marshal(commands.Basic.Ack(delivery_tag=1), 1))
    data[-1] = 0
    with pytest.raises(errors.FrameError) as exc:
        FrameReader(4096).feed(bytes(data))
    assert exc.value.reply_code == 501


def test_unknown_frame_type_is_frame_error():
    with pytest.raises(errors.FrameError):
        FrameReader(4096).feed(b"\x05\x00\x01\x00\x00\x00\x00\xce")


# -- publishes fused with their content (FrameReader(fuse_publishes=True)) ----------------

def _publish(channel: int, body: bytes, frame_max: int = 131072, **props) -> bytes:
    return publish_frames(channel, "ex", "rk", body, commands.Basic.Properties(**props),
                          frame_max=frame_max)


def _mixed_stream() -> bytes:
    return b"".join([
        _publish(1, b"hello"),
        _publish(2, b"", content_type="text/plain"),  # no body frame at all
        _publish(1, b"y" * 300, frame_max=200),  # two body frames: not fused
        frame.marshal(commands.Basic.Ack(delivery_tag=7), 2),
        _publish(3, b"z" * 40, headers={"a": 1}),
        # a heartbeat between a publish and its content header: not fused
        _METHOD,
        b"\x08\x00\x00\x00\x00\x00\x00\xce",
        _publish(1, b"w")[len(_METHOD):],
    ])


_METHOD = frame.marshal(commands.Basic.Publish(exchange="ex", routing_key="rk"), 1)


def _unfused(frames: list) -> list:
    """A fused publish back as its three frames (weight 0, one body frame)."""
    out = []
    for ftype, channel, payload in frames:
        if ftype == FRAME_PUBLISH:
            method, props, body = payload
            out.append((1, channel, method))
            out.append((2, channel, struct.pack(">HHQ", 60, 0, len(body)) + props))
            if body:
                out.append((3, channel, body))
        elif ftype == FRAME_ACK:  # acks in a row: their method frames
            out += [(1, channel, method) for method in payload]
        else:
            out.append((ftype, channel, payload))
    return out


def test_a_publish_with_its_content_in_one_read_is_one_item():
    frames = FrameReader(131072, fuse_publishes=True).feed(_mixed_stream())
    assert [(t, c) for t, c, _ in frames] == [
        (FRAME_PUBLISH, 1), (FRAME_PUBLISH, 2), (1, 1), (2, 1), (3, 1), (3, 1), (FRAME_ACK, 2),
        (FRAME_PUBLISH, 3), (1, 1), (8, 0), (2, 1), (3, 1)]
    assert frames[0][2][1:] == (b"\x00\x00", b"hello")
    assert frames[1][2][2] == b""
    assert _unfused(frames) == FrameReader(131072).feed(_mixed_stream())


@pytest.mark.parametrize("step", [1, 5, 17, 64])
def test_any_split_gives_the_same_frames_fused_or_not(step):
    data = _mixed_stream()
    expected = FrameReader(131072).feed(data)
    for cut in range(0, len(data) + 1, 3):
        reader = FrameReader(131072, fuse_publishes=True)
        got = reader.feed(data[:cut])
        for i in range(cut, len(data), step):
            got += reader.feed(memoryview(data)[i:i + step])
        assert _unfused(got) == expected, cut
        assert all(type(p) is bytes for t, _, p in got if t not in (FRAME_PUBLISH, FRAME_ACK))
        assert all(type(x) is bytes for t, _, p in got if t in (FRAME_PUBLISH, FRAME_ACK)
                   for x in p)
        assert reader.buffered == 0


def _ack(channel: int, tag: int) -> bytes:
    return frame.marshal(commands.Basic.Ack(delivery_tag=tag), channel)


def test_acks_in_a_row_on_one_channel_are_one_item():
    data = (b"".join(_ack(1, t) for t in range(1, ACK_GROUP + 3))  # one group full, then 2
            + _ack(2, 1) + _ack(1, 99)  # another channel's ack ends a group
            + _publish(1, b"p") + _ack(1, 100))  # so does any other frame
    got = FrameReader(131072, fuse_publishes=True).feed(data)
    assert [(t, c, len(p)) for t, c, p in got] == [
        (FRAME_ACK, 1, ACK_GROUP), (FRAME_ACK, 1, 2), (FRAME_ACK, 2, 1), (FRAME_ACK, 1, 1),
        (FRAME_PUBLISH, 1, 3), (FRAME_ACK, 1, 1)]
    assert _unfused(got) == FrameReader(131072).feed(data)


def test_a_frame_over_many_reads_comes_out_once_whole():
    body = bytes(range(256)) * 4096  # 1 MiB in one body frame, fed 4 KiB at a time
    data = _publish(1, body, frame_max=2 << 20) + _publish(1, b"after")
    reader = FrameReader(2 << 20, fuse_publishes=True)
    got = []
    for i in range(0, len(data), 4096):
        got += reader.feed(memoryview(data)[i:i + 4096])
    assert [t for t, _, _ in got] == [1, 2, 3, FRAME_PUBLISH]
    assert got[2][2] == body and got[3][2][2] == b"after"
    assert reader.buffered == 0

