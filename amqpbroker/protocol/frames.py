"""Incremental AMQP 0-9-1 frame reader (spec 2.3.5 / 4.2.3).

pamqp has no incremental decoding (a short buffer raises), so the 7-byte frame header is
read here and a frame is handed on only once it is complete. Bytes may arrive split at any
boundary and many frames may arrive in one read. The reader never interprets payloads: it
yields (frame_type, channel, payload) and leaves meaning to the connection.

One exception, for the broker's own connections (`fuse_publishes`): a Basic.Publish whose
content header and single body frame follow it in the same read is handed on as one item,
(FRAME_PUBLISH, channel, (method payload, property bytes, body)). A publish is three
frames and nearly every read of a busy publisher holds them together; cutting and
dispatching them as one saves two thirds of the per-frame work (docs/performance.md,
"Where the CPU goes"). And Basic.Ack frames in a row on one channel are one item,
(FRAME_ACK, channel, [method payloads]), so that the channel settles them together and
its queues deliver again once (Channel.ack_frames). Anything unusual (the content split
across reads or frames, another channel's frame in between, a wrong type or size) is left
to the frame-by-frame path, which gives the errors.
"""

from __future__ import annotations

import struct
from typing import Any

from amqpbroker.errors import FrameError

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_END = 0xCE
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
# Not wire frame types: a Basic.Publish with its content, and Basic.Ack method frames in a
# row (see the module docstring).
FRAME_PUBLISH = 0x101
FRAME_ACK = 0x102
# At most this many acks in one FRAME_ACK item: the connection checks the clock between
# items (session/connection.py, input turns), and an ack may deliver a message.
ACK_GROUP = 16

_HEADER = struct.Struct(">BHI")
_KNOWN_TYPES = frozenset((FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT))
# A frame header and the first u32 of its payload (a method's class and method ids).
_HEADER_IDS = struct.Struct(">BHII")
_BASIC_PUBLISH = 0x003C0028  # class 60, method 40
_BASIC_ACK = 0x003C0050  # class 60, method 80
# A content header frame: frame header, class-id, weight, body size (spec 4.2.6.1).
_CONTENT_HEADER = struct.Struct(">BHIHHQ")


class FrameReader:
    """Accumulates bytes and returns complete frames.

    `frame_max` is the negotiated maximum frame size (header and end octet included, spec
    4.2.3); a larger frame is a 501 FRAME_ERROR connection error, as RabbitMQ answers.
    """

    __slots__ = ("_buf", "_need", "frame_max", "fuse_publishes")

    def __init__(self, frame_max: int, fuse_publishes: bool = False) -> None:
        self._buf = bytearray()
        self._need = 0  # bytes `_buf` must hold before a frame can be complete
        self.frame_max = frame_max
        self.fuse_publishes = fuse_publishes

    def feed(self, data: bytes | bytearray | memoryview) -> list[tuple[int, int, bytes]]:
        # Frames are cut from one `bytes` object, so that a payload is a slice of it: one
        # copy. A view (a large read handed over in chunks) is copied into one first: a
        # memcpy, far cheaper than making each payload `bytes` on its own. Only a partial
        # frame's bytes are kept, in `_buf`, which grows in place until the frame can be
        # complete (`_need`): a frame of many reads is not copied again on each.
        buf = self._buf
        if buf:
            buf += data
            if len(buf) < self._need:
                return []
            src = bytes(buf)
            buf.clear()
        else:
            src = data if data.__class__ is bytes else bytes(data)  # type: ignore[assignment]
        frames: list[tuple[int, int, Any]] = []
        pos = _cut_frames(src, self.frame_max, self.fuse_publishes, frames)
        if pos < len(src):
            buf += memoryview(src)[pos:]
            # A whole frame header tells how long the frame is; else its 7 bytes.
            self._need = (_HEADER.unpack_from(src, pos)[2] + 8 if len(src) - pos >= 7 else 7)
        return frames

    @property
    def buffered(self) -> int:
        return len(self._buf)


def _cut_frames(src: bytes, limit: int, fuse: bool, frames: list[tuple[int, int, Any]]) -> int:
    """Append every complete frame of `src` to `frames`, as (type, channel, payload), with
    the fused publishes and ack groups of the module docstring; return the offset of the
    first incomplete frame (len(src) if none). A frame over `limit` (frame_max), of an
    unknown type or without its end octet is a FrameError (501, spec 4.2.3)."""
    pos = 0
    end = len(src)
    unpack_from = _HEADER.unpack_from
    unpack_ids = _HEADER_IDS.unpack_from
    unpack_content = _CONTENT_HEADER.unpack_from
    acks: list[bytes] = []
    acks_at = acks_channel = -1  # the item the last ack went to, and its channel
    while end - pos >= 7:
        if end - pos >= 11:  # the method ids too, for the fused publish below
            ftype, channel, size, ids = unpack_ids(src, pos)
        else:
            ftype, channel, size = unpack_from(src, pos)
            ids = 0
        if size + 8 > limit:
            raise FrameError(f"frame size {size + 8} exceeds frame_max {limit}")
        if ftype not in _KNOWN_TYPES:
            raise FrameError(f"unknown frame type {ftype}")
        stop = pos + 7 + size
        if stop >= end:
            break
        if src[stop] != FRAME_END:
            raise FrameError(f"frame end octet {src[stop]:#04x} is not 0xCE")
        if ids == _BASIC_PUBLISH and ftype == 1 and fuse and end - stop >= 20:
            # A publish: if its content header and one body frame follow, complete and on
            # the same channel, they are one item (see the module docstring).
            htype, hchannel, hsize, class_id, _, body_size = unpack_content(src, stop + 1)
            hstop = stop + 8 + hsize
            if (htype == 2 and hchannel == channel and class_id == 60 and hsize >= 14
                    and hsize + 8 <= limit and hstop < end and src[hstop] == FRAME_END):
                if body_size:
                    btype, bchannel, bsize = (unpack_from(src, hstop + 1)
                                              if end - hstop > 7 else (0, 0, 0))
                    nxt = hstop + 8 + bsize
                    fused = (btype == 3 and bchannel == channel and bsize == body_size
                             and bsize + 8 <= limit and nxt < end and src[nxt] == FRAME_END)
                    body = src[hstop + 8 : nxt]
                else:
                    fused = True
                    body = b""
                    nxt = hstop
                if fused:
                    frames.append((FRAME_PUBLISH, channel,
                                   (src[pos + 7 : stop], src[stop + 20 : hstop], body)))
                    pos = nxt + 1
                    continue
        elif ids == _BASIC_ACK and ftype == 1 and fuse:
            # Acks in a row on one channel are one item (FRAME_ACK, channel, [payloads]).
            payload = src[pos + 7 : stop]
            pos = stop + 1
            if acks_at == len(frames) - 1 and acks_channel == channel and len(acks) < ACK_GROUP:
                acks.append(payload)
            else:
                acks = [payload]
                acks_at, acks_channel = len(frames), channel
                frames.append((FRAME_ACK, channel, acks))
            continue
        frames.append((ftype, channel, src[pos + 7 : stop]))
        pos = stop + 1
    return pos
