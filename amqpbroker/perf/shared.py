"""State shared between the coordinator and its worker processes.

Workers report through their pipe as tuples ``(what, kind, index, payload)``
with what in ``ready | result | error``; the live counters ``published`` and
``delivered`` (one slot per worker) let the coordinator watch progress, decide
when deliveries are complete, and give partial counts on a timeout.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
import traceback
from collections.abc import Callable
from typing import Any

from .client import AMQPError

ORPHAN_CHECK_S = 0.5


GO, STOP, CONS_STOP, T0 = range(4)     # slots of Shared.flags


@dataclasses.dataclass
class Shared:
    """Plain shared memory and one pipe per worker: no semaphores, so nothing
    for multiprocessing's resource tracker to leak when a worker is killed."""

    flags: Any                # mp.RawArray('q', 4): go, stop, cons_stop, t0 (monotonic ns)
    published: Any            # mp.RawArray('q', producers)
    delivered: Any            # mp.RawArray('q', max(1, consumers))
    deadline_ns: int          # CLOCK_MONOTONIC ns; workers give up after it
    parent: int = 0           # coordinator pid; workers exit when orphaned
    out: Any = None           # this worker's send end of its report pipe

    @property
    def t0(self) -> int:
        return int(self.flags[T0])

    def put(self, msg: tuple[str, str, int, Any]) -> None:
        try:
            self.out.send(msg)
        except OSError:       # coordinator gone
            pass


def should_quit(sh: Shared) -> bool:
    """True when the run is aborted, past its deadline, or the coordinator died."""
    return (bool(sh.flags[STOP]) or time.monotonic_ns() > sh.deadline_ns
            or (sh.parent != 0 and os.getppid() != sh.parent))


def wait_go(sh: Shared) -> bool:
    while not sh.flags[GO]:
        if should_quit(sh):
            return False
        time.sleep(0.0005)
    return not sh.flags[STOP]


def worker_entry(kind: str, index: int, fn: Callable[..., None], *args: Any) -> None:
    """Run one worker; any failure becomes an ('error', ...) report."""
    sh: Shared = args[-1]
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the coordinator handles ^C and stops us
    try:
        fn(*args)
    except AMQPError as e:
        sh.put(("error", kind, index, f"{kind} {index}: {e}"))
    except Exception as e:  # noqa: BLE001 - a worker must always report
        where = traceback.extract_tb(e.__traceback__)[-1]
        sh.put(("error", kind, index, f"{kind} {index}: internal error: {e!r} at "
                f"{os.path.basename(where.filename)}:{where.lineno}"))
    finally:
        sh.out.close()
