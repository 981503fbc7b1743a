"""amqpbroker: an AMQP 0-9-1 message broker in Python.

`Broker` and `run_in_thread` (the embedding API, `amqpbroker.embed`) are loaded on first
use, so that importing a sans-IO part of the broker (`amqpbroker.protocol`, the model, the
stores) does not load asyncio and the server (issue 14's rings).
"""

from typing import Any

__version__ = "0.1.0"

__all__ = ["Broker", "run_in_thread", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("Broker", "run_in_thread"):
        from amqpbroker import embed

        return getattr(embed, name)
    raise AttributeError(f"module 'amqpbroker' has no attribute {name!r}")
