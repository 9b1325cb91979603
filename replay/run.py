"""`replay --since`: bring the ledger back to the truth from the Stripe API.

For each resource it pages through the objects created in the window (subscriptions with
`status=all`, so canceled ones come too; every invoice line beyond the first ten), and
appends a snapshot of each object whose state the ledger does not hold. Stripe's own
events are fetched for the part of the window inside their 30-day retention. Then every
invoice the ledger still knows as open or uncollectible is fetched again, whatever its
creation date, so a payment made long after the invoice was created is found.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.envelope import NewEvent, Source, parse_event
from ledger.event_log import EventLog, Outcome
from ledger.schema import invoices
from projections.runner import ProjectionRunner
from replay.checkpoints import Checkpoint, Checkpoints
from replay.client import StripeApi, StripeNotFound, StripeRefused, StripeUnavailable
from replay.pages import ahead, all_objects, pages
from replay.snapshots import changed_records

EVENT_RETENTION = timedelta(days=30)
# Open invoices revisited at once: enough to keep the rate limit busy while one waits for
# its answers, few enough that an error stops the rest soon.
REVISITS_AT_ONCE = 8
CHECKPOINT_EVERY = 1.0  # seconds
# Stripe's events fetched while the objects are stored, before they may be stored: about
# 30 MB at most, for a list whose 30 days can be thousands of pages.
PAGES_AHEAD_WHILE_WAITING = 64


@dataclass(frozen=True, slots=True)
class Resource:
    name: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)


RESOURCES = (
    Resource("customers", "/v1/customers"),
    # Without status=all, canceled subscriptions are left out (STRIPE-NOTES.md).
    Resource("subscriptions", "/v1/subscriptions", {"status": "all"}),
    Resource("invoices", "/v1/invoices"),
    Resource("charges", "/v1/charges"),
    Resource("refunds", "/v1/refunds"),
    # Fees and net are not pushed as events: only listing balance transactions gives them.
    Resource("balance_transactions", "/v1/balance_transactions"),
    # From API 2025-03-31 on, charges and invoices no longer name each other: invoice
    # payments hold the link (https://docs.stripe.com/api/invoice-payment/list).
    Resource("invoice_payments", "/v1/invoice_payments"),
    Resource("events", "/v1/events"),
)


@dataclass
class ResourceReport:
    fetched: int = 0
    appended: int = 0
    progress: float = 0.0  # share of the window covered (lists run newest to oldest)
    error: str | None = None


@dataclass
class ReplayReport:
    resources: dict[str, ResourceReport]
    late_invoices_checked: int = 0
    late_invoices_changed: int = 0
    requests: int = 0
    rate_limited: int = 0
    retried: int = 0
    seconds: float = 0.0
    fetch_seconds: float = 0.0  # listing and storing (what Stripe's rate limit bounds)
    fetch_requests: int = 0  # the requests made while listing
    catch_up_seconds: float = 0.0  # the projections deriving what was stored

    @property
    def complete(self) -> bool:
        return all(r.error is None for r in self.resources.values())

    @property
    def fetched(self) -> int:
        return sum(r.fetched for r in self.resources.values())

    @property
    def appended(self) -> int:
        return sum(r.appended for r in self.resources.values()) + self.late_invoices_changed


Progress = Callable[[str, ResourceReport], None]


class Replay:
    def __init__(
        self,
        engine: AsyncEngine,
        api: StripeApi,
        *,
        account: str,
        since: datetime,
        until: datetime,
        livemode: bool,
        reporting_currency: str = "usd",
        on_progress: Progress | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine, self.api, self.account = engine, api, account
        self.since, self.until, self.livemode = since, until, livemode
        self.log = EventLog(engine)
        self.runner = ProjectionRunner(engine, reporting_currency=reporting_currency)
        self._on_progress = on_progress or (lambda name, report: None)
        self._now = now
        window = f"{since.isoformat()}..{until.isoformat()}"
        self._checkpoints = Checkpoints(engine, account, window)

    async def run(self) -> ReplayReport:
        """Run the backfill; the run owns `api` and closes it, however it ends."""
        try:
            return await self._run()
        finally:
            await self.api.close()

    async def _run(self) -> ReplayReport:
        started = time.monotonic()
        checkpoints = await self._checkpoints.load([r.name for r in RESOURCES])
        report = ReplayReport({r.name: ResourceReport() for r in RESOURCES})
        # Every object resource is listed at once, under the one pacer: each has its own
        # cursor and checkpoint, so they do not wait for each other, and the limit stays
        # busy. Stripe's events are stored after them, as before (whether a snapshot is new
        # must not depend on which list happened to be stored first), but fetched from the
        # start, a bounded number of pages ahead, with what the limit has to spare.
        objects = [r for r in RESOURCES if r.name != "events"]
        stored = asyncio.Event()

        async def objects_then_events_may_store() -> None:
            try:
                await _all_at_once(
                    self._resource(r, checkpoints[r.name], report.resources[r.name])
                    for r in objects
                )
            finally:
                stored.set()

        events = [r for r in RESOURCES if r.name == "events"]
        await _all_at_once(
            [
                objects_then_events_may_store(),
                *(
                    self._resource(r, checkpoints[r.name], report.resources[r.name], after=stored)
                    for r in events
                ),
            ]
        )
        report.fetch_seconds = time.monotonic() - started
        report.fetch_requests = self.api.stats.requests
        try:
            await self._revisit_open_invoices(report)
        except (StripeUnavailable, StripeRefused) as exc:
            report.resources["invoices"].error = f"revisiting open invoices: {exc}"
        caught_up = time.monotonic()
        await self.runner.catch_up(self.account)
        report.catch_up_seconds += time.monotonic() - caught_up
        stats = self.api.stats
        report.requests, report.rate_limited, report.retried = (
            stats.requests,
            stats.rate_limited,
            stats.retried,
        )
        report.seconds = time.monotonic() - started
        return report

    async def _resource(
        self,
        resource: Resource,
        checkpoint: Checkpoint,
        report: ResourceReport,
        *,
        after: asyncio.Event | None = None,
    ) -> None:
        report.fetched, report.appended = checkpoint.fetched, checkpoint.appended
        if checkpoint.done:
            report.progress = 1.0
            return
        try:
            await self._fetch(resource, checkpoint, report, after=after)
        except (StripeUnavailable, StripeRefused) as exc:
            report.error = str(exc)

    def _window(self, resource: Resource) -> tuple[datetime, datetime] | None:
        if resource.name != "events":
            return self.since, self.until
        start = max(self.since, self._now() - EVENT_RETENTION)
        return (start, self.until) if start < self.until else None

    async def _fetch(
        self,
        resource: Resource,
        checkpoint: Checkpoint,
        report: ResourceReport,
        *,
        after: asyncio.Event | None = None,
    ) -> None:
        window = self._window(resource)
        if window is None:  # entirely older than Stripe keeps events
            checkpoint.done, report.progress = True, 1.0
            await self._checkpoints.save(checkpoint)
            return
        start, end = window
        params = {
            **resource.params,
            "created": {"gte": int(start.timestamp()), "lt": int(end.timestamp())},
        }
        listed = pages(self.api, resource.path, params, starting_after=checkpoint.cursor)
        saved = time.monotonic()
        async for page in ahead(listed, 1 if after is None else PAGES_AHEAD_WHILE_WAITING):
            if after is not None:
                await after.wait()
            records = await self._records(resource, page.objects)
            # One transaction per page, then the checkpoint: a crash between the two makes
            # the resumed run fetch the page again and find nothing new in it.
            stored = await self._append(records)
            checkpoint.cursor = page.cursor
            checkpoint.fetched += len(page.objects)
            checkpoint.appended += stored
            checkpoint.done = not page.has_more
            # Saved at most once a second: its own write transaction after every page cost
            # SQLite a commit per page; a crash in between only means the resumed run asks
            # for those pages again and finds nothing new in them.
            if checkpoint.done or time.monotonic() - saved >= CHECKPOINT_EVERY:
                await self._checkpoints.save(checkpoint)
                saved = time.monotonic()
            report.fetched, report.appended = checkpoint.fetched, checkpoint.appended
            if page.objects:
                oldest = datetime.fromtimestamp(page.objects[-1]["created"], UTC)
                report.progress = min(1.0, (end - oldest) / (end - start))
            self._on_progress(resource.name, report)
        checkpoint.done, report.progress = True, 1.0
        await self._checkpoints.save(checkpoint)
        self._on_progress(resource.name, report)

    async def _records(self, resource: Resource, objects: list[dict[str, Any]]) -> list[NewEvent]:
        if resource.name == "events":
            # Stripe's own events keep their ids: one already received by webhook is a
            # duplicate here, absorbed by the ledger's key.
            return [
                parse_event(orjson.dumps(event), account=self.account, source=Source.BACKFILL)
                for event in objects
            ]
        if resource.name == "invoices":
            objects = [await self._with_all_lines(invoice) for invoice in objects]
        return await changed_records(
            self.engine,
            self.account,
            objects,
            fetched_at=self._now(),
            api_version=self.api.api_version,
            livemode=self.livemode,
        )

    async def _with_all_lines(self, invoice: dict[str, Any]) -> dict[str, Any]:
        """An invoice embeds at most 10 lines; fetch the rest so the snapshot is whole."""
        lines = invoice.get("lines")
        if not isinstance(lines, dict) or not lines.get("has_more") or not invoice.get("id"):
            return invoice
        every = await all_objects(self.api, f"/v1/invoices/{invoice['id']}/lines", {})
        return {**invoice, "lines": {**lines, "data": every, "has_more": False}}

    async def _revisit_open_invoices(self, report: ReplayReport) -> None:
        started = time.monotonic()
        await self.runner.catch_up(self.account)  # the invoices table must know them all
        report.catch_up_seconds += time.monotonic() - started
        i = invoices.c
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(i.invoice_id, i.subscription_id).where(
                        i.account == self.account, i.status.in_(("open", "uncollectible"))
                    )
                )
            ).all()
        queue = list(rows)

        async def revisit_some() -> None:
            while queue:
                row = queue.pop(0)
                await self._revisit(row.invoice_id, row.subscription_id, report)

        await _all_at_once(revisit_some() for _ in range(min(REVISITS_AT_ONCE, len(queue))))

    async def _revisit(
        self, invoice_id: str, subscription_id: str | None, report: ReplayReport
    ) -> None:
        report.late_invoices_checked += 1
        fetched: list[dict[str, Any]] = []
        try:
            invoice = await self.api.get(f"/v1/invoices/{invoice_id}")
            fetched.append(await self._with_all_lines(invoice))
            if subscription_id:
                fetched.append(await self.api.get(f"/v1/subscriptions/{subscription_id}"))
            if invoice.get("status") == "paid":
                fetched.extend(await self._payment_of(invoice))
        except StripeNotFound:
            return  # a deleted draft: nothing to revisit
        records = await changed_records(
            self.engine,
            self.account,
            fetched,
            fetched_at=self._now(),
            api_version=self.api.api_version,
            livemode=self.livemode,
        )
        report.late_invoices_changed += await self._append(records)

    async def _payment_of(self, invoice: dict[str, Any]) -> list[dict[str, Any]]:
        """The cash behind a paid invoice: its invoice payments (API 2025-03-31 on), its
        charges and their balance transactions (fees, and the date the cash moved)."""
        found: list[dict[str, Any]] = []
        charge_ids: set[str] = set()
        intents: set[str] = set()
        if isinstance(invoice.get("charge"), str):  # before 2025-03-31
            charge_ids.add(invoice["charge"])
        elif "charge" not in invoice:
            payments = await all_objects(
                self.api, "/v1/invoice_payments", {"invoice": invoice["id"]}
            )
            found.extend(payments)
            for payment in payments:
                details = payment.get("payment") or {}
                if isinstance(details.get("charge"), str):
                    charge_ids.add(details["charge"])
                if isinstance(details.get("payment_intent"), str):
                    intents.add(details["payment_intent"])
        charges = [
            charge
            for intent in sorted(intents)
            for charge in await all_objects(self.api, "/v1/charges", {"payment_intent": intent})
        ]
        known = {charge["id"] for charge in charges}
        charges += [await self.api.get(f"/v1/charges/{c}") for c in sorted(charge_ids - known)]
        for charge in charges:
            found.append(charge)
            transaction = charge.get("balance_transaction")
            if isinstance(transaction, str):
                found.append(await self.api.get(f"/v1/balance_transactions/{transaction}"))
        return found

    async def _append(self, records: list[NewEvent]) -> int:
        """Append, and count what was new (Stripe's events may be duplicates here)."""
        results = await self.log.append(records)
        return sum(1 for r in results if r.outcome is Outcome.STORED)


async def _all_at_once(jobs: Iterable[Awaitable[None]]) -> None:
    """Run the jobs concurrently; the first to fail stops the others and is raised as
    itself (a crash mid-run leaves each resource at its last saved checkpoint)."""
    try:
        async with asyncio.TaskGroup() as group:
            for job in jobs:
                group.create_task(_awaited(job))
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None


async def _awaited(job: Awaitable[None]) -> None:
    await job
