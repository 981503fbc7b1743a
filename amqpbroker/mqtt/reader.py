"""Cut an MQTT byte stream into packets (2.1 fixed header, 1.5.5 remaining length).

    reader = PacketReader(max_packet_size)
    for first_byte, body in reader.feed(data): ...

The packet size (fixed header + remaining length) is checked against the limit as soon as
the fixed header is complete, before the body is waited for, so a peer announcing a huge
packet is refused before we buffer it (5.0 3.1.2.26: Packet Too Large). A remaining length
of more than four bytes is a Malformed Packet.
"""

from __future__ import annotations

from typing import Iterator

from amqpbroker.mqtt.errors import MalformedPacket, PacketTooLarge

MAX_PACKET_SIZE = 268_435_460  # the protocol's own ceiling (1 + 4 + 268,435,455)


class PacketReader:
    __slots__ = ("_buf", "max_packet_size")

    def __init__(self, max_packet_size: int = MAX_PACKET_SIZE) -> None:
        self._buf = bytearray()
        self.max_packet_size = max_packet_size

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> Iterator[tuple[int, bytes]]:
        """Yield every complete packet; keep the rest for the next call."""
        buf = self._buf
        buf += data
        pos = 0
        try:
            while True:
                header = _fixed_header(buf, pos)
                if header is None:
                    return
                header_len, length = header
                total = header_len + length
                if total > self.max_packet_size:
                    raise PacketTooLarge(
                        f"packet of {total} bytes exceeds the maximum of {self.max_packet_size}")
                if len(buf) - pos < total:
                    return
                first = buf[pos]
                body = bytes(buf[pos + header_len:pos + total])
                pos += total
                yield first, body
        finally:
            if pos:
                del buf[:pos]


def _fixed_header(buf: bytearray, pos: int) -> tuple[int, int] | None:
    """(header length, remaining length), or None while the header is incomplete."""
    length = 0
    end = len(buf)
    for i in range(4):
        at = pos + 1 + i
        if at >= end:
            return None
        b = buf[at]
        length |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            return 2 + i, length
    raise MalformedPacket("remaining length longer than four bytes")
