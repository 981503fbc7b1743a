"""The per-address token bucket, with a clock in the arguments."""

from amqpbroker.limits import AddressRateLimiter


def test_burst_then_rate_per_address():
    lim = AddressRateLimiter(rate=2.0, burst=3)
    assert [lim.allow("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert lim.allow("b", 0.0)  # another address has its own bucket
    assert not lim.allow("a", 0.4) and lim.allow("a", 0.6)  # 2 per second refill
    assert AddressRateLimiter(0, 1).allow("a", 0.0)  # 0 = no limit


def test_memory_is_bounded_under_address_cycling():
    lim = AddressRateLimiter(rate=1.0, burst=1)
    lim.MAX_ADDRESSES = 100
    for i in range(1000):
        lim.allow(f"10.0.{i // 256}.{i % 256}", float(i) / 1000)
    assert len(lim._buckets) <= 100
