#!/usr/bin/env python3
"""What a second core would buy: the figures behind docs/multicore.md.

    python interop/bench_multicore.py [--only tls,crc,shards] [--rounds 3] [--json FILE]

- tls: the CPU a broker would spend on TLS per message, measured with Python's `ssl` over
  memory BIOs (trustme certificates, TLS 1.3, the default cipher): only the broker's side is
  timed, decrypting what a publisher sent and encrypting what goes to a consumer, in the
  write sizes the broker uses (64 KiB). Printed as ns per KiB and per message of S1's and
  S2's wire sizes. This is the work a TLS thread (or process) could take off the loop.
- crc: zlib.crc32 of one S3 record (1 KiB body and its header) on the loop, per message.
- shards: two S1 loads (the C generator, one queue each) on one broker process, then on two
  broker processes (one load each: sharding by vhost or a process per core), alternating
  `--rounds` times; aggregate deliveries/s and broker cores. On a 2-core machine the
  generators take part of the second core, so this is a lower bound of what a second
  process buys.

Bounded: each generator run 10 s of publishing and at most 60 s in all.
"""

from __future__ import annotations

import argparse
import json
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale.common import Ours, build_c_bench  # noqa: E402

WRITE = 65536  # the broker writes (and reads) in chunks of up to this size
WIRE = {"S1": (60, 70), "S2": (1070, 1085)}  # bytes per message in (publish), out (deliver)


def tls_pair() -> tuple[ssl.SSLObject, ssl.SSLObject, list[ssl.MemoryBIO]]:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    cert.configure_cert(server_ctx)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(client_ctx)
    bios = [ssl.MemoryBIO() for _ in range(4)]  # s_in, s_out, c_in, c_out
    server = server_ctx.wrap_bio(bios[0], bios[1], server_side=True)
    client = client_ctx.wrap_bio(bios[2], bios[3], server_hostname="localhost")
    for _ in range(10):  # the handshake, by hand
        for side in (client, server):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
        bios[0].write(bios[3].read())
        bios[2].write(bios[1].read())
    return server, client, bios


def measure_tls(total: int = 256 * 2**20) -> dict[str, Any]:
    server, client, (s_in, s_out, c_in, c_out) = tls_pair()
    chunk = b"x" * WRITE
    encrypt = decrypt = 0.0
    for _ in range(total // WRITE):
        t = time.process_time()
        server.write(chunk)  # the broker encrypts a delivery batch
        wire = s_out.read()
        encrypt += time.process_time() - t
        c_in.write(wire)
        client.read(WRITE + 1024)
        client.write(chunk)  # a publisher's batch
        s_in.write(c_out.read())
        t = time.process_time()
        got = 0
        while got < WRITE:
            got += len(server.read(WRITE))  # the broker decrypts it
        decrypt += time.process_time() - t
    kib = total / 1024
    out = {"version": server.version(), "cipher": server.cipher()[0],
           "encrypt_ns_per_kib": round(encrypt / kib * 1e9), "decrypt_ns_per_kib":
           round(decrypt / kib * 1e9)}
    for name, (inb, outb) in WIRE.items():
        out[f"{name}_us_per_message"] = round(
            (decrypt / kib * inb / 1024 + encrypt / kib * outb / 1024) * 1e6, 3)
    return out


def measure_crc(n: int = 200_000) -> dict[str, Any]:
    record = b"h" * 60 + b"b" * 1024
    t = time.perf_counter()
    for _ in range(n):
        zlib.crc32(record)
    return {"crc32_ns_per_s3_record": round((time.perf_counter() - t) / n * 1e9)}


def amqpgen(gen: Path, port: int, pid: int, label: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(gen), "--host", "127.0.0.1", "--port", str(port), "--size", "16",
         "--duration", "10", "--drain", "20", "--timeout", "60", "--broker-pid", str(pid),
         "--label", label], stdout=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=90)
    return json.loads(out.strip().splitlines()[-1])


def shards_round(gen: Path, work: Path) -> dict[str, Any]:
    row: dict[str, Any] = {}
    one = Ours(work)
    one.start()
    try:
        time.sleep(1)
        runs = [amqpgen(gen, one.port, one.pid, f"one{i}") for i in range(2)]
        rs = [result(p) for p in runs]
        row["one_process_deliveries_per_s"] = round(sum(r["out_rate"] for r in rs))
        row["one_process_broker_cores"] = round(rs[0]["broker_cores"], 2)
        row["one_process_ok"] = all(r.get("status") == "OK" for r in rs)
    finally:
        one.stop()
    two = [Ours(work), Ours(work)]
    for b in two:
        b.start()
    try:
        time.sleep(1)
        runs = [amqpgen(gen, b.port, b.pid, f"two{i}") for i, b in enumerate(two)]
        rs = [result(p) for p in runs]
        row["two_processes_deliveries_per_s"] = round(sum(r["out_rate"] for r in rs))
        row["two_processes_broker_cores"] = round(sum(r["broker_cores"] for r in rs), 2)
        row["two_processes_ok"] = all(r.get("status") == "OK" for r in rs)
        row["generator_cores"] = round(sum(r["gen_cores"] for r in rs), 2)
    finally:
        for b in two:
            b.stop()
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="tls,crc,shards")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    only = set(args.only.split(","))
    out: dict[str, Any] = {}
    if "tls" in only:
        out["tls"] = measure_tls()
        print("tls", out["tls"], flush=True)
    if "crc" in only:
        out["crc"] = measure_crc()
        print("crc", out["crc"], flush=True)
    if "shards" in only:
        work = Path(tempfile.mkdtemp(prefix="multicore-"))
        gen = build_c_bench(work) / "amqpgen"
        rounds = []
        for i in range(args.rounds):
            rounds.append(shards_round(gen, work))
            print("shards", i + 1, rounds[-1], flush=True)
        out["shards"] = {"rounds": rounds, **{
            k: statistics.median(r[k] for r in rounds) for k in rounds[0]
            if isinstance(rounds[0][k], (int, float)) and not isinstance(rounds[0][k], bool)}}
        print("shards medians", {k: v for k, v in out["shards"].items() if k != "rounds"})
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
