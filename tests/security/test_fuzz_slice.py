"""A short slice of the hostile-input campaign (the long run: docs/security.md)."""

from __future__ import annotations

from amqpbroker.fuzz import campaign, oracle


def test_campaign_slice_has_no_findings(tmp_path):
    run = campaign.Campaign(str(tmp_path / "state.json"), rss_bound_mib=1024)
    state = run.step(target=sum(campaign.BATCH.values()), minutes=5)  # one of each
    assert state["findings"] == []
    assert state["by_generator"]["mutation"] == campaign.BATCH["mutation"]
    assert state["by_generator"]["grammar"] > 0 and state["by_generator"]["classified"] > 0
    assert set(state["by_class"]) == set(oracle.EXPECTED)  # every row of the table
    again = campaign.Campaign(str(tmp_path / "state.json"), rss_bound_mib=1024)
    assert again.state["sequences"] == state["sequences"]  # resumable


def test_oracle_catches_a_wrong_answer(core):
    """The oracle can fail: a valid declare is not a 'bad frame type'."""
    from pamqp import commands, frame
    import pytest

    data = frame.marshal(commands.Queue.Declare(queue="ok"), 1)
    with pytest.raises(oracle.Finding, match="expected connection close 501"):
        oracle.run(core, [data], expect="bad_frame_type")


def test_seeds_come_from_real_client_captures():
    seeds = campaign.seeds_from(campaign.load(campaign.CAPTURES))
    assert len(seeds) >= 2 and all(len(frames) > 10 for frames in seeds)


def test_regression_non_utf8_dead_letter_exchange(core):
    """Found by the campaign: a longstr x-dead-letter-exchange (or alternate-exchange)
    that is not UTF-8 crashed the permission check (UnicodeDecodeError -> 541)."""
    import struct

    from pamqp import commands

    from amqpbroker.fuzz.grammar import frame_bytes

    def declare(index: int, head: bytes, key: bytes) -> bytes:
        value = b"S" + struct.pack(">I", 2) + b"\xea\x01"
        table = bytes((len(key),)) + key + value
        return frame_bytes(1, 1, struct.pack(">I", index) + head
                           + struct.pack(">I", len(table)) + table)

    q = declare(commands.Queue.Declare.index, b"\x00\x00\x01q\x00", b"x-dead-letter-exchange")
    e = declare(commands.Exchange.Declare.index, b"\x00\x00\x01e\x06direct\x00",
                b"alternate-exchange")
    for data in (q, e):
        oracle.run(core, [data])  # raises Finding on an internal error
