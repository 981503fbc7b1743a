"""The model's log lines, without a logging library (issue 14: the model is plain Python).

The few things the model has to tell an operator (a dead-letter cycle dropped, a queue
expired, invalid arguments recovered, delayed messages recovered) go through `log`, which
has the structured-logging call shape (`log.warning("event.name", field=value, ...)`).
The broker core connects it to its structured logger when it is imported
(`broker/core.py`: `report.log.sink = structlog.get_logger("amqpbroker")`), so these lines
look like every other broker line; a model used alone (a model test, an offline tool)
writes them to the standard library's `logging` under "amqpbroker.model".
"""

from __future__ import annotations

import logging
from typing import Any

_fallback = logging.getLogger("amqpbroker.model")
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


class ModelLog:
    __slots__ = ("sink",)

    def __init__(self) -> None:
        self.sink: Any = None  # a structlog-style logger, set by the broker core

    def _emit(self, level: str, event: str, fields: dict[str, Any]) -> None:
        sink = self.sink
        if sink is not None:
            getattr(sink, level)(event, **fields)
        else:
            _fallback.log(_LEVELS.get(level, logging.ERROR), "%s %s", event, fields,
                          exc_info=level == "exception")

    def debug(self, event: str, **fields: Any) -> None:
        self._emit("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._emit("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit("error", event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        """Inside an `except` block: the line carries the traceback."""
        self._emit("exception", event, fields)


log = ModelLog()
