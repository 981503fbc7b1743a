"""MQTT 3.1.1 and 5.0: a second protocol translator over the broker core.

`wire.py`, `properties.py`, `packets.py`, `codec.py` and `reader.py` are the bytes layer
(standard library only); the session maps packets onto the core's operations.
"""
