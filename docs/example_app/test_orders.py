"""The example application's tests: they use only the amqpbroker pytest plugin's fixtures."""

from orders import bill_pending, place_order, setup_billing


async def test_placed_orders_get_billed(amqp_url):
    setup_billing(amqp_url)          # declares the billing queue and its binding
    await place_order(amqp_url, 1, 9.5)
    await place_order(amqp_url, 2, 20.0)
    assert [o["id"] for o in bill_pending(amqp_url)] == [1, 2]


async def test_each_test_starts_with_an_empty_queue(amqp_url):
    setup_billing(amqp_url)
    assert bill_pending(amqp_url) == []


def test_fresh_broker_per_test(amqp_broker):
    setup_billing(amqp_broker.url)
    assert bill_pending(amqp_broker.url) == []
