"""The frame reader: any split of the input gives the same frames; bad frames are errors."""

import pytest
from pamqp import commands, frame

from amqpbroker import errors
from amqpbroker.protocol.frames import FrameReader


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
