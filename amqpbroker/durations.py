"""RabbitMQ's interval syntax ("7D", "12h", "30m"...), shared by the model (x-max-age,
x-stream-offset validation) and the stream log (retention, offset by age): a leaf module
(standard library only), so neither ring imports the other."""

from __future__ import annotations

import re

_UNIT_MS = {"Y": 365 * 86_400_000, "M": 30 * 86_400_000, "D": 86_400_000, "h": 3_600_000,
            "m": 60_000, "s": 1000}
_INTERVAL = re.compile(r"([0-9]+)([YMDhms])")


def parse_interval(text: str) -> int | None:
    """Milliseconds of an x-max-age style interval ("7D", "12h"...), None if invalid."""
    m = _INTERVAL.fullmatch(text)
    if m is None or int(m.group(1)) <= 0:
        return None
    return int(m.group(1)) * _UNIT_MS[m.group(2)]
