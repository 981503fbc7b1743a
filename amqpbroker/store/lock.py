"""One broker per data directory.

Two processes appending to the same segment log would corrupt it, so whatever opens a data
dir (the broker, `amqpbroker definitions import`) first takes an exclusive `flock` on
`DATA_DIR/LOCK`. The kernel drops the lock when the process dies, kill -9 included, so a
crash never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os

from amqpbroker.store.records import StoreError


class DataDirLock:
    def __init__(self, data_dir: str) -> None:
        os.makedirs(data_dir, exist_ok=True)
        self.path = os.path.join(data_dir, "LOCK")
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(self._fd)
            self._fd = None
            raise StoreError(
                f"data dir {data_dir} is in use by another amqpbroker process (pid {holder}); "
                "stop it first or choose another --data-dir") from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None
