"""The per-message figures of interop/bench_multicore.py (docs/multicore.md): TLS over
memory BIOs with trustme certificates and CRC-32 of an S3 record, at a small size. Only
the shape of the figures is checked, never their values."""

from __future__ import annotations

from . import bench_multicore


def test_tls_and_crc_figures() -> None:
    tls = bench_multicore.measure_tls(total=4 * 2**20)
    assert tls["version"] in ("TLSv1.3", "TLSv1.2")
    assert tls["encrypt_ns_per_kib"] > 0 and tls["decrypt_ns_per_kib"] > 0
    assert tls["S2_us_per_message"] > tls["S1_us_per_message"] > 0
    assert bench_multicore.measure_crc(n=1000)["crc32_ns_per_s3_record"] > 0
