"""The long run: at least 1,000,000 sequences, resumable in steps of at most N minutes.

    python -m amqpbroker.fuzz run --state fuzz-state.json --sequences 1000000 --minutes 20

Each step continues from the state file (sequences done per generator, findings, peak
RSS) and stops at the time budget or the target; run it again to continue. Batches are
seeded from (seed, batch number), so a finding names the batch that reproduces it.
Generators, in turn:
- `mutation`: real client captures mutated by `mutate` (fast; most of the volume);
- `grammar`: hypothesis sequences over the whole frame grammar (`grammar.sequences`);
- `classified`: inputs of each class of the table, checked against its exact reply.
"""

from __future__ import annotations

import json
import os
import random
import struct
import time
from typing import Any

from amqpbroker.fuzz import mutate, oracle
from amqpbroker.fuzz.capture import load

CAPTURES = os.path.join(os.path.dirname(__file__), "captures")
CORE_EVERY = 1000  # a fresh broker core after this many sequences (bounded state)
BATCH = {"mutation": 4000, "grammar": 200, "classified": 200}


def rss_mib() -> float:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def seeds_from(captures: list[bytes]) -> list[list[bytes]]:
    """Each capture as its frames after the client's Connection.Open (the handshake is
    ours), bodies cut to 2 KiB so that mutants stay small."""
    out = []
    for data in captures:
        frames, pos, opened = [], 0, False
        while pos + 7 <= len(data):
            if not opened and data[pos:pos + 4] == b"AMQP":
                pos += 8
                continue
            size = struct.unpack_from(">I", data, pos + 3)[0]
            raw = data[pos:pos + 8 + size]
            pos += 8 + size
            if not opened:
                opened = raw[7:11] == b"\x00\x0a\x00\x28"  # Connection.Open
                continue
            if raw[0] == 3 and size > 2048:
                raw = raw[:7 + 2048]  # a cut body frame: the rest "has not arrived"
            frames.append(raw)
        if frames:
            out.append(frames)
    return out


class Campaign:
    def __init__(self, state_path: str, rss_bound_mib: float) -> None:
        self.path = state_path
        self.rss_bound = rss_bound_mib
        self.state: dict[str, Any] = {
            "seed": random.randrange(2**32), "sequences": 0, "batches": 0, "steps": 0,
            "by_generator": {"mutation": 0, "grammar": 0, "classified": 0},
            "by_class": {}, "findings": [], "max_rss_mib": 0.0, "elapsed_s": 0.0,
        }
        if os.path.exists(state_path):
            with open(state_path) as f:
                self.state.update(json.load(f))
        self.seeds = seeds_from(load(CAPTURES))
        self.core = oracle.fresh_core()
        self.since_core = 0

    def save(self) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.state, f, indent=1)
        os.replace(tmp, self.path)

    def step(self, target: int, minutes: float) -> dict[str, Any]:
        import structlog

        from amqpbroker import logs

        saved = structlog.get_config()
        logs.configure("critical")  # every bad input is logged: millions of lines otherwise
        try:
            return self._step(target, minutes)
        finally:
            structlog.configure(**saved)

    def _step(self, target: int, minutes: float) -> dict[str, Any]:
        start = time.monotonic()
        base_elapsed = self.state["elapsed_s"]
        self.state["steps"] += 1
        kinds = ["mutation", "grammar", "classified"]
        while self.state["sequences"] < target and time.monotonic() - start < minutes * 60:
            batch = self.state["batches"]
            kind = kinds[batch % 3]
            try:
                n = getattr(self, "_" + kind)(batch)
            except Exception as exc:  # the generator itself failed: note it, go on
                self._finding(kind, batch, f"generator error {type(exc).__name__}: {exc}"[:300],
                              b"")
                n = 0
            self.state["batches"] += 1
            self.state["sequences"] += n
            self.state["by_generator"][kind] += n
            rss = rss_mib()
            self.state["max_rss_mib"] = max(self.state["max_rss_mib"], round(rss, 1))
            if rss > self.rss_bound:
                self._finding(kind, batch, f"RSS {rss:.0f} MiB over the bound", b"")
            self.state["elapsed_s"] = round(base_elapsed + time.monotonic() - start, 1)
            self.save()
        return self.state

    # -- generators ---------------------------------------------------------------------------
    def _run(self, kind: str, batch: int, chunks: list[bytes], **kw: Any) -> None:
        self.since_core += 1
        if self.since_core >= CORE_EVERY:
            self.core = oracle.fresh_core()
            self.since_core = 0
        try:
            oracle.run(self.core, chunks, **kw)
        except oracle.Finding as exc:
            self._finding(kind, batch, str(exc), b"".join(chunks))
        except Exception as exc:  # raised out of feed(): the worst kind of finding
            self._finding(kind, batch, f"unhandled {type(exc).__name__}: {exc}",
                          b"".join(chunks))

    def _finding(self, kind: str, batch: int, what: str, data: bytes) -> None:
        findings = self.state["findings"]
        if len(findings) < 200:
            findings.append({"generator": kind, "batch": batch, "problem": what[:300],
                             "input_hex": data[:2048].hex()})

    def _mutation(self, batch: int) -> int:
        rng = random.Random(f"{self.state['seed']}:{batch}")
        flat = [b"".join(frames) for frames in self.seeds]
        for _ in range(BATCH["mutation"]):
            frames = rng.choice(self.seeds)
            i = rng.randrange(len(frames))
            seed = b"".join(frames[i:i + rng.randint(1, 16)])
            data = mutate.mutate(rng, seed, flat)
            self._run("mutation", batch, mutate.chunks(rng, data), ticks=rng.choice((0, 0, 1)))
        return BATCH["mutation"]

    def _grammar(self, batch: int) -> int:
        from hypothesis import HealthCheck, Phase, given, seed, settings

        from amqpbroker.fuzz import grammar

        count = [0]

        @seed(hash((self.state["seed"], batch)) & 0xFFFFFFFF)
        @settings(max_examples=BATCH["grammar"], database=None, deadline=None,
                  phases=[Phase.generate], suppress_health_check=list(HealthCheck))
        @given(grammar.sequences())
        def one(seq: tuple[list[bytes], int]) -> None:
            count[0] += 1
            frames, size = seq
            self._run("grammar", batch, grammar.chunked(frames, size))

        one()
        return count[0]

    def _classified(self, batch: int) -> int:
        from hypothesis import HealthCheck, Phase, given, seed, settings

        from amqpbroker.fuzz import grammar

        count = [0]
        by_class = self.state["by_class"]

        @seed(hash((self.state["seed"], batch, "c")) & 0xFFFFFFFF)
        @settings(max_examples=BATCH["classified"], database=None, deadline=None,
                  phases=[Phase.generate], suppress_health_check=list(HealthCheck))
        @given(grammar.classified())
        def one(item: tuple[str, bytes, bool]) -> None:
            count[0] += 1
            name, data, handshake = item
            by_class[name] = by_class.get(name, 0) + 1
            self._run("classified", batch, [data], handshake=handshake, expect=name)

        one()
        return count[0]
