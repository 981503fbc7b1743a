"""The one ordered stream of durable changes (issue 14).

The model produces changes (`model.changes.DurableChanges`); this class applies them to the
stores in exactly the order they were made, and lets observers tap the same stream
(`tap(listener)`: replication ships it to followers, the management API's events read it).
A listener is called after the change is applied, with the change's name and arguments:
("add", queue_key, msg), ("remove", queue_key, msg), ("mark_delivered", queue_key, msg),
("delete_queue", queue_key), ("definition", op), and for stream queues (their store is
`store.stream_store`): ("stream_append", queue_key, offset, timestamp_ms, exchange,
routing_key, properties, body, filter_value), ("stream_offset", queue_key, name, offset),
("stream_truncate", queue_key, first_offset) when retention (a timer, a policy, or a
segment roll during an append) moved the stream's start, ("stream_delete", queue_key).
A listener thus sees each record at the offset and timestamp the log gave it, so a copy
fed from the listener holds the same stream (cluster/replica.py).

Hot path: with no listener the message and stream methods *are* the stores' bound methods
(no extra call per message); the first `tap` swaps in wrappers that also notify.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from amqpbroker.message import Message
    from amqpbroker.store.base import DefinitionStore, MessageStore
    from amqpbroker.store.stream_store import StreamStore

Listener = Callable[..., None]
_MESSAGE_CHANGES = ("add", "remove", "mark_delivered", "delete_queue")
_STREAM_CHANGES = ("stream_append", "stream_offset", "stream_retain", "stream_delete")


class ChangeStream:
    def __init__(self, store: "MessageStore | None",
                 definitions: "DefinitionStore | None",
                 streams: "StreamStore | None" = None) -> None:
        self.store = store
        self.definitions = definitions
        self.streams = streams
        self.listeners: list[Listener] = []
        self._bind_direct()

    def _bind_direct(self) -> None:
        store = self.store
        for name in _MESSAGE_CHANGES:
            setattr(self, name, getattr(store, name) if store is not None else _ignore)
        streams = self.streams
        for name in _STREAM_CHANGES:
            setattr(self, name, getattr(streams, name) if streams is not None else _ignore)

    def tap(self, listener: Listener) -> Callable[[], None]:
        """Observe every durable change from now on; returns a function that stops it."""
        self.listeners.append(listener)
        for name in _MESSAGE_CHANGES:
            setattr(self, name, self._notifying(name))
        if self.streams is not None:
            self._bind_stream_notifying(self.streams)

        def untap() -> None:
            self.listeners.remove(listener)
            if not self.listeners:
                self._bind_direct()

        return untap

    def _notifying(self, name: str) -> Callable[..., None]:
        apply = getattr(self.store, name) if self.store is not None else _ignore
        listeners = self.listeners

        def change(*args: Any) -> None:
            apply(*args)
            for listener in listeners:
                listener(name, *args)

        return change

    def _bind_stream_notifying(self, streams: "StreamStore") -> None:
        listeners = self.listeners
        logs = streams.logs

        def notify(*change: Any) -> None:
            for listener in listeners:
                listener(*change)

        def stream_append(key: str, exchange: str, routing_key: str, properties: bytes,
                          body: bytes, filter_value: str | None = None) -> int:
            log = logs[key]
            first = log.first_offset
            offset = log.append(exchange, routing_key, properties, body, filter_value)
            if log.first_offset != first:  # the append rolled a segment: retention ran
                notify("stream_truncate", key, log.first_offset)
            notify("stream_append", key, offset, log.last_timestamp_ms, exchange,
                   routing_key, properties, body, filter_value)
            return offset

        def stream_offset(key: str, name: str, offset: int) -> None:
            streams.stream_offset(key, name, offset)
            notify("stream_offset", key, name, offset)

        def stream_retain(key: str, now: float | None = None) -> int:
            dropped = streams.stream_retain(key, now)
            if dropped:
                notify("stream_truncate", key, logs[key].first_offset)
            return dropped

        def stream_delete(key: str) -> None:
            streams.stream_delete(key)
            notify("stream_delete", key)

        self.stream_append = stream_append  # type: ignore[method-assign]
        self.stream_offset = stream_offset  # type: ignore[method-assign]
        self.stream_retain = stream_retain  # type: ignore[method-assign]
        self.stream_delete = stream_delete  # type: ignore[method-assign]

    # set per instance by _bind_direct / tap
    add: Callable[[str, "Message"], None]
    remove: Callable[[str, "Message"], None]
    mark_delivered: Callable[[str, "Message"], None]
    delete_queue: Callable[[str], None]
    stream_append: Callable[..., int]
    stream_offset: Callable[[str, str, int], None]
    stream_retain: Callable[..., int]
    stream_delete: Callable[[str], None]

    def definition(self, op: dict[str, Any]) -> None:
        if self.definitions is not None:
            self.definitions.append(op)
        for listener in self.listeners:
            listener("definition", op)

    def load_body(self, msg: "Message") -> bytes:
        assert self.store is not None
        return self.store.load_body(msg)

    def load_message(self, store_id: int) -> "Message":
        assert self.store is not None
        return self.store.load_message(store_id)

    def load_messages(self, store_ids: list[int]) -> list[Any]:
        assert self.store is not None
        return self.store.load_messages(store_ids)

    def release_body(self, msg: "Message") -> None:
        if self.store is not None:
            self.store.release_body(msg)


def _ignore(*args: Any) -> None:
    pass
