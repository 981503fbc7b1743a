"""The dispatch table: pamqp method class -> handler(channel, method)."""

from amqpbroker.session import basic_methods, exchange_methods, queue_methods

HANDLERS = {
    **exchange_methods.HANDLERS,
    **queue_methods.HANDLERS,
    **basic_methods.HANDLERS,
}
