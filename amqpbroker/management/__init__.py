"""RabbitMQ's management HTTP API, served by aiohttp in the broker's event loop.

    server = ManagementServer(admin, host, port)   # management/app.py
    await server.start(); ...; await server.stop()

Every endpoint reads and changes the broker through the admin facade
(`amqpbroker.broker.admin.Admin`); see docs/management.md.
"""
