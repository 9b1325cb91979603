"""The server keeps the read models current on its own, without delaying any webhook."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from projections.queries import movements_between
from projections.worker import projection_worker
from simulator.stripe_account import BASIL
from tests.conftest import make_settings
from tests.support.app_client import app_client
from tests.support.databases import TestDatabase
from tests.support.scenarios import ALL_SCENARIOS
from tests.support.signing import encode, signed


async def test_events_posted_to_the_endpoint_reach_the_read_models(
    database: TestDatabase, engine: AsyncEngine
) -> None:
    scenario = ALL_SCENARIOS["S5"](BASIL)
    async with app_client(make_settings(database), companions=[projection_worker]) as client:
        for event in scenario.events:
            body = encode(event)
            response = await client.post("/webhooks/stripe", content=body, headers=signed(body))
            assert response.status_code == 200
        expected = len(scenario.expected["default"].movements)
        movements = []
        for _ in range(100):
            async with engine.connect() as conn:
                movements = await movements_between(
                    conn,
                    "default",
                    datetime(2000, 1, 1, tzinfo=UTC),
                    datetime(2100, 1, 1, tzinfo=UTC),
                )
            if len(movements) == expected:
                break
            await asyncio.sleep(0.05)
    assert sorted(m.kind for m in movements) == sorted(
        m.kind for m in scenario.expected["default"].movements
    )
