"""Run one input sequence through a fresh ClientConnection and judge what came back.

The rules (docs/security.md, "Hostile input"):
- feed() never raises and no handler fails (`internal_errors == 0`, no 541 reply);
- a close carries a code RabbitMQ uses for bad input (connection: 501-506, 530, 540,
  403 on login; channel: 403-406) and, for an input of a known class, exactly the code
  and close kind of the table (`EXPECTED`);
- after connection_lost() nothing of the connection stays in the broker.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from pamqp import commands, frame

from amqpbroker.core import BrokerCore
from amqpbroker.protocol.frames import FRAME_METHOD, PROTOCOL_HEADER, FrameReader
from amqpbroker.protocol.methods import decode_method
from amqpbroker.session.connection import ClientConnection

CONNECTION_CODES = frozenset({320, 403, 501, 502, 503, 504, 505, 506, 530, 540})
CHANNEL_CODES = frozenset({311, 312, 313, 403, 404, 405, 406})

# input class -> (reply code, "connection" | "channel"); the table in docs/security.md
EXPECTED: dict[str, tuple[int, str]] = {
    "bad_frame_type": (501, "connection"),
    "oversize_frame": (501, "connection"),
    "bad_frame_end": (501, "connection"),
    "large_frame_before_tune_ok": (501, "connection"),
    "heartbeat_on_channel": (501, "connection"),
    "body_over_announced_size": (501, "connection"),
    "unknown_method": (540, "connection"),
    "truncated_arguments": (502, "connection"),
    "bad_field_type": (502, "connection"),
    "table_too_deep": (502, "connection"),
    "method_on_closed_channel": (504, "connection"),
    "channel_over_channel_max": (530, "connection"),  # one more open channel than that
    "channel_before_open": (505, "connection"),
    "body_without_header": (505, "connection"),
    "header_without_publish": (505, "connection"),
    "connection_method_out_of_state": (503, "connection"),
    "message_over_max_size": (406, "channel"),
}


def handshake_bytes(frame_max: int = 131072, channel_max: int = 2047) -> bytes:
    caps = {"capabilities": {"authentication_failure_close": True,
                             "consumer_cancel_notify": True, "publisher_confirms": True}}
    return PROTOCOL_HEADER + b"".join([
        frame.marshal(commands.Connection.StartOk(client_properties=caps, mechanism="PLAIN",
                                                  response="\0guest\0guest"), 0),
        frame.marshal(commands.Connection.TuneOk(channel_max=channel_max,
                                                 frame_max=frame_max, heartbeat=0), 0),
        frame.marshal(commands.Connection.Open(virtual_host="/"), 0),
        frame.marshal(commands.Channel.Open(), 1),
    ])


HANDSHAKE = handshake_bytes()


@dataclass
class Verdict:
    closes: list[tuple[str, int, str]] = field(default_factory=list)  # (kind, code, text)
    problem: str = ""


class Finding(AssertionError):
    """The broker answered an input wrongly (or crashed on it)."""


def run(core: BrokerCore, chunks: list[bytes], *, handshake: bool = True,
        expect: str | None = None, ticks: int = 0) -> Verdict:
    conn = ClientConnection(core, "fuzz:1", 0.0)
    out = bytearray()
    now = 0.0
    if handshake:
        conn.feed(HANDSHAKE, now)
        out += conn.data_to_send()
    for chunk in chunks:
        conn.feed(chunk, now)
        out += conn.data_to_send()
        while conn.input_waiting and not conn.closed:  # the next turns, as the server runs them
            conn.feed(b"", now)
            out += conn.data_to_send()
        if conn.closed or conn.close_reason:  # closed, or closing: the rest is discarded
            break
    for _ in range(ticks):
        now += 5.0
        conn.tick(now)
        out += conn.data_to_send()
    errors = conn.internal_errors
    conn.connection_lost()
    verdict = judge(bytes(out), handshake)
    if errors:
        verdict.problem = f"{errors} internal error(s) (unhandled exception in a handler)"
    elif conn in core.connections:
        verdict.problem = "connection still registered after connection_lost"
    elif expect is not None and not verdict.problem:
        verdict.problem = _against_table(verdict, expect)
    if verdict.problem:
        raise Finding(verdict.problem)
    return verdict


def judge(out: bytes, handshake: bool) -> Verdict:
    v = Verdict()
    if out.startswith(PROTOCOL_HEADER):
        return v  # answer to a bad protocol header (spec 4.2.2)
    reader = FrameReader(1 << 31)
    try:
        frames = reader.feed(out)
    except Exception as exc:  # our own output must always be well-formed
        v.problem = f"broker output is not valid framing: {exc}"
        return v
    for ftype, channel, payload in frames:
        if ftype != FRAME_METHOD:
            continue
        index = struct.unpack_from(">I", payload)[0]
        if index not in (0x000A0032, 0x00140028):  # Connection.Close, Channel.Close
            continue
        m = decode_method(payload)
        kind = "connection" if channel == 0 else "channel"
        v.closes.append((kind, m.reply_code, m.reply_text))
        allowed = CONNECTION_CODES if kind == "connection" else CHANNEL_CODES
        if m.reply_code not in allowed:
            v.problem = f"{kind} closed with {m.reply_code} {m.reply_text!r}"
    return v


def _against_table(v: Verdict, expect: str) -> str:
    code, kind = EXPECTED[expect]
    if not v.closes:
        return f"{expect}: expected {kind} close {code}, got no close"
    got_kind, got_code, text = v.closes[0]
    if (got_kind, got_code) != (kind, code):
        return f"{expect}: expected {kind} close {code}, got {got_kind} {got_code} {text!r}"
    return ""


def fresh_core(**settings: Any) -> BrokerCore:
    from amqpbroker.settings import Settings
    from amqpbroker.store.memory import MemoryDefinitionStore, MemoryMessageStore

    return BrokerCore(Settings(data_dir=None, **settings), MemoryMessageStore(),
                      MemoryDefinitionStore())
