"""Churn counters: how many connections, channels and queues were opened and closed.

RabbitMQ's `/api/overview` shows them as `churn_rates` (totals and `_details` rates) and
`/api/nodes` as node keys; its Prometheus plugin exports them as
`rabbitmq_connections_opened_total` etc. (https://www.rabbitmq.com/docs/monitoring,
"Churn"). One `Churn` per broker core, shared by its virtual hosts; each counter is an
integer add where the event already happens:

  connection_created / _closed   a client session opened / closed (`BrokerCore.open_session`,
                                 `Session.close`; every protocol)
  channel_created / _closed      an AMQP 0-9-1 channel opened / released (any reason)
  queue_declared                 a non-passive queue.declare (RabbitMQ counts it before it
                                 knows whether the queue exists, even if it then fails)
  queue_created / _deleted       a queue came into being / was deleted (any reason:
                                 client, auto-delete, exclusive owner gone, x-expires)

Definitions replayed at startup are not churn (RabbitMQ counts no recovered queue).
"""

from __future__ import annotations

CHURN_COUNTERS = ("connection_created", "connection_closed", "channel_created",
                  "channel_closed", "queue_declared", "queue_created", "queue_deleted")


class Churn:
    __slots__ = CHURN_COUNTERS

    def __init__(self) -> None:
        for name in CHURN_COUNTERS:
            setattr(self, name, 0)

    def totals(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in CHURN_COUNTERS}
