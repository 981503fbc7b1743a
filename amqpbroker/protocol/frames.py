"""Incremental AMQP 0-9-1 frame reader (spec 2.3.5 / 4.2.3).

pamqp has no incremental decoding (a short buffer raises), so the 7-byte frame header is
read here and a frame is handed on only once it is complete. Bytes may arrive split at any
boundary and many frames may arrive in one read. The reader never interprets payloads: it
yields (frame_type, channel, payload) and leaves meaning to the connection.

One exception, for the broker's own connections (`fuse_publishes`): a Basic.Publish whose
content header and single body frame follow it in the same read is handed on as one item,
(FRAME_PUBLISH, channel, (method payload, property bytes, body)). A publish is three frames
and nearly every read of a busy publisher holds them together; cutting and dispatching
them as one saves two thirds of the per-frame work (docs/performance.md, "Where the CPU
goes"). Anything unusual (the content split across reads or frames, another channel's
frame in between, a wrong type or size) is left to the frame-by-frame path, which gives
the errors.
"""

from __future__ import annotations

import struct

from amqpbroker.errors import FrameError

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_END = 0xCE
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
# Not a wire frame type: a Basic.Publish with its content (see the module docstring).
FRAME_PUBLISH = 0x101

_HEADER = struct.Struct(">BHI")
_KNOWN_TYPES = frozenset((FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT))
# A frame header and the first u32 of its payload (a method's class and method ids).
_HEADER_IDS = struct.Struct(">BHII")
_BASIC_PUBLISH = 0x003C0028  # class 60, method 40
# A content header frame: frame header, class-id, weight, body size (spec 4.2.6.1).
_CONTENT_HEADER = struct.Struct(">BHIHHQ")


class FrameReader:
    """Accumulates bytes and returns complete frames.

    `frame_max` is the negotiated maximum frame size (header and end octet included, spec
    4.2.3); a larger frame is a 501 FRAME_ERROR connection error, as RabbitMQ answers.
    """

    __slots__ = ("_buf", "frame_max", "fuse_publishes")

    def __init__(self, frame_max: int, fuse_publishes: bool = False) -> None:
        self._buf = bytearray()
        self.frame_max = frame_max
        self.fuse_publishes = fuse_publishes

    def feed(self, data: bytes | memoryview) -> list[tuple[int, int, bytes]]:
        # Frames are cut from the read itself when nothing is left over from the last one
        # (the common case): a slice of `bytes` is the payload, one copy. Only a partial
        # frame's bytes are kept in `_buf`, and a read that completes it is appended there.
        buf = self._buf
        if buf:
            buf += data
            src: bytes | bytearray | memoryview = buf
        else:
            src = data
        copy = type(src) is not bytes  # a bytearray's or a view's slice is not `bytes`
        frames: list[tuple[int, int, bytes]] = []
        pos = 0
        end = len(src)
        unpack_from = _HEADER.unpack_from
        limit = self.frame_max
        fuse = self.fuse_publishes
        try:
            while end - pos >= 7:
                ftype, channel, size = unpack_from(src, pos)
                if size + 8 > limit:
                    raise FrameError(f"frame size {size + 8} exceeds frame_max {limit}")
                if ftype not in _KNOWN_TYPES:
                    raise FrameError(f"unknown frame type {ftype}")
                stop = pos + 7 + size
                if stop >= end:
                    break
                if src[stop] != FRAME_END:
                    raise FrameError(f"frame end octet {src[stop]:#04x} is not 0xCE")
                if fuse and ftype == 1 and size >= 4 and _HEADER_IDS.unpack_from(
                        src, pos)[3] == _BASIC_PUBLISH:
                    fused = _cut_publish(src, pos, stop, end, channel, limit, copy)
                    if fused is not None:
                        frames.append(fused[0])
                        pos = fused[1]
                        continue
                payload = src[pos + 7 : stop]
                frames.append((ftype, channel, bytes(payload) if copy else payload))
                pos = stop + 1
        finally:
            if src is buf:
                if pos:
                    del buf[:pos]
            elif pos < end:
                buf += src[pos:]
        return frames

    @property
    def buffered(self) -> int:
        return len(self._buf)


def _cut_publish(src: bytes | bytearray | memoryview, pos: int, stop: int, end: int,
                 channel: int, limit: int, copy: bool
                 ) -> tuple[tuple[int, int, tuple[bytes, bytes, bytes]], int] | None:
    """The Basic.Publish frame at `pos` (ending at `stop`) with its content header and one
    body frame, if both follow complete and well-formed on the same channel: the fused
    item and the position after it. None leaves them to the frame-by-frame path."""
    at = stop + 1  # the content header frame
    if end - at < 19:
        return None
    htype, hchannel, hsize, class_id, _, body_size = _CONTENT_HEADER.unpack_from(src, at)
    hstop = at + 7 + hsize
    if (htype != 2 or hchannel != channel or class_id != 60 or hsize < 14
            or hsize + 8 > limit or hstop >= end or src[hstop] != FRAME_END):
        return None
    if body_size:
        at = hstop + 1  # the body frame: exactly one, holding the whole body
        if end - at < 7:
            return None
        btype, bchannel, bsize = _HEADER.unpack_from(src, at)
        nxt = at + 7 + bsize
        if (btype != 3 or bchannel != channel or bsize != body_size or bsize + 8 > limit
                or nxt >= end or src[nxt] != FRAME_END):
            return None
        body = src[at + 7 : nxt]
        nxt += 1
    else:
        body = b""
        nxt = hstop + 1
    method = src[pos + 7 : stop]
    props = src[hstop - hsize + 12 : hstop]
    if copy:
        method, props, body = bytes(method), bytes(props), bytes(body)
    return (FRAME_PUBLISH, channel, (method, props, body)), nxt  # type: ignore[return-value]
