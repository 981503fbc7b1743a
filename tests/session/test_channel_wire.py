"""Channel behaviour at the byte level: publish, confirms, returns, acks, tx, errors."""

from pamqp import commands as c

from wire import publish_frames


def _setup_queue(client, name="q", channel=1):
    client.open_channel(channel)
    client.send(channel, c.Queue.Declare(queue=name))


def test_publish_then_get(client):
    _setup_queue(client)
    client.publish(1, "", "q", b"hello")
    out = client.send(1, c.Basic.Get(queue="q", no_ack=True))
    get_ok, hdr, body = [f for _, f in out]
    assert isinstance(get_ok, c.Basic.GetOk)
    assert get_ok.message_count == 0
    assert hdr.body_size == 5
    assert body.value == b"hello"
    (_, empty), = client.send(1, c.Basic.Get(queue="q"))
    assert isinstance(empty, c.Basic.GetEmpty)


def test_body_split_over_frames_and_empty_body(client):
    _setup_queue(client)
    big = bytes(range(256)) * 1200  # 307,200 bytes > 2 frames at 131072
    client.publish(1, "", "q", big)
    client.publish(1, "", "q", b"")
    out = client.send(1, c.Basic.Get(queue="q", no_ack=True))
    assert b"".join(f.value for _, f in out if hasattr(f, "value")) == big
    out = client.send(1, c.Basic.Get(queue="q", no_ack=True))
    assert len(out) == 2  # GetOk + header, no body frame for an empty body
    assert out[1][1].body_size == 0


def test_mandatory_return_comes_before_confirm(client):
    client.open_channel(1)
    client.send(1, c.Confirm.Select())
    out = client.publish(1, "", "nowhere", b"x", mandatory=True)
    kinds = [type(f).__name__ for _, f in out]
    assert kinds == ["Return", "ContentHeader", "ContentBody", "Ack"]
    assert out[0][1].reply_code == 312 and out[0][1].reply_text == "NO_ROUTE"
    assert out[-1][1].delivery_tag == 1


def test_confirms_are_batched_with_multiple_in_order(client):
    _setup_queue(client)
    client.send(1, c.Confirm.Select())
    # One read handled in one turn gets one ack; a read split into turns (input_turn,
    # tests/session/test_input_turns.py) gets one per turn.
    client.conn.input_turn = float("inf")
    data = b"".join(publish_frames(1, "", "q", b"m%d" % i) for i in range(10_000))
    out = client.feed(data)
    acks = [f for _, f in out if isinstance(f, c.Basic.Ack)]
    assert len(acks) == 1 and acks[0].delivery_tag == 10_000 and acks[0].multiple
    # Split across several reads, tags keep rising and never repeat.
    seen = []
    for i in range(0, len(data), 65536):
        seen += [f.delivery_tag for _, f in client.feed(data[i:i + 65536])
                 if isinstance(f, c.Basic.Ack)]
    assert seen == sorted(set(seen)) and seen[-1] == 20_000


def test_unknown_delivery_tag_is_406(client):
    _setup_queue(client)
    (_, close), = client.send(1, c.Basic.Ack(delivery_tag=42))
    assert isinstance(close, c.Channel.Close)
    assert close.reply_code == 406 and "unknown delivery tag 42" in close.reply_text
    assert (close.class_id, close.method_id) == (60, 80)


def test_double_ack_is_406(client):
    _setup_queue(client)
    client.publish(1, "", "q", b"x")
    client.send(1, c.Basic.Get(queue="q"))
    assert client.send(1, c.Basic.Ack(delivery_tag=1)) == []
    (_, close), = client.send(1, c.Basic.Ack(delivery_tag=1))
    assert close.reply_code == 406


def test_closed_channel_requeues_unacked_in_order(client):
    _setup_queue(client)
    for i in range(3):
        client.publish(1, "", "q", b"%d" % i)
    for _ in range(3):
        client.send(1, c.Basic.Get(queue="q"))
    client.send(1, c.Channel.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0))
    client.open_channel(2)
    bodies = []
    for _ in range(3):
        out = client.send(2, c.Basic.Get(queue="q", no_ack=True))
        assert out[0][1].redelivered
        bodies.append(out[2][1].value)
    assert bodies == [b"0", b"1", b"2"]


def test_publish_to_missing_exchange_is_404_channel_close(client):
    client.open_channel(1)
    (_, close), = client.publish(1, "missing", "k", b"x")
    assert isinstance(close, c.Channel.Close) and close.reply_code == 404
    assert (close.class_id, close.method_id) == (60, 40)
    # The channel is closing: further frames are ignored until Close-Ok.
    assert client.publish(1, "missing", "k", b"x") == []
    assert client.send(1, c.Channel.CloseOk()) == []
    client.open_channel(1)


def test_publish_to_internal_exchange_is_403(client):
    client.open_channel(1)
    client.send(1, c.Exchange.Declare(exchange="int", exchange_type="fanout", internal=True))
    (_, close), = client.publish(1, "int", "", b"x")
    assert close.reply_code == 403


def test_message_over_max_size_is_406(client, core):
    core.settings.max_message_size = 10
    _setup_queue(client)
    out = client.publish(1, "", "q", b"x" * 11)
    assert out[0][1].reply_code == 406


def test_tx_publishes_only_on_commit_and_rollback_discards(client):
    _setup_queue(client)
    client.send(1, c.Tx.Select())
    client.publish(1, "", "q", b"a")
    (_, ok), = client.send(1, c.Queue.Declare(queue="q", passive=True))
    assert ok.message_count == 0
    client.send(1, c.Tx.Commit())
    (_, ok), = client.send(1, c.Queue.Declare(queue="q", passive=True))
    assert ok.message_count == 1
    client.publish(1, "", "q", b"b")
    client.send(1, c.Tx.Rollback())
    (_, ok), = client.send(1, c.Queue.Declare(queue="q", passive=True))
    assert ok.message_count == 1


def test_tx_and_confirm_exclude_each_other(client):
    client.open_channel(1)
    client.send(1, c.Confirm.Select())
    (_, close), = client.send(1, c.Tx.Select())
    assert close.reply_code == 406
    client.send(1, c.Channel.CloseOk())
    client.open_channel(2)
    client.send(2, c.Tx.Select())
    (_, close), = client.send(2, c.Confirm.Select())
    assert close.reply_code == 406
    client.open_channel(3)
    (_, close), = client.send(3, c.Tx.Commit())
    assert close.reply_code == 406


def test_consume_delivers_after_consume_ok_and_honours_prefetch(client):
    _setup_queue(client)
    for i in range(5):
        client.publish(1, "", "q", b"%d" % i)
    client.send(1, c.Basic.Qos(prefetch_count=2))
    out = client.send(1, c.Basic.Consume(queue="q", consumer_tag="ct"))
    kinds = [type(f).__name__ for _, f in out]
    assert kinds[0] == "ConsumeOk"
    assert kinds.count("Deliver") == 2
    out = client.send(1, c.Basic.Ack(delivery_tag=2, multiple=True))
    assert [type(f).__name__ for _, f in out].count("Deliver") == 2


def test_reject_requeue_puts_message_back_at_head(client):
    _setup_queue(client)
    client.publish(1, "", "q", b"first")
    client.publish(1, "", "q", b"second")
    client.send(1, c.Basic.Get(queue="q"))
    client.send(1, c.Basic.Reject(delivery_tag=1, requeue=True))
    out = client.send(1, c.Basic.Get(queue="q", no_ack=True))
    assert out[0][1].redelivered and out[2][1].value == b"first"


def test_queue_delete_notifies_consumer(client):
    _setup_queue(client)
    client.send(1, c.Basic.Consume(queue="q", consumer_tag="ct"))
    client.open_channel(2)
    out = client.send(2, c.Queue.Delete(queue="q"))
    kinds = {type(f).__name__ for _, f in out}
    assert kinds == {"Cancel", "DeleteOk"}


def test_redeclare_with_other_durable_is_406(client):
    _setup_queue(client)
    (_, close), = client.send(1, c.Queue.Declare(queue="q", durable=True))
    assert close.reply_code == 406
    assert "inequivalent arg 'durable'" in close.reply_text


def test_amq_prefix_is_403(client):
    client.open_channel(1)
    (_, close), = client.send(1, c.Exchange.Declare(exchange="amq.mine"))
    assert close.reply_code == 403


def test_unknown_exchange_type_is_406(client):
    client.open_channel(1)
    (_, close), = client.send(1, c.Exchange.Declare(exchange="e", exchange_type="nope"))
    assert close.reply_code == 406


def test_consumer_tag_reuse_is_530(client):
    _setup_queue(client)
    client.send(1, c.Basic.Consume(queue="q", consumer_tag="ct"))
    (_, close), = client.send(1, c.Basic.Consume(queue="q", consumer_tag="ct"))
    assert isinstance(close, c.Connection.Close) and close.reply_code == 530


def test_flow_active_false_is_not_implemented(client):
    client.open_channel(1)
    (_, ok), = client.send(1, c.Channel.Flow(active=True))
    assert ok.active
    (_, close), = client.send(1, c.Channel.Flow(active=False))
    assert close.reply_code == 540
