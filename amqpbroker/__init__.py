"""amqpbroker: an AMQP 0-9-1 message broker in Python."""

__version__ = "0.1.0"

from amqpbroker.embed import Broker, run_in_thread  # noqa: E402

__all__ = ["Broker", "run_in_thread", "__version__"]
