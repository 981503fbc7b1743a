"""Producer process: pre-encoded publishes, many per socket write.

A template holds B = len(keys) * m complete messages (method, header and body
frames); message seq s lives in slot s % B, so its key is (s + producer) % len(keys).
Publishing n messages writes their 16-byte stamps ([send time ns][id], little
endian) into the slots and sends one contiguous slice of the template.
"""

from __future__ import annotations

import select
import struct
import time

from pamqp import commands

from . import client
from .args import Config
from .routing import Topology
from .shared import Shared, should_quit, wait_go
from .verify import ID_SHIFT

WRITE_BYTES = 64 * 1024         # aim for this much per socket write
TEMPLATE_BYTES = 2 * 1024 * 1024
MAX_TEMPLATE_BYTES = 256 * 1024 * 1024
STAMP = struct.Struct("<QQ")
CHECK_NS = 50_000_000           # look at stop/deadline this often


class Confirms:
    """Publisher-confirm bookkeeping for delivery tags 1..sent (acks may be multiple)."""

    def __init__(self) -> None:
        self.lo = 0                  # every tag <= lo is resolved
        self.above: set[int] = set()  # resolved tags > lo
        self.resolved = 0
        self.nacked = 0

    def settle(self, tag: int, multiple: bool, nack: bool) -> None:
        if tag <= self.lo:
            return
        if multiple:
            inside = [t for t in self.above if t <= tag]
            newly = tag - self.lo - len(inside)
            self.above.difference_update(inside)
            self.lo = tag
        elif tag in self.above:
            return
        else:
            newly = 1
            self.above.add(tag)
        while self.lo + 1 in self.above:
            self.lo += 1
            self.above.discard(self.lo)
        self.resolved += newly
        if nack:
            self.nacked += newly


def build_template(cfg: Config, topo: Topology, producer: int, frame_max: int) -> tuple[bytearray, list[int], list[int]]:
    """(template, slot start offsets [B+1], stamp offsets [B])."""
    nk = len(topo.keys)
    msgs = [client.encode_message(topo.exchange, topo.keys[(j + producer) % nk], cfg.size,
                                  cfg.persistent, frame_max) for j in range(nk)]
    cycle = sum(len(m) for m, _ in msgs)
    if cycle > MAX_TEMPLATE_BYTES:
        raise client.AMQPError(f"{nk} keys x {cfg.size} B is too large for the publish template")
    reps = max(1, min(-(-256 // nk), TEMPLATE_BYTES // cycle))
    tpl = bytearray()
    starts: list[int] = []
    stamps: list[int] = []
    for _ in range(reps):
        for m, at in msgs:
            starts.append(len(tpl))
            stamps.append(len(tpl) + at)
            tpl += m
    starts.append(len(tpl))
    return tpl, starts, stamps


def run(cfg: Config, topo: Topology, idx: int, sh: Shared) -> None:
    conn = client.connect(cfg.host, cfg.port, cfg.user, cfg.password, cfg.vhost, cfg.frame_max)
    if cfg.confirm:
        conn.rpc(commands.Confirm.Select(), commands.Confirm.SelectOk)
    tpl, starts, stamps = build_template(cfg, topo, idx, conn.frame_max)
    sh.put(("ready", "producer", idx, None))
    if not wait_go(sh):
        conn.abort()
        return
    p = _Publisher(cfg, conn, idx, sh, tpl, starts, stamps)
    cpu0 = time.process_time()
    p.publish()
    t_end = time.monotonic_ns()
    cpu = time.process_time() - cpu0
    sh.put(("result", "producer", idx, {
        "sent": p.sent, "confirmed": p.conf.resolved - p.conf.nacked, "nacked": p.conf.nacked,
        "t_end": t_end, "cpu_s": cpu, "cpu_total_s": time.process_time(),
        "busy": cpu / max(1e-9, (t_end - sh.t0) / 1e9),
        "lag_max_ns": p.lag_max, "late": p.late, "blocked": p.blocked, "aborted": p.aborted,
    }))
    # close-ok means the broker has read every publish; closing the socket before
    # that (with its reader paused by flow control) could lose the tail of the run
    conn.close(timeout=max(2.0, (sh.deadline_ns - time.monotonic_ns()) / 1e9))


class _Publisher:
    def __init__(self, cfg: Config, conn: client.Conn, idx: int, sh: Shared,
                 tpl: bytearray, starts: list[int], stamps: list[int]) -> None:
        self.cfg, self.conn, self.idx, self.sh = cfg, conn, idx, sh
        self.tpl, self.starts, self.stamps = tpl, starts, stamps
        self.mv = memoryview(tpl)
        self.slots = len(stamps)
        self.batch = max(1, WRITE_BYTES * self.slots // len(tpl))
        self.sent = 0
        self.conf = Confirms()
        self.inbuf = bytearray()
        self.lag_max = 0
        self.late = 0
        self.blocked = 0
        self.aborted = False
        self.next_check = 0

    def emit(self, n: int, t: int) -> None:
        """Send messages sent..sent+n-1 (must not wrap around the template)."""
        a = self.sent % self.slots
        if self.cfg.stamped:
            pack, tpl = STAMP.pack_into, self.tpl
            first = (self.idx << ID_SHIFT) + self.sent
            for off, mid in zip(self.stamps[a:a + n], range(first, first + n)):
                pack(tpl, off, t, mid)
        self.conn.send(self.mv[self.starts[a]:self.starts[a + n]])
        self.sent += n
        self.sh.published[self.idx] = self.sent

    def pump(self, timeout: float) -> None:
        """Handle whatever the broker sent (confirms, closes), waiting up to timeout."""
        sock = self.conn.sock
        if not select.select([sock], [], [], timeout)[0]:
            return
        try:
            data = sock.recv(262144)
        except OSError as e:
            raise client.AMQPError(f"receive failed: {e.strerror or e}") from e
        if not data:
            raise client.AMQPError("connection closed by the broker")
        buf = self.inbuf
        buf += data
        pos = 0
        while len(buf) - pos >= 8:
            ftype, _ch, size = client.HDR.unpack_from(buf, pos)
            fe = pos + 7 + size
            if fe >= len(buf):
                break
            if ftype == 1:
                cm = struct.unpack_from(">I", buf, pos + 7)[0]
                if cm in (0x003C0050, 0x003C0078):          # basic.ack / basic.nack
                    tag, bits = struct.unpack_from(">QB", buf, pos + 11)
                    self.conf.settle(tag, bool(bits & 1), cm == 0x003C0078)
                elif cm == 0x000A003C:                       # connection.blocked
                    self.blocked += 1
                elif cm != 0x000A003D:                       # connection.unblocked
                    raise client.AMQPError(client.describe_raw(buf[pos:fe + 1]))
            pos = fe + 1
        del buf[:pos]

    def quitting(self, now: int) -> bool:
        if now < self.next_check:
            return False
        self.next_check = now + CHECK_NS
        if should_quit(self.sh):
            self.aborted = True
        return self.aborted

    def publish(self) -> None:
        cfg, clock = self.cfg, time.monotonic_ns
        P = cfg.producers
        t0 = self.sh.t0
        quota = cfg.count // P + (self.idx < cfg.count % P) if cfg.count else 1 << 62
        end = t0 + int(cfg.duration * 1e9) if cfg.duration else 1 << 62
        period = 1e9 * P / cfg.rate if cfg.rate else 0.0
        offset = period * self.idx / P
        window = cfg.confirm
        next_pump = 0
        while self.sent < quota:
            now = clock()
            if now >= end or self.quitting(now):
                break
            n = min(self.batch, quota - self.sent, self.slots - self.sent % self.slots)
            if window:
                room = window - (self.sent - self.conf.resolved)
                if room <= 0:
                    self.pump(0.05)
                    continue
                n = min(n, room)
            if period:
                due = t0 + offset + self.sent * period
                if due >= end:
                    break
                if now < due:
                    if window:
                        self.pump(min(0.05, (due - now) / 1e9))
                    else:
                        time.sleep(min(0.05, (due - now) / 1e9))
                    continue
                lag = now - due
                ndue = int(lag // period) + 1
                ndue = min(ndue, int((end - due - 1) // period) + 1)
                n = min(n, ndue)
                self.lag_max = max(self.lag_max, int(lag))
                if lag > 1e6:
                    self.late += min(n, int((lag - 1e6) // period) + 1)
                now = clock()
            self.emit(n, now)
            if window or now >= next_pump:      # without confirms the broker rarely speaks
                self.pump(0)
                next_pump = now + CHECK_NS // 10
        while window and self.conf.resolved < self.sent:
            now = clock()
            if self.quitting(now):
                break
            self.pump(0.05)
