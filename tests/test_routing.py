"""Events whose object names no customer reach the right customer's read models."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.event_log import EventLog
from ledger.schema import payments, refunds
from projections.routing import route
from projections.runner import ProjectionRunner
from simulator.stripe_account import BASIL, OLD
from tests.support.feeding import ACCOUNT, ledger_events
from tests.support.scenarios import ALL_SCENARIOS


async def refund_rows(engine: AsyncEngine) -> list[tuple[object, ...]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(refunds.c.customer_id, refunds.c.amount, refunds.c.fee))
        return [tuple(r) for r in rows]


async def test_a_refund_delivered_before_its_charge_is_routed_once_the_charge_arrives(
    engine: AsyncEngine, event_log: EventLog
) -> None:
    events = ledger_events(ALL_SCENARIOS["S7"](BASIL))
    late = [e for e in events if e.object_type == "charge"]
    runner = ProjectionRunner(engine)
    await event_log.append([e for e in events if e.object_type != "charge"])
    await runner.catch_up(ACCOUNT)
    await event_log.append(late)
    await runner.catch_up(ACCOUNT)
    assert await refund_rows(engine) == [("cus_T", 120000, 0)]


async def test_a_refund_known_only_inside_its_charge_still_gets_its_fee_and_date(
    engine: AsyncEngine, event_log: EventLog
) -> None:
    events = [e for e in ledger_events(ALL_SCENARIOS["S7"](OLD)) if e.object_type != "refund"]
    await event_log.append(events)
    await ProjectionRunner(engine).catch_up(ACCOUNT)
    assert await refund_rows(engine) == [("cus_T", 120000, 0)]


async def test_balance_transactions_reach_the_charge_s_customer(
    engine: AsyncEngine, event_log: EventLog
) -> None:
    await event_log.append(ledger_events(ALL_SCENARIOS["S2"](BASIL)))
    await ProjectionRunner(engine).catch_up(ACCOUNT)
    async with engine.connect() as conn:
        fees = (await conn.execute(select(payments.c.customer_id, payments.c.fee))).all()
    # G2's failed first attempt has no balance transaction, so no fee.
    assert sorted(fees, key=repr) == [
        ("cus_G", 378),
        ("cus_G2", 378),
        ("cus_G2", None),
        ("cus_H", 378),
    ]


async def test_events_routed_again_after_a_crash_before_the_position_was_saved_route_once(
    engine: AsyncEngine, event_log: EventLog
) -> None:
    # The runner commits routes before it saves its position: a crash in between makes
    # the next run route the same events again, the refund now with its charge's customer.
    events = ledger_events(ALL_SCENARIOS["S7"](BASIL))
    await event_log.append([e for e in events if e.object_type != "charge"])
    routed_before_the_crash = await event_log.read_after(0, limit=1000)
    async with engine.begin() as conn:
        await route(conn, ACCOUNT, routed_before_the_crash)
    await event_log.append([e for e in events if e.object_type == "charge"])
    await ProjectionRunner(engine).catch_up(ACCOUNT)
    assert await refund_rows(engine) == [("cus_T", 120000, 0)]
