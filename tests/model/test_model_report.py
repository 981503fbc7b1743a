"""The model's log lines (model/report.py): plain Python, connected to structlog by the core."""

from __future__ import annotations

import logging

import structlog

from amqpbroker.model.report import ModelLog


def test_without_a_sink_lines_go_to_the_standard_library(caplog) -> None:
    log = ModelLog()
    with caplog.at_level(logging.INFO, logger="amqpbroker.model"):
        log.warning("queue.expired", queue="q", vhost="/")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "queue.expired {'queue': 'q', 'vhost': '/'}")]


def test_the_broker_core_connects_it_to_its_structured_logger() -> None:
    import amqpbroker.broker.core  # noqa: F401  (connects the sink on import)
    from amqpbroker.model.report import log

    saved = structlog.get_config()
    structlog.reset_defaults()  # an earlier test may have configured a level above info
    try:
        with structlog.testing.capture_logs() as logs:
            log.info("delayed.recovered", exchange="x", messages=3)
    finally:
        structlog.configure(**saved)
    assert logs == [{"event": "delayed.recovered", "exchange": "x", "messages": 3,
                     "log_level": "info"}]
