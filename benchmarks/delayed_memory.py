"""RSS with N delayed messages pending in a durable x-delayed-message exchange (model + disk
store, no network): the timer index keeps one int per message, bodies stay on disk. Then
a restart: a fresh process recovers the data dir (the store rebuilds the timer index
alone, model/delayed_store.py) and reports its RSS.

    .venv/bin/python benchmarks/delayed_memory.py [N] [body bytes]
"""

import os
import resource
import subprocess
import sys
import tempfile
import time

from pamqp.commands import Basic

from amqpbroker.clock import ManualScheduler
from amqpbroker.core import BrokerCore
from amqpbroker.model.message import Message
from amqpbroker.protocol.properties import encode_properties
from amqpbroker.settings import Settings
from amqpbroker.store.disk import DiskDefinitionStore, DiskMessageStore


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    with tempfile.TemporaryDirectory() as d:
        store = DiskMessageStore(os.path.join(d, "m"), sync=False,
                                 memory_budget=Settings().store_memory_budget)
        core = BrokerCore(Settings(data_dir=None), store,
                          DiskDefinitionStore(os.path.join(d, "defs")),
                          scheduler=ManualScheduler())
        core.recover()
        vhost = core.vhosts["/"]
        ex = vhost.declare_exchange("dx", "x-delayed-message", durable=True,
                                    arguments={"x-delayed-type": "direct"})
        body = b"x" * size
        base = rss_mib()
        started = time.perf_counter()
        for i in range(n):
            delay = 3_600_000 + (i * 7919) % 86_400_000  # 1 h .. 25 h, shuffled
            props = encode_properties(Basic.Properties(headers={"x-delay": delay},
                                                       delivery_mode=2))
            vhost.delayed.hold(ex, Message("dx", "k", props, body, size, True), delay)
            if i % 10_000 == 9_999:
                store.sync()  # group commit; pages bodies out beyond the budget
        store.sync()
        took = time.perf_counter() - started
        print(f"pending={vhost.delayed.count(ex):,} body={size} B")
        print(f"hold rate (model + disk store, no network): {n / took:,.0f} msg/s")
        print(f"RSS before={base:.0f} MiB after={rss_mib():.0f} MiB "
              f"peak={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
        core.close()
        out = subprocess.run([sys.executable, __file__, "--recover", d], check=True,
                             stdout=subprocess.PIPE, text=True).stdout
        print(out, end="")


def recover(d: str) -> None:
    """A restart: this process only recovers the data dir."""
    base = rss_mib()
    started = time.perf_counter()
    core = BrokerCore(Settings(data_dir=None),
                      DiskMessageStore(os.path.join(d, "m"), sync=False),
                      DiskDefinitionStore(os.path.join(d, "defs")),
                      scheduler=ManualScheduler())
    core.recover()
    vhost = core.vhosts["/"]
    print(f"restart (a fresh process): {vhost.delayed.total():,} pending recovered in "
          f"{time.perf_counter() - started:.1f} s; RSS before={base:.0f} MiB "
          f"after={rss_mib():.0f} MiB "
          f"peak={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    core.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--recover"]:
        recover(sys.argv[2])
    else:
        main()
