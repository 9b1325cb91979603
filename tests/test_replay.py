"""`replay` against a local fake Stripe API that speaks Stripe's wire format."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.engine import create_engine
from ledger.event_log import EventLog
from ledger.migrate import upgrade
from ledger.schema import CASH_READ_MODELS, ledger_events
from projections import metrics
from projections.account_config import load_config
from projections.as_reported import as_reported
from projections.customer_facts import STATUS_RANK
from projections.fx import load_rates
from projections.metrics import customers_at
from projections.runner import ProjectionRunner
from replay.client import StripeApi
from replay.run import Replay, ReplayReport, ResourceReport
from replay.snapshots import _state, changed_records, snapshot_record
from simulator.life import end_of, simulated_account
from simulator.stripe_account import BASIL, Item, StripeAccount
from tests.support.cli_runner import invoke
from tests.support.databases import TestDatabase
from tests.support.fake_stripe import Dataset, FakeStripe, serve_fake_stripe
from tests.support.feeding import ACCOUNT
from tests.support.feeding import ledger_events as scenario_events
from tests.support.scenarios import Scenario

MONTHS = 4
SINCE = datetime(2023, 12, 1, tzinfo=UTC)
NOW = end_of(MONTHS)


def replay(
    engine: AsyncEngine,
    fake: FakeStripe,
    *,
    since: datetime = SINCE,
    now: datetime = NOW,
    rate: float = 100.0,
    on_progress: Callable[[str, ResourceReport], None] | None = None,
) -> Replay:
    api = StripeApi(fake.api_key, base_url=fake.base_url, requests_per_second=rate)
    return Replay(
        engine,
        api,
        account=ACCOUNT,
        since=since,
        until=now,
        livemode=False,
        on_progress=on_progress,
        now=lambda: now,
    )


@pytest.fixture(scope="module")
def account() -> StripeAccount:
    return simulated_account(customers=25, months=MONTHS, seed=11)


async def stored(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(ledger_events)) or 0)


async def cash_content(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    provenance = {"id", "event_id", "position"}
    found: dict[str, list[tuple[Any, ...]]] = {}
    async with engine.connect() as conn:
        for table in CASH_READ_MODELS:
            if table.name == "invoice_status_history":
                continue  # a snapshot sees the last status, not each step on the way
            columns = [c for c in table.c if c.name not in provenance]
            rows = await conn.execute(select(*columns))
            found[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return found


async def fed_by_webhooks(account: StripeAccount, folder: Path) -> AsyncEngine:
    engine = create_engine(f"sqlite+aiosqlite:///{folder / 'webhooks.sqlite3'}")
    await upgrade(engine)
    events = scenario_events(
        Scenario("large", account.layout, account.events, account.backfill, {})
    )
    await EventLog(engine).append(events)
    await ProjectionRunner(engine).catch_up(ACCOUNT, now=NOW)
    return engine


async def test_a_full_backfill_equals_what_webhooks_would_have_produced(
    engine: AsyncEngine, account: StripeAccount, tmp_path: Path
) -> None:
    with serve_fake_stripe(Dataset.from_account(account, now=NOW)) as fake:
        report = await replay(engine, fake).run()
    assert report.complete and report.fetched > 400
    webhooks = await fed_by_webhooks(account, tmp_path)
    try:
        assert await cash_content(engine) == await cash_content(webhooks)
        for at in (NOW - timedelta(days=20), NOW):  # inside Stripe's event retention
            async with engine.connect() as a, webhooks.connect() as b:
                assert await customers_at(a, ACCOUNT, at) == await customers_at(b, ACCOUNT, at)
    finally:
        await webhooks.dispose()


async def test_a_second_run_appends_nothing(engine: AsyncEngine, account: StripeAccount) -> None:
    with serve_fake_stripe(Dataset.from_account(account, now=NOW)) as fake:
        first = await replay(engine, fake).run()
        count = await stored(engine)
        second = await replay(engine, fake).run()
    assert first.appended > 0
    assert (second.appended, second.complete) == (0, True)
    assert await stored(engine) == count


class Killed(Exception):
    """Stands for the process dying between two pages."""


async def test_a_run_killed_halfway_resumes_and_ends_identical(
    engine: AsyncEngine, account: StripeAccount, tmp_path: Path
) -> None:
    pages = 0

    def die_after_five_pages(name: str, report: ResourceReport) -> None:
        nonlocal pages
        pages += 1
        if pages == 5:
            raise Killed

    dataset = Dataset.from_account(account, now=NOW)
    with serve_fake_stripe(dataset) as fake:
        with pytest.raises(Killed):
            await replay(engine, fake, on_progress=die_after_five_pages).run()
        halfway = await stored(engine)
        resumed = await replay(engine, fake).run()
        clean = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'clean.sqlite3'}")
        await upgrade(clean)
        try:
            await replay(clean, fake).run()
            assert 0 < halfway < await stored(engine)
            assert resumed.complete
            assert await event_ids(engine) == await event_ids(clean)
            assert await cash_content(engine) == await cash_content(clean)
        finally:
            await clean.dispose()


async def event_ids(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set((await conn.scalars(select(ledger_events.c.event_id))).all())


async def test_rate_limits_and_server_errors_are_waited_out(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    small = simulated_account(customers=6, months=2, seed=4)
    dataset = Dataset.from_account(small, now=end_of(2))
    with serve_fake_stripe(dataset, rate_limit_per_second=2, error_rate=0.15, seed=3) as fake:
        report = await replay(engine, fake, now=end_of(2), rate=40).run()
        statuses = {r.status for r in fake.requests}
    assert report.complete
    assert {429, 500} <= statuses
    assert report.rate_limited > 0 and report.retried > 0


def late_payer(layout: str = BASIL) -> tuple[StripeAccount, int]:
    """A subscription whose February invoice fails, goes unpaid on 02-10, and is paid on
    02-20; returns the account and how many events were delivered before the payment."""
    account = StripeAccount(layout)  # type: ignore[arg-type]
    start = datetime(2025, 1, 1, tzinfo=UTC)
    account.price("price_m", amount="50.00")
    customer = account.customer("cus_LATE", at=start)
    account.subscribe("sub_LATE", customer, [Item("price_m")], at=start)
    account.bill("sub_LATE", at=start, billing_reason="subscription_create")
    account.renew("sub_LATE", at=datetime(2025, 2, 1, tzinfo=UTC))
    invoice = account.bill(
        "sub_LATE",
        at=datetime(2025, 2, 1, tzinfo=UTC),
        outcome="failed",
        settle_at=datetime(2025, 2, 1, 1, tzinfo=UTC),
    )
    account.set_status("sub_LATE", "past_due", at=datetime(2025, 2, 1, 1, tzinfo=UTC))
    account.set_status("sub_LATE", "unpaid", at=datetime(2025, 2, 10, tzinfo=UTC))
    delivered = len(account.events)
    account.pay_invoice(invoice, at=datetime(2025, 2, 20, tzinfo=UTC))
    account.set_status("sub_LATE", "active", at=datetime(2025, 2, 20, tzinfo=UTC))
    return account, delivered


async def test_a_missed_invoice_paid_is_recovered_and_the_churn_restated_away(
    engine: AsyncEngine, event_log: EventLog
) -> None:
    account, delivered = late_payer()
    scenario = Scenario("late", account.layout, account.events[:delivered], [], {})
    await event_log.append(scenario_events(scenario))
    runner = ProjectionRunner(engine)
    await runner.catch_up(ACCOUNT)
    february = (datetime(2025, 2, 1, tzinfo=UTC), datetime(2025, 3, 1, tzinfo=UTC))
    before = await period_figures(engine, *february)
    assert (before["churn"], before["mrr_end"]) == ("50.00", "0.00")

    now = datetime(2025, 3, 5, tzinfo=UTC)
    with serve_fake_stripe(Dataset.from_account(account, now=now)) as fake:
        # The window starts after the invoice was created: only revisiting open invoices
        # can find its payment.
        report = await replay(engine, fake, since=datetime(2025, 3, 1, tzinfo=UTC), now=now).run()
    assert report.late_invoices_checked == 1 and report.late_invoices_changed >= 1

    restated = await period_figures(engine, *february)
    assert (restated["churn"], restated["mrr_end"], restated["gross_revenue"]) == (
        "0.00",
        "50.00",
        "50.00",  # the late payment, on its own date
    )
    reported = await as_reported(engine, ACCOUNT, *february)
    assert (reported["churn"], reported["mrr_end"]) == ("50.00", "0.00")
    march = await as_reported(
        engine, ACCOUNT, datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC)
    )
    assert (march["mrr_start"], march["opening_restatement"]) == ("50.00", "50.00")


async def period_figures(engine: AsyncEngine, start: datetime, end: datetime) -> dict[str, Any]:
    async with engine.connect() as conn:
        config = await load_config(conn, ACCOUNT, "usd")
        return await metrics.period(
            conn, ACCOUNT, start, end, config, await load_rates(conn, "usd")
        )


async def test_the_command_backfills_and_reports_its_throughput(
    database: TestDatabase, engine: AsyncEngine, account: StripeAccount
) -> None:
    with serve_fake_stripe(Dataset.from_account(account, now=NOW)) as fake:
        code, out, err = await invoke_with_stripe(
            database, fake, "replay", "--since", "2023-12-01", "--until", NOW.isoformat()
        )
    assert code == 0, err
    assert "objects fetched in" in out and "objects/s" in out
    assert await stored(engine) > 0


async def test_a_publishable_key_is_refused_before_any_request(
    database: TestDatabase, engine: AsyncEngine
) -> None:
    dataset = Dataset(now=NOW)
    with serve_fake_stripe(dataset) as fake:
        code, out, err = await invoke_with_stripe(
            database, fake, "replay", "--since", "2024-01-01", key="pk_test_" + "p" * 24
        )
        requests = fake.requests
    assert code == 2 and "publishable key" in err
    assert "pk_test_ppp" not in out + err
    assert requests == []


async def invoke_with_stripe(
    database: TestDatabase, fake: FakeStripe, *args: str, key: str | None = None
) -> tuple[int, str, str]:
    env = {"STRIPE_API_BASE": fake.base_url, "STRIPE_API_KEY": key or fake.api_key}
    return await invoke(database, *args, extra_env=env)


def test_replay_report_adds_up() -> None:
    report = ReplayReport({"a": ResourceReport(3, 2), "b": ResourceReport(4, 1)})
    report.late_invoices_changed = 1
    assert (report.fetched, report.appended, report.complete) == (7, 4, True)


async def slowly_changed(
    engine: AsyncEngine, objects: list[dict[str, Any]], *, fetched_at: datetime
) -> set[str]:
    """The obvious rule, as replay decided it before: re-read every event of each object,
    take the newest in business order, compare as the projections read it."""
    ids = [str(o["id"]) for o in objects]
    e = ledger_events.c
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(e.object_id, e.created, e.event_id, e.payload).where(
                    e.account == ACCOUNT, e.object_id.in_(ids)
                )
            )
        ).all()
    best: dict[str, tuple[Any, dict[str, Any]]] = {}
    for row in rows:
        obj = orjson.loads(row.payload)["data"]["object"]
        key = (row.created, STATUS_RANK.get(str(obj.get("status")), 0), row.event_id)
        if row.object_id not in best or key > best[row.object_id][0]:
            best[row.object_id] = (key, obj)
    records = [
        snapshot_record(ACCOUNT, o, fetched_at=fetched_at, api_version="x", livemode=False)
        for o in objects
        if o["id"] not in best or _state(best[o["id"]][1]) != _state(o)
    ]
    async with engine.connect() as conn:
        stored = set(
            (
                await conn.scalars(
                    select(e.event_id).where(e.event_id.in_([r.event_id for r in records]))
                )
            ).all()
        )
    return {r.event_id for r in records} - stored  # what appending them would store


async def test_deciding_what_changed_from_ids_and_newest_rows_equals_rereading_every_payload(
    engine: AsyncEngine, event_log: EventLog, account: StripeAccount
) -> None:
    # Half the history arrived by webhook, then a first replay stored some snapshots: the
    # ledger holds objects never seen, seen in an older state, seen in this very state.
    events = scenario_events(
        Scenario("half", account.layout, account.events[: len(account.events) // 2], [], {})
    )
    await event_log.append(events)
    dataset = Dataset.from_account(account, now=NOW)
    objects = [
        dict(o)
        for resource in ("customers", "subscriptions", "invoices", "charges", "invoice_payments")
        for o in (dataset.get(i) for i in dataset.ids(resource))
        if o is not None
    ]
    rng = random.Random(5)
    await event_log.append(
        [
            snapshot_record(ACCOUNT, o, fetched_at=NOW, api_version="x", livemode=False)
            for o in rng.sample(objects, len(objects) // 3)
        ]
    )
    # Some objects changed since, some in what the projections read, some not.
    fetched = [
        {**o, "metadata": {"n": str(rng.random())}}
        if rng.random() < 0.2
        else {**o, "status": "void"}
        if rng.random() < 0.1 and o.get("object") == "invoice"
        else o
        for o in objects
    ]
    later = NOW + timedelta(hours=1)
    for start in range(0, len(fetched), 100):
        page = fetched[start : start + 100]
        fast = await changed_records(
            engine, ACCOUNT, page, fetched_at=later, api_version="x", livemode=False
        )
        assert {r.event_id for r in fast} == await slowly_changed(engine, page, fetched_at=later)
