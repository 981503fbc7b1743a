"""Micro-benchmark: hot-path codecs vs pamqp (not a test; pytest does not collect it).

Run from the repository root:  python tests/protocol/bench_fastcodec.py
"""

from __future__ import annotations

import sys
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pamqp import body as pbody  # noqa: E402
from pamqp import commands, frame, header  # noqa: E402

from amqpbroker.protocol import fastcodec as fc  # noqa: E402
from amqpbroker.protocol import properties as pr  # noqa: E402

Basic = commands.Basic
FRAME_MAX = 131072


def _usec(fn: Callable[[], object], number: int = 50_000) -> float:
    """Best of five runs, in microseconds per call."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def _report(name: str, ours: float, theirs: float) -> None:
    print(f"{name:<44} {ours:8.2f} us   pamqp {theirs:8.2f} us   x{theirs / ours:5.1f}")


def bench_decode_publish() -> None:
    data = frame.marshal(Basic.Publish(0, "amq.topic", "orders.eu.created", True, False), 1)
    payload = data[7:-1]
    _report(
        "decode_publish (vs pamqp frame.unmarshal)",
        _usec(lambda: fc.decode_publish(payload)),
        _usec(lambda: frame.unmarshal(data)),
    )


def bench_decode_ack() -> None:
    data = frame.marshal(Basic.Ack(123456, True), 1)
    payload = data[7:-1]
    _report(
        "decode_ack (vs pamqp frame.unmarshal)",
        _usec(lambda: fc.decode_ack(payload)),
        _usec(lambda: frame.unmarshal(data)),
    )


def _deliver_pamqp(props: Basic.Properties, body: bytes) -> Callable[[], bytes]:
    step = FRAME_MAX - 8

    def run() -> bytes:
        parts = [
            frame.marshal(Basic.Deliver("ctag-1", 42, False, "amq.topic", "orders.eu"), 1),
            frame.marshal(header.ContentHeader(0, len(body), props), 1),
        ]
        for i in range(0, len(body), step):
            parts.append(frame.marshal(pbody.ContentBody(body[i : i + step]), 1))
        return b"".join(parts)

    return run


def bench_encode_deliver(size: int) -> None:
    props = Basic.Properties(content_type="application/json", delivery_mode=2, priority=1)
    raw = props.marshal()
    body = b"x" * size
    ours = _usec(
        lambda: fc.encode_deliver(
            1, "ctag-1", 42, False, "amq.topic", "orders.eu", raw, body, FRAME_MAX
        )
    )
    _report(f"encode_deliver {size} B body", ours, _usec(_deliver_pamqp(props, body)))


def bench_scan_properties() -> None:
    props = Basic.Properties(
        content_type="application/json", headers={"a": 1, "b": "x"}, delivery_mode=2,
        expiration="60000", message_id="m-1",
    )
    raw = props.marshal()
    _report(
        "scan_properties (vs decode_properties)",
        _usec(lambda: pr.scan_properties(raw)),
        _usec(lambda: pr.decode_properties(raw)),
    )


def main() -> None:
    print(f"Python {sys.version.split()[0]}")
    bench_decode_publish()
    bench_decode_ack()
    bench_scan_properties()
    for size in (0, 100, 4096, 1_000_000):
        bench_encode_deliver(size)


if __name__ == "__main__":
    main()
