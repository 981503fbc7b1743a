"""RabbitMQ's Prometheus endpoint (rabbitmq_prometheus), served by aiohttp in the broker's
event loop (docs/metrics.md):

    server = MetricsServer(admin, host, port, tls_port, ssl_context)   # metrics/app.py
    await server.start(); ...; await server.stop()

Every figure is read through the admin facade (`amqpbroker.broker.admin.Admin`,
`admin_metrics.py`) into a plain `Snapshot` (snapshot.py); `collector.py` turns it into
the text format with the official prometheus_client library; `families.py` holds
RabbitMQ's metric names, types and help texts as data.
"""
