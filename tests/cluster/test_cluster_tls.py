"""The replication port over TLS (the node's `tls:` settings, amqpbroker/tls.py): members
replicate over mutual TLS, a plain-TCP peer gets no nonce, and a failover still resyncs."""

from __future__ import annotations

import asyncio
import signal

import aio_pika
import pytest
import trustme

from .harness import Cluster

pytestmark = [pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
              pytest.mark.filterwarnings("ignore::ResourceWarning")]


@pytest.fixture
def tls_cluster(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = {"cert": tmp_path / "node.pem", "key": tmp_path / "node.key", "ca": tmp_path / "ca.pem"}
    cert.cert_chain_pems[0].write_to_path(paths["cert"])
    cert.private_key_pem.write_to_path(paths["key"])
    ca.cert_pem.write_to_path(paths["ca"])
    c = Cluster(str(tmp_path / "cluster"), tls={k: str(v) for k, v in paths.items()})
    c.start()
    try:
        yield c
    finally:
        c.stop()


async def test_replication_over_mutual_tls_survives_a_failover(tls_cluster):
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, tls_cluster.wait_isr, 3, 90)  # replicating over TLS
    leader = tls_cluster.node(tls_cluster.wait_leader(30))
    # A plain-TCP peer: the TLS listener never sends it the member-proof nonce.
    reader, writer = await asyncio.open_connection("127.0.0.1", leader.repl_port)
    writer.write(b"\x00\x08intruder" + bytes(48))
    data = await asyncio.wait_for(reader.read(100), 10)
    assert data == b"" or data[0] == 0x15  # closed, or a TLS alert record
    writer.close()

    conn = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{leader.port}/")
    ch = await conn.channel(publisher_confirms=True)
    await ch.declare_queue("tls-q", durable=True)
    for i in range(20):
        await ch.default_exchange.publish(aio_pika.Message(b"%d" % i, delivery_mode=2), "tls-q")
    await conn.close()
    term = tls_cluster.leader()[1]
    leader.kill(signal.SIGKILL)
    new = tls_cluster.node(await loop.run_in_executor(None, tls_cluster.wait_leader, 30, term))
    conn = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{new.port}/")
    ch = await conn.channel()
    q = await ch.declare_queue("tls-q", durable=True, passive=True)
    assert q.declaration_result.message_count == 20
    await conn.close()
    leader.start()
    await loop.run_in_executor(None, tls_cluster.wait_isr, 3, 90)  # resynced over TLS
