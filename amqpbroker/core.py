"""Moved: the broker core is the package `amqpbroker.broker` (issue 14). This alias keeps
`from amqpbroker.core import BrokerCore` working for existing code."""

from amqpbroker.broker.core import BrokerCore
from amqpbroker.broker.persister import Persister

__all__ = ["BrokerCore", "Persister"]
