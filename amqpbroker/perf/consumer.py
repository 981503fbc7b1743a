"""Consumer process: a minimal in-place frame reader for deliveries.

Per message it reads basic.deliver (tag, redelivered), the content header (body
size) and the first body frame's 16-byte stamp, keeps count, id checksum and a
latency histogram, and answers manual acks in one write per receive.
"""

from __future__ import annotations

import socket
import struct
import time

from pamqp import commands

from . import client, hist
from .args import Config
from .routing import Topology
from .shared import CONS_STOP, Shared, should_quit, wait_go

BUF_BYTES = 4 * 1024 * 1024
IDLE_S = 0.05
DELIVER = 0x003C003C            # class 60, method 60
HDR = client.HDR
U32 = struct.Struct(">I")
U64 = struct.Struct(">Q")
TAG = struct.Struct(">QB")
STAMP = struct.Struct("<QQ")
ACK = client.ACK


def run(cfg: Config, topo: Topology, idx: int, sh: Shared) -> None:
    conn = client.connect(cfg.host, cfg.port, cfg.user, cfg.password, cfg.vhost, cfg.frame_max)
    if cfg.prefetch:
        conn.rpc(commands.Basic.Qos(prefetch_count=cfg.prefetch), commands.Basic.QosOk)
    for i, q in enumerate(topo.consumer_queues(idx, cfg.consumers)):
        conn.rpc(commands.Basic.Consume(queue=q, consumer_tag=f"perf-c{idx}-{i}", no_ack=not cfg.manual_ack),
                 commands.Basic.ConsumeOk)
    sh.put(("ready", "consumer", idx, None))
    if not wait_go(sh):
        conn.abort()
        return
    c = _Consumer(cfg, conn, idx, sh)
    cpu0 = time.process_time()
    c.loop()
    cpu = time.process_time() - cpu0
    t_busy_end = c.t_last or time.monotonic_ns()
    conn.close()      # unacked deliveries go back to the queue: the residual check sees them
    sh.put(("result", "consumer", idx, {
        "got": c.got, "id_sum": c.id_sum, "bad": c.bad, "redelivered": c.redelivered,
        "t_last": c.t_last, "hist": hist.sparse(c.h), "lat_max_us": c.lat_max,
        "cpu_s": cpu, "cpu_total_s": time.process_time(), "aborted": c.aborted,
        "busy": cpu / max(1e-9, (max(t_busy_end, c.t_stop) - sh.t0) / 1e9),
    }))


class _Consumer:
    def __init__(self, cfg: Config, conn: client.Conn, idx: int, sh: Shared) -> None:
        self.cfg, self.conn, self.idx, self.sh = cfg, conn, idx, sh
        self.got = self.id_sum = self.bad = self.redelivered = 0
        self.t_last = self.t_stop = self.lat_max = 0
        self.h = hist.new()
        self.aborted = False
        every = cfg.multi_ack
        if cfg.prefetch:       # acking less often than the prefetch allows would stall
            every = min(every, cfg.prefetch)
        self.every = every

    def loop(self) -> None:
        cfg, sh, sock = self.cfg, self.sh, self.conn.sock
        buf = bytearray(BUF_BYTES)
        mv = memoryview(buf)
        end = len(self.conn.buf)
        buf[:end] = self.conn.buf
        self.conn.buf.clear()
        pos = 0
        size = cfg.size
        stamped = cfg.stamped
        manual = cfg.manual_ack
        multi = self.every > 1
        h, hidx = self.h, hist.index
        got = id_sum = bad = redelivered = 0
        body_left = body_size = tag = unacked = 0
        last_ts = last_i = -1
        lat_max = 0
        acks: list[int] = []
        # a blocking socket with kernel timeouts: one syscall per receive, not poll + recv
        sock.settimeout(None)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, int(IDLE_S * 1e6)))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", int(client.RPC_TIMEOUT), 0))
        clock = time.monotonic_ns
        next_check = 0
        while True:
            try:
                n = sock.recv_into(mv[end:])
            except (BlockingIOError, socket.timeout):
                n = -1
            except OSError as e:
                raise client.AMQPError(f"receive failed: {e.strerror or e}") from e
            now = clock()
            if n == 0:
                raise client.AMQPError("connection closed by the broker")
            if n < 0:                       # idle
                if unacked:
                    self._send(ACK.pack(1, 1, 13, 60, 80, tag, 1, 0xCE))
                    unacked = 0
                if now >= next_check:
                    next_check = now + 50_000_000
                    if sh.flags[CONS_STOP] or should_quit(sh):
                        self.aborted = not sh.flags[CONS_STOP]
                        break
                continue
            end += n
            last_ts = -1
            while end - pos >= 8:
                ftype, _ch, fsize = HDR.unpack_from(buf, pos)
                fe = pos + 7 + fsize
                if fe >= end:
                    break
                if ftype == 3:
                    if body_left == body_size and stamped and fsize >= 16:
                        ts, mid = STAMP.unpack_from(buf, pos + 7)
                        id_sum += mid
                        if ts != last_ts:
                            last_ts = ts
                            us = (now - ts) // 1000
                            last_i = hidx(us)
                            if us > lat_max:
                                lat_max = us
                        h[last_i] += 1
                    body_left -= fsize
                    if body_left <= 0:
                        got += 1
                        if manual:
                            if multi:
                                unacked += 1
                                if unacked >= self.every:
                                    acks.append(tag)
                                    unacked = 0
                            else:
                                acks.append(tag)
                elif ftype == 2:
                    body_size = body_left = U64.unpack_from(buf, pos + 11)[0]
                    if body_size != size:
                        bad += 1
                    if body_size == 0:
                        got += 1
                        if manual:
                            acks.append(tag)
                elif ftype == 1:
                    if U32.unpack_from(buf, pos + 7)[0] != DELIVER:
                        raise client.AMQPError(client.describe_raw(buf[pos:fe + 1]))
                    tag, bits = TAG.unpack_from(buf, pos + 12 + buf[pos + 11])
                    redelivered += bits & 1
                elif ftype != 8:
                    raise client.AMQPError(f"unexpected frame type {ftype} from broker")
                if buf[fe] != 0xCE:
                    raise client.AMQPError("bad frame end byte from broker")
                pos = fe + 1
            if pos == end:
                pos = end = 0
            elif pos > BUF_BYTES // 2 or BUF_BYTES - end < 65536:
                buf[: end - pos] = buf[pos:end]
                end -= pos
                pos = 0
            if acks:
                self._send(b"".join([ACK.pack(1, 1, 13, 60, 80, t, multi, 0xCE) for t in acks]))
                acks.clear()
            if got != self.got:
                self.got = got
                self.t_last = now
                sh.delivered[self.idx] = got
            if now >= next_check:
                next_check = now + 50_000_000
                if should_quit(sh):
                    self.aborted = True
                    break
        self.got, self.id_sum, self.bad, self.redelivered, self.lat_max = got, id_sum, bad, redelivered, lat_max
        self.t_stop = clock()
        if unacked:
            self._send(ACK.pack(1, 1, 13, 60, 80, tag, 1, 0xCE))

    def _send(self, data: bytes) -> None:
        try:
            self.conn.sock.sendall(data)
        except OSError as e:
            raise client.AMQPError(f"basic.ack failed: {e.strerror or e}") from e
