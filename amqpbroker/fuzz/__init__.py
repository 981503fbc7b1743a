"""The hostile-input campaign (docs/security.md): generated and mutated frame sequences
driven through the sans-IO connection, with an oracle that checks every answer.

    python -m amqpbroker.fuzz run --state fuzz-state.json --sequences 1000000 --minutes 20
    python -m amqpbroker.fuzz capture DIR        # record real client traffic to mutate

Needs the test extras (`pip install -e '.[test]'`: hypothesis, aio-pika, pika).
"""
