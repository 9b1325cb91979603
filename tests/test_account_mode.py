"""One account's figures never mix test and live events: an account without a configured
mode takes its first stored event's, intake refuses the other mode, and derivation reads
only the account's mode even when both are stored (ledger.account_mode)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.accounts import add_account
from ledger.envelope import NewEvent, Source, parse_event
from ledger.event_log import EventLog
from ledger.schema import CUSTOMER_READ_MODELS
from ledger.secrets import new_secret_key
from ledger.settings import Mode
from projections.queries import movements_between
from projections.runner import ProjectionRunner
from simulator.stripe_account import BASIL
from tests.conftest import make_settings
from tests.support.app_client import app_client
from tests.support.databases import TestDatabase
from tests.support.scenarios import ALL_SCENARIOS, Scenario
from tests.support.signing import OTHER_SECRET, encode, fresh_id, signed
from tests.support.stripe_fixtures import event_2020

URL = "/webhooks/stripe"
EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def invoice_event(livemode: bool) -> bytes:
    document = fresh_id(event_2020("invoice_paid"))
    document["livemode"] = livemode
    document["data"]["object"]["livemode"] = livemode
    return encode(document)


def in_mode(scenario: Scenario, account: str, livemode: bool) -> list[NewEvent]:
    """The scenario's events for `account`, rendered in the given mode."""
    found = []
    for record in [*scenario.events, *scenario.backfill]:
        document: dict[str, Any] = {**record, "livemode": livemode}
        source = Source.BACKFILL if record in scenario.backfill else Source.WEBHOOK
        found.append(parse_event(encode(document), account=account, source=source))
    return found


async def customers_derived(engine: AsyncEngine, account: str) -> set[str]:
    """Every customer any read model holds a row for."""
    found: set[str] = set()
    async with engine.connect() as conn:
        for table in CUSTOMER_READ_MODELS:
            rows = await conn.execute(
                select(table.c.customer_id).where(table.c.account == account).distinct()
            )
            found |= {row.customer_id for row in rows}
    return found


async def test_a_modeless_account_refuses_a_live_event_after_its_first_test_event(
    database: TestDatabase, engine: AsyncEngine, event_log: EventLog
) -> None:
    first, live = invoice_event(False), invoice_event(True)
    async with app_client(make_settings(database)) as client:
        accepted = await client.post(URL, content=first, headers=signed(first))
        refused = await client.post(URL, content=live, headers=signed(live))
    assert (accepted.status_code, refused.status_code) == (200, 400)
    reason = refused.json()["error"]
    assert "\n" not in reason and "set STRIPE_MODE=test" in reason
    assert [e.livemode for e in await event_log.read_after(0)] == [False]


async def test_a_modeless_account_goes_on_accepting_its_first_events_mode(
    database: TestDatabase, engine: AsyncEngine, event_log: EventLog
) -> None:
    bodies = [invoice_event(True) for _ in range(3)]
    async with app_client(make_settings(database)) as client:
        answers = [await client.post(URL, content=b, headers=signed(b)) for b in bodies]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert len(await event_log.read_after(0)) == 3


async def test_stripe_mode_set_after_events_of_the_other_mode_refuses_rather_than_mixes(
    database: TestDatabase, engine: AsyncEngine, event_log: EventLog
) -> None:
    """The ledger is pinned by its first event: setting STRIPE_MODE=live over a ledger of
    test events does not start mixing live events into the test figures."""
    first, live = invoice_event(False), invoice_event(True)
    async with app_client(make_settings(database)) as client:
        assert (await client.post(URL, content=first, headers=signed(first))).status_code == 200
    async with app_client(make_settings(database, STRIPE_MODE="live")) as client:
        refused = await client.post(URL, content=live, headers=signed(live))
    assert refused.status_code == 400
    assert "ledger is in test mode" in refused.json()["error"]
    assert len(await event_log.read_after(0)) == 1


async def test_derivation_reads_only_the_mode_of_the_accounts_first_event(
    engine: AsyncEngine, event_log: EventLog
) -> None:
    """Both modes already stored (a race at intake, or an older version): the figures are
    those of the first event's mode alone."""
    await event_log.append(in_mode(ALL_SCENARIOS["S4"](BASIL), "default", False))
    await event_log.append(in_mode(ALL_SCENARIOS["S5"](BASIL), "default", True))
    await ProjectionRunner(engine).catch_up("default")
    async with engine.connect() as conn:
        movements = await movements_between(conn, "default", *EVER)
    assert {m.customer_id for m in movements} == {"cus_J", "cus_K"}
    assert await customers_derived(engine, "default") == {"cus_J", "cus_K"}


async def test_derivation_reads_only_a_stored_accounts_configured_mode(
    database: TestDatabase, engine: AsyncEngine, event_log: EventLog
) -> None:
    settings = make_settings(database, LEDGER_SECRET_KEY=new_secret_key())
    await add_account(
        engine, settings, "prod", api_key=None, webhook_secrets=[OTHER_SECRET], mode=Mode.LIVE
    )
    await event_log.append(in_mode(ALL_SCENARIOS["S4"](BASIL), "prod", False))
    await event_log.append(in_mode(ALL_SCENARIOS["S5"](BASIL), "prod", True))
    await ProjectionRunner(engine).catch_up("prod")
    assert await customers_derived(engine, "prod") == {"cus_L", "cus_M"}


@pytest.mark.parametrize("livemode", [False, True])
async def test_a_rebuild_reads_the_same_single_mode_as_catching_up(
    engine: AsyncEngine, event_log: EventLog, livemode: bool
) -> None:
    await event_log.append(in_mode(ALL_SCENARIOS["S4"](BASIL), "default", livemode))
    await event_log.append(in_mode(ALL_SCENARIOS["S5"](BASIL), "default", not livemode))
    runner = ProjectionRunner(engine)
    await runner.catch_up("default")
    before = await customers_derived(engine, "default")
    await runner.rebuild("default")
    assert await customers_derived(engine, "default") == before == {"cus_J", "cus_K"}
