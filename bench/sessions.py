"""Which session (boot, `run` / `run --resume` invocation) each run of a campaign ran in.

The runner records a target session (bench.store.TargetSession) each time it sets the targets up
(a VM campaign: each boot), with its start time; a run belongs to the last session that started
before it did.  The analysis treats sessions as a level of the design (stats/sessions.py).
"""

from __future__ import annotations

import bisect
from datetime import UTC, datetime

from bench import store


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def run_sessions(campaign: store.Campaign) -> dict[str, int]:
    """run_id -> 0-based session index; empty when the campaign records fewer than 2 sessions."""
    starts = sorted(_instant(s.started) for s in campaign.sessions() if s.started)
    if len(starts) < 2:
        return {}
    return {
        row["run_id"]: max(0, bisect.bisect_right(starts, _instant(row["started"])) - 1)
        for row in store.run_rows(campaign)
        if row["status"] == "done" and row["started"]
    }
