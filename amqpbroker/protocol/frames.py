"""Incremental AMQP 0-9-1 frame reader (spec 2.3.5 / 4.2.3).

pamqp has no incremental decoding (a short buffer raises), so the 7-byte frame header is
read here and a frame is handed on only once it is complete. Bytes may arrive split at any
boundary and many frames may arrive in one read. The reader never interprets payloads: it
yields (frame_type, channel, payload) and leaves meaning to the connection.
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

_HEADER = struct.Struct(">BHI")
_KNOWN_TYPES = frozenset((FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT))


class FrameReader:
    """Accumulates bytes and returns complete frames.

    `frame_max` is the negotiated maximum frame size (header and end octet included, spec
    4.2.3); a larger frame is a 501 FRAME_ERROR connection error, as RabbitMQ answers.
    """

    __slots__ = ("_buf", "frame_max")

    def __init__(self, frame_max: int) -> None:
        self._buf = bytearray()
        self.frame_max = frame_max

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
