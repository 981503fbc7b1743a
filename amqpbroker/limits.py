"""Connection-level protections that are not AMQP grammar (docs/security.md).

`SecurityCounters` counts what the protections refused, where the refusal happens (the
metrics endpoint exports them: RabbitMQ's `rabbitmq_auth_attempts_failed_total` and
friends). `AddressRateLimiter` is a token bucket per source address, sans-IO (the caller
passes the clock).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SecurityCounters:
    auth_attempts_succeeded: int = 0
    auth_attempts_failed: int = 0
    handshake_timeouts: int = 0
    tls_handshake_failures: int = 0
    connections_refused_max: int = 0  # over limits.max_connections
    connections_refused_rate: int = 0  # over limits.connection_rate_per_address


class AddressRateLimiter:
    """At most `rate` new connections per second from one address, with bursts of `burst`.

    Buckets of addresses idle long enough to be full again are dropped, so an attacker
    cycling through source addresses costs a bounded amount of memory (MAX_ADDRESSES).
    """

    MAX_ADDRESSES = 100_000

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # address -> (tokens, time)

    def allow(self, address: str, now: float) -> bool:
        if self.rate <= 0:
            return True
        tokens, then = self._buckets.get(address, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        if tokens < 1.0:
            self._buckets[address] = (tokens, now)
            return False
        if len(self._buckets) >= self.MAX_ADDRESSES and address not in self._buckets:
            self._prune(now)
        self._buckets[address] = (tokens - 1.0, now)
        return True

    def _prune(self, now: float) -> None:
        refill = self.burst / self.rate
        for addr, (tokens, then) in list(self._buckets.items()):
            if now - then >= refill:
                del self._buckets[addr]
        if len(self._buckets) >= self.MAX_ADDRESSES:  # all busy: forget the oldest half
            for addr in list(self._buckets)[: self.MAX_ADDRESSES // 2]:
                del self._buckets[addr]
