"""Compare a run of scenario.py against the recorded RabbitMQ fixtures."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any

from interop.management import scenario
from interop.management.differences import EXTRA_EVERYWHERE, MISSING_EVERYWHERE, PER_CALL

FIXTURES = Path(__file__).parent / "fixtures" / "rabbitmq.json"


def load_fixtures() -> dict[str, Any]:
    return json.loads(FIXTURES.read_text())


def _allowed(path: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(path, p) for p in patterns)


def differences(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> list[str]:
    """Every difference not listed in differences.py, as readable lines."""
    problems: list[str] = []
    by_id = {r["id"]: r for r in ours}
    for ref in theirs:
        cid = ref["id"]
        got = by_id.get(cid)
        if got is None:
            problems.append(f"{cid}: not called")
            continue
        allowed = PER_CALL.get(cid, {})
        if got["status"] != ref["status"] and got["status"] != allowed.get("status", (0,))[0]:
            problems.append(f"{cid}: status {got['status']}, RabbitMQ {ref['status']}")
            continue
        if got["status"] != ref["status"]:
            continue  # an allowed status difference: bodies differ too
        mine, rabbit = scenario.key_paths(got["shape"]), scenario.key_paths(ref["shape"])
        missing_ok = [*MISSING_EVERYWHERE, *allowed.get("missing", {})]
        extra_ok = [*EXTRA_EVERYWHERE, *allowed.get("extra", {})]
        for path in sorted(rabbit - mine):
            if not _allowed(path, missing_ok):
                problems.append(f"{cid}: missing key {path}")
        for path in sorted(mine - rabbit):
            if not _allowed(path, extra_ok):
                problems.append(f"{cid}: extra key {path}")
    return problems


def allowed_patterns() -> list[str]:
    """Every pattern differences.py allows (docs/management.md must name each)."""
    out = [*MISSING_EVERYWHERE, *EXTRA_EVERYWHERE]
    for entry in PER_CALL.values():
        out += [*entry.get("missing", {}), *entry.get("extra", {})]
    return out
