"""MQTT data representations (MQTT 5.0 section 1.5, 3.1.1 section 1.5).

`Reader` reads one packet's variable header and payload; every short read or invalid value
raises `MalformedPacket`, never IndexError or UnicodeDecodeError.
"""

from __future__ import annotations

import struct

from amqpbroker.mqtt.errors import MalformedPacket

MAX_VARINT = 268_435_455  # 1.5.5: four bytes of seven bits


class Reader:
    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def remaining(self) -> int:
        return self.end - self.pos

    def take(self, n: int) -> bytes:
        pos = self.pos
        if n < 0 or pos + n > self.end:
            raise MalformedPacket("packet shorter than its fields")
        self.pos = pos + n
        return self.data[pos:pos + n]

    def byte(self) -> int:
        if self.pos >= self.end:
            raise MalformedPacket("packet shorter than its fields")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def u16(self) -> int:
        return struct.unpack(">H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack(">I", self.take(4))[0]

    def varint(self) -> int:
        value = 0
        for shift in (0, 7, 14, 21):
            b = self.byte()
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
        raise MalformedPacket("variable byte integer longer than four bytes")

    def binary(self) -> bytes:
        return self.take(self.u16())

    def string(self) -> str:
        return decode_utf8(self.take(self.u16()))

    def rest(self) -> bytes:
        return self.take(self.end - self.pos)


def decode_utf8(raw: bytes) -> str:
    """1.5.4: well-formed UTF-8 without surrogates and without U+0000, or malformed."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedPacket("invalid UTF-8 string") from None
    if "\x00" in text:
        raise MalformedPacket("UTF-8 string contains U+0000")
    return text


def encode_varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    if n > MAX_VARINT:
        raise ValueError(f"{n} does not fit a variable byte integer")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_string(s: str) -> bytes:
    raw = s.encode("utf-8")
    return struct.pack(">H", len(raw)) + raw


def encode_binary(b: bytes) -> bytes:
    return struct.pack(">H", len(b)) + bytes(b)
