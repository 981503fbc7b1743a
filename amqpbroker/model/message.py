"""Moved: the protocol-neutral `Message` lives in `amqpbroker.message` (below the model
and the store, issue 14). This alias keeps old imports working; new code imports
`amqpbroker.message`."""

from amqpbroker.message import Message

__all__ = ["Message"]
