"""The durable topology on disk: `definitions.log`, one operation per line.

Each line is `crc32-in-8-hex-digits SP json LF`; `append` fsyncs (topology changes are
rare), `load` ignores a torn or corrupt tail, and `compact` writes a new file, fsyncs it
and renames it over the old one (then fsyncs the directory).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator
from zlib import crc32

import structlog

from amqpbroker.store.base import DefinitionStore
from amqpbroker.store.records import StoreError
from amqpbroker.store.segments import fsync_dir, oserror

log = structlog.get_logger()

_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)


class DiskDefinitionStore(DefinitionStore):
    """`definitions.log`: one op per line, `crc32-in-8-hex-digits SP json LF`."""

    FILE = "definitions.log"

    def __init__(self, directory: str | Path) -> None:
        self._dir = Path(directory)
        self._path = self._dir / self.FILE
        self._fd: int | None = None
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            existed = self._path.exists()
            if existed:
                data = self._path.read_bytes()
                good = self._valid_prefix(data)
                if good < len(data):
                    log.warning("store.definitions_torn_tail", file=str(self._path), offset=good)
                    os.truncate(self._path, good)
            self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            if not existed:
                os.fsync(self._fd)
                fsync_dir(self._dir)
        except OSError as e:
            raise oserror(f"cannot open {self._path}", e) from e

    @staticmethod
    def _encode(op: dict[str, Any]) -> bytes:
        payload = json.dumps(op, separators=(",", ":"), ensure_ascii=True).encode()
        return b"%08x %s\n" % (crc32(payload), payload)

    @staticmethod
    def _decode(line: bytes) -> dict[str, Any] | None:
        if len(line) < 10 or line[8:9] != b" ":
            return None
        try:
            if int(line[:8], 16) != crc32(line[9:]):
                return None
            op = json.loads(line[9:])
        except ValueError:
            return None
        return op if isinstance(op, dict) else None

    def _valid_prefix(self, data: bytes) -> int:
        """Length of the file without its torn last line (no LF, or a bad last line)."""
        end = len(data)
        if end and data[-1:] != b"\n":
            end = data.rfind(b"\n") + 1
        if end:
            start = data.rfind(b"\n", 0, end - 1) + 1
            if self._decode(data[start : end - 1]) is None:
                end = start
        return end

    def append(self, op: dict[str, Any]) -> None:
        line = self._encode(op)
        if self._fd is None:
            raise StoreError("definition store is closed")
        try:
            done = 0
            while done < len(line):
                done += os.write(self._fd, line[done:])
            os.fsync(self._fd)
        except OSError as e:
            raise oserror(f"cannot append to {self._path}", e) from e

    def load(self) -> list[dict[str, Any]]:
        return list(self.iter_ops())

    def iter_ops(self) -> Iterator[dict[str, Any]]:
        try:
            data = self._path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as e:
            raise oserror(f"cannot read {self._path}", e) from e
        pos, size, number = 0, len(data), 0
        while pos < size:
            end = data.find(b"\n", pos)
            last = end < 0  # no LF: the torn last line a crash may leave, expected
            if last:
                end = size
            line = data[pos:end]
            pos, number = end + 1, number + 1
            if not line:
                continue
            op = self._decode(line)
            if op is None:
                if not last:
                    log.error("store.corrupt_definition", file=str(self._path), line=number)
                continue
            yield op

    def compact(self, ops: Iterable[dict[str, Any]]) -> None:
        """Write `ops` (taken one at a time, written 1 MiB at a time) to a new file, then
        rename it over the log."""
        tmp = self._path.with_name(self.FILE + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                buf = bytearray()
                for op in ops:
                    buf += self._encode(op)
                    if len(buf) >= 1 << 20:
                        _write_all(fd, buf)
                        buf.clear()
                _write_all(fd, buf)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self._path)
            fsync_dir(self._dir)
            new = os.open(self._path, os.O_WRONLY | os.O_APPEND, 0o644)
        except OSError as e:
            raise oserror(f"cannot compact {self._path}", e) from e
        if self._fd is not None:
            os.close(self._fd)
        self._fd = new

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    done = 0
    while done < len(view):
        done += os.write(fd, view[done:])
