"""Pure parts of `amqpbroker perf`: arguments, routing, histogram, verification,
confirm bookkeeping, the publish template and the delivery reader (over a socketpair)."""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import random
import socket
import struct
import threading
import time

import pytest
from pamqp import commands, frame, header
from pamqp.body import ContentBody

from amqpbroker.perf import args, client, hist, producer, report, routing, verify
from amqpbroker.perf import consumer as consumer_mod
from amqpbroker.perf import main
from amqpbroker.perf.shared import CONS_STOP, Shared


# ---------------------------------------------------------------- arguments
def test_defaults_and_uri() -> None:
    c = args.parse_args(["--duration", "10"])
    assert (c.host, c.port, c.user, c.password, c.vhost) == ("127.0.0.1", 5672, "guest", "guest", "/")
    assert (c.producers, c.consumers, c.queues, c.exchange, c.size, c.ack) == (1, 1, 1, "default", 16, "auto")
    assert c.timeout == 10 + 30 + 30          # duration + drain + 30
    c = args.parse_args(["--uri", "amqp://u%40x:p%3Aw@broker:5699/%2F", "--count", "5"])
    assert (c.host, c.port, c.user, c.password, c.vhost) == ("broker", 5699, "u@x", "p:w", "/")
    assert args.parse_uri("amqp://h")["vhost"] == "/"
    assert args.parse_uri("amqp://h/prod%2Fa")["vhost"] == "prod/a"
    assert args.parse_uri("amqp://h:1234/v")["port"] == 1234


def test_all_options_parse() -> None:
    c = args.parse_args("--producers 2 --consumers 3 --queues 4 --exchange topic --bindings 100 --size 1024 "
                        "--persistent --durable --confirm 256 --ack manual --multi-ack 10 --prefetch 100 "
                        "--duration 5 --drain 7 --rate 2000 --json --timeout 99 --broker-pid 42 --label x".split())
    assert (c.producers, c.consumers, c.queues, c.exchange, c.bindings) == (2, 3, 4, "topic", 100)
    assert c.persistent and c.durable and c.json and c.manual_ack and c.stamped
    assert (c.confirm, c.multi_ack, c.prefetch, c.drain, c.rate, c.timeout, c.broker_pid) == (256, 10, 100, 7, 2000, 99, 42)
    c = args.parse_args(["--connections", "700", "--hold", "5"])
    assert c.connections == 700 and c.timeout == 5 + 30 + 60


@pytest.mark.parametrize("argv", [
    [], ["--count", "5", "--duration", "1"], ["--duration", "1", "--queues", "0"],
    ["--duration", "1", "--exchange", "headers"], ["--duration", "1", "--producers", "0"],
    ["--duration", "1", "--prefetch", "70000"], ["--duration", "1", "--uri", "amqps://h/"],
    ["--duration", "1", "--exchange", "topic", "--bindings", "3"], ["--duration", "-1"], ["--bogus"],
])
def test_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(args.UsageError):
        args.parse_args(argv)
    assert main(argv) == 2
    assert "amqpbroker perf:" in capsys.readouterr().err


# ------------------------------------------------------------------ routing
@pytest.mark.parametrize("pattern,key,ok", [
    ("a.*.c.1", "a.b.c.1", True), ("a.*.c.1", "a.b.c.2", False), ("#.1", "a.b.c.1", True),
    ("#", "", True), ("#", "x.y", True), ("*", "", False), ("*", "x", True), ("*.b.*.1", "a.b.c.1", True),
    ("1.#.z", "a.b.c.1", False), ("a.#.#.d", "a.d", True), ("a.#.c", "a.b.b.c", True), ("a.*", "a.b.c", False),
    ("#.b.#", "b", True), ("a.b", "a.b", True), ("a.b", "a.bb", False),
])
def test_topic_match(pattern: str, key: str, ok: bool) -> None:
    assert routing.topic_match(pattern, key) is ok


def test_topologies() -> None:
    t = routing.build("topic", 4, 1000, "p")
    assert len(t.keys) == 250 and len(t.bindings) == 1000 and set(t.reach) == {3}
    assert t.bindings[:4] == [("a.*.c.0", 0), ("#.0", 1), ("*.b.*.0", 2), ("0.#.z", 3)]
    assert t.bindings[4 * 7 + 3] == ("7.#.z", (7 + 3) % 4)
    assert routing.build("fanout", 10, 0, "p").reach == [10]
    d = routing.build("default", 3, 0, "p")
    assert d.exchange == "" and d.keys == d.queues == ["p-q0", "p-q1", "p-q2"] and d.reach == [1, 1, 1]
    x = routing.build("direct", 2, 0, "p")
    assert x.exchange == "p-x" and x.bindings == [("k0", 0), ("k1", 1)] and x.reach == [1, 1]
    assert [t.consumer_queues(c, 2) for c in range(2)] == [["p-q0", "p-q2"], ["p-q1", "p-q3"]]
    assert [t.consumer_queues(c, 8)[0][-2:] for c in range(8)] == ["q0", "q1", "q2", "q3"] * 2


# ---------------------------------------------------------------- histogram
def test_histogram_buckets() -> None:
    prev = -1
    for us in list(range(0, 5000)) + [10**k + j for k in range(4, 12) for j in (0, 1, 7)]:
        i = hist.index(us)
        assert i >= prev
        prev = i
        assert abs(hist.value(i) - us) <= max(1, us / 1000)
    assert hist.index(-5) == 0 and hist.index(10**30) == hist.LENGTH - 1


def test_percentiles() -> None:
    h = hist.new()
    for us in range(1, 101):          # 1..100 us, once each
        h[hist.index(us)] += 1
    s = hist.summary(hist.merge([hist.sparse(h)]))
    assert (s["n"], s["p50"], s["p95"], s["p99"], s["max"]) == (100, 50, 95, 99, 100)
    big = hist.merge([{hist.index(5000): 99}, {hist.index(2_000_000): 1}])
    assert abs(hist.percentile(big, 0.5) - 5000) <= 5
    assert abs(hist.percentile(big, 0.999) - 2_000_000) <= 2000
    assert hist.percentile({}, 0.5) is None


# ------------------------------------------------------------- verification
def test_expected_totals_closed_form() -> None:
    rng = random.Random(7)
    for _ in range(50):
        reach = [rng.randint(0, 5) for _ in range(rng.randint(1, 9))]
        p, sent = rng.randint(0, 3), rng.randint(0, 60)
        want = (sum(reach[(s + p) % len(reach)] for s in range(sent)),
                sum(verify.message_id(p, s) * reach[(s + p) % len(reach)] for s in range(sent)))
        assert verify.expected_totals(sent, p, reach) == want


def test_problems() -> None:
    ok = verify.Totals(consumers=1, published=10, expected=30, expected_id_sum=99, delivered=30,
                       delivered_id_sum=99, residual=0)
    assert verify.problems(ok) == []
    cases = {
        "missing": dict(delivered=29), "duplicates": dict(delivered=31), "checksum": dict(delivered_id_sum=98),
        "wrong size": dict(bad_body=1), "redelivered": dict(redelivered=2), "left in the queues": dict(residual=3),
        "settle": dict(settled=False), "nothing was published": dict(published=0),
    }
    for word, change in cases.items():
        why = verify.problems(dataclasses.replace(ok, **change))
        assert why and word in " ".join(why), (word, why)
    assert verify.problems(dataclasses.replace(ok, ids_checked=False, delivered_id_sum=0)) == []
    conf = dataclasses.replace(ok, confirm=True, confirmed=8, nacked=1)
    assert len(verify.problems(conf)) == 2            # one nacked, one never confirmed
    pub_only = verify.Totals(consumers=0, published=5, expected=15, queued=15)
    assert verify.problems(pub_only) == []
    assert "queue depth 14" in verify.problems(dataclasses.replace(pub_only, queued=14))[0]
    assert verify.problems(dataclasses.replace(pub_only, queued=None))


def test_confirm_bookkeeping() -> None:
    c = producer.Confirms()
    c.settle(3, False, False)
    c.settle(1, False, False)
    assert (c.lo, c.resolved) == (1, 2)
    c.settle(5, True, False)           # covers 2, 4, 5 (3 already done)
    assert (c.lo, c.resolved, c.above) == (5, 5, set())
    c.settle(5, False, False)          # duplicate: ignored
    c.settle(8, True, True)            # 6..8 nacked
    assert (c.resolved, c.nacked) == (8, 3)


# ------------------------------------------------------ wire (no broker)
def _cfg(**kw: object) -> args.Config:
    return dataclasses.replace(args.Config(), **kw)  # type: ignore[arg-type]


def test_publish_template_decodes() -> None:
    topo = routing.build("direct", 3, 0, "t")
    tpl, starts, stamps = producer.build_template(_cfg(size=20, persistent=True), topo, 1, 131072)
    assert len(stamps) % 3 == 0 and len(starts) == len(stamps) + 1
    for slot in range(4):
        raw = bytes(tpl[starts[slot]:starts[slot + 1]])
        n1, _, pub = frame.unmarshal(raw)
        n2, _, hdr = frame.unmarshal(raw[n1:])
        _, _, body = frame.unmarshal(raw[n1 + n2:])
        assert pub.routing_key == topo.keys[(slot + 1) % 3] and pub.exchange == "t-x"
        assert hdr.body_size == 20 and hdr.properties.delivery_mode == 2 and len(body.value) == 20
        assert stamps[slot] == starts[slot] + n1 + n2 + 7
    big, at = client.encode_message("", "q", 300, False, 128)   # 120-byte body frames
    assert at > 0 and big.count(b"x") >= 300 and len(big) > 300 + 3 * 8


def _deliveries(tags: range, size: int, t: int, redeliver: int = -1) -> bytes:
    out = b""
    for tag in tags:
        out += frame.marshal(commands.Basic.Deliver("ctag", tag, tag == redeliver, "", "q"), 1)
        out += frame.marshal(header.ContentHeader(0, size, commands.Basic.Properties()), 1)
        out += frame.marshal(ContentBody(struct.pack("<QQ", t, tag) + b"x" * (size - 16)), 1)
    return out


@pytest.mark.parametrize("manual,multi", [(False, 1), (True, 1), (True, 4)])
def test_delivery_reader(manual: bool, multi: int) -> None:
    a, b = socket.socketpair()
    cfg = _cfg(size=40, ack="manual" if manual else "auto", multi_ack=multi, prefetch=100)
    sh = Shared(mp.RawArray("q", 4), mp.RawArray("q", 1), mp.RawArray("q", 1), time.monotonic_ns() + 10**10)
    conn = client.Conn(a, "test")
    sent_at = time.monotonic_ns()
    data = _deliveries(range(1, 11), 40, sent_at, redeliver=3)
    conn.buf += data[:5]                    # a partial frame left over from the setup phase

    def feed() -> None:
        for i in range(5, len(data), 37):   # frames split across reads
            b.sendall(data[i:i + 37])
            time.sleep(0.001)
        time.sleep(0.2)
        sh.flags[CONS_STOP] = 1

    th = threading.Thread(target=feed)
    th.start()
    c = consumer_mod._Consumer(cfg, conn, 0, sh)
    c.loop()
    th.join()
    assert (c.got, c.bad, c.redelivered, sh.delivered[0]) == (10, 0, 1, 10)
    assert c.id_sum == sum(range(1, 11)) and sum(c.h) == 10 and c.lat_max < 10_000_000
    b.settimeout(0.5)
    acks = b""
    try:
        while len(acks) < 21 * 10:
            acks += b.recv(4096)
    except socket.timeout:
        pass
    got = [client.ACK.unpack_from(acks, i)[5:7] for i in range(0, len(acks), 21)]
    if not manual:
        assert got == []
    elif multi == 1:
        assert got == [(t, 0) for t in range(1, 11)]
    else:
        assert got == [(4, 1), (8, 1), (10, 1)]    # the last two acked when idle
    a.close()
    b.close()


def test_table_renders() -> None:
    res = {"label": "x", "mode": "throughput", "status": "FAIL", "error": "", "problems": ["p"],
           "warnings": ["w"], "wall_s": 1.0, "published": 5, "expected": 5, "delivered": 4,
           "params": {"producers": 1, "consumers": 1, "queues": 1, "exchange": "default", "size": 16,
                      "ack": "auto", "prefetch": 0, "confirm": 0, "persistent": False, "durable": False, "rate": 0},
           "lat_us": {"n": 4, "p50": 10, "p95": 2000, "p99": 3_000_000, "max": 3_000_001}}
    text = report.render_table(res)
    assert "FAIL" in text and "problem" in text and "3.00 s" in text and "2.00 ms" in text
