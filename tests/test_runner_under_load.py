"""Under steady load the runner keeps up in steps: it derives what was committed when it
began, refreshes the monthly figures, and returns, instead of chasing events that keep
arriving (which would leave the read models behind for as long as the load lasts)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.envelope import Source, parse_event
from ledger.event_log import EventLog
from ledger.schema import ledger_events, monthly_metrics
from projections.runner import ProjectionRunner
from tests.support.deliveries import distinct_events
from tests.support.feeding import ACCOUNT


async def test_catching_up_while_events_keep_arriving_stops_at_what_was_committed_when_it_began(
    engine: AsyncEngine, event_log: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [
        parse_event(d.body, account=ACCOUNT, source=Source.WEBHOOK)
        for d in distinct_events(60, customers=6, seed=5)
    ]
    backlog, arriving = events[:30], events[30:]
    await event_log.append(backlog)
    runner = ProjectionRunner(engine, batch_size=4)
    route_batch = runner._route_batch

    async def route_while_one_more_arrives(account: str, after: int, head: int) -> Any:
        routed = await route_batch(account, after, head)
        if arriving:
            await event_log.append([arriving.pop(0)])
        return routed

    monkeypatch.setattr(runner, "_route_batch", route_while_one_more_arrives)

    processed = await runner.catch_up(ACCOUNT)

    async with engine.connect() as conn:
        stored = await conn.scalar(select(func.count()).select_from(ledger_events))
        months = await conn.scalar(select(func.count()).select_from(monthly_metrics))
    assert processed == len(backlog)
    assert await runner.position(ACCOUNT) < (stored or 0)
    assert arriving, "the load was still going when the runner returned"
    assert months, "the monthly figures were refreshed at the head"
