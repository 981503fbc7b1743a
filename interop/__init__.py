"""Interop tests: real AMQP clients (aio-pika, pika, amqplib) against a broker.

See interop/README.md.
"""
