"""The one ordered stream of durable changes (issue 14).

The model produces changes (`model.changes.DurableChanges`); this class applies them to the
stores in exactly the order they were made, and lets observers tap the same stream
(`tap(listener)`: replication ships it to followers, the management API's events read it).
A listener is called after the change is applied, with the change's name and arguments:
("add", queue_key, msg), ("remove", queue_key, msg), ("mark_delivered", queue_key, msg),
("delete_queue", queue_key), ("definition", op).

Hot path: with no listener the message methods *are* the store's bound methods (no extra
call per message); the first `tap` swaps in wrappers that also notify.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from amqpbroker.message import Message
    from amqpbroker.store.base import DefinitionStore, MessageStore

Listener = Callable[..., None]
_MESSAGE_CHANGES = ("add", "remove", "mark_delivered", "delete_queue")


class ChangeStream:
    def __init__(self, store: "MessageStore | None",
                 definitions: "DefinitionStore | None") -> None:
        self.store = store
        self.definitions = definitions
        self.listeners: list[Listener] = []
        self._bind_direct()

    def _bind_direct(self) -> None:
        store = self.store
        for name in _MESSAGE_CHANGES:
            setattr(self, name, getattr(store, name) if store is not None else _ignore)

    def tap(self, listener: Listener) -> Callable[[], None]:
        """Observe every durable change from now on; returns a function that stops it."""
        self.listeners.append(listener)
        for name in _MESSAGE_CHANGES:
            setattr(self, name, self._notifying(name))

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

    # set per instance by _bind_direct / tap
    add: Callable[[str, "Message"], None]
    remove: Callable[[str, "Message"], None]
    mark_delivered: Callable[[str, "Message"], None]
    delete_queue: Callable[[str], None]

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
