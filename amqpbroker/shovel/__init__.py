"""Dynamic shovels (RabbitMQ's shovel plugin, https://www.rabbitmq.com/docs/shovel-dynamic):
move messages from a queue (or an exchange) on one AMQP 0-9-1 broker to an exchange or
queue on another, surviving restarts of either.

* `spec.py`   - the definition (runtime parameter of component `shovel`), validated
* `worker.py` - one running shovel: the network edge, asyncio + aiormq
* `manager.py`- starts / stops workers as parameters come and go; status for the API
"""
