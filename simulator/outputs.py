"""Where simulated events go: a JSONL stream, the ledger directly, or a running server as
signed webhook deliveries."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import IO, Any

import httpx
import orjson
import stripe
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.envelope import Source, parse_event
from ledger.event_log import EventLog, Outcome

Json = dict[str, Any]


def is_snapshot(record: Json) -> bool:
    """A balance-transaction snapshot: what a backfill stores, never a webhook."""
    marker = record.get("stripe_ledger")
    return isinstance(marker, dict) and bool(marker.get("snapshot"))


def write_jsonl(records: Iterable[Json], stream: IO[bytes]) -> int:
    """One record per line; returns how many were written."""
    count = 0
    for record in records:
        stream.write(orjson.dumps(record) + b"\n")
        count += 1
    return count


@dataclass(slots=True)
class Delivered:
    stored: int = 0
    duplicates: int = 0
    refused: int = 0
    skipped: int = 0  # snapshot records, which a webhook never carries


def _batches(records: Iterable[Json], size: int) -> Iterator[list[Json]]:
    it = iter(records)
    while batch := list(islice(it, size)):
        yield batch


async def append_to_ledger(
    records: Iterable[Json], engine: AsyncEngine, account: str, *, batch: int = 1000
) -> Delivered:
    """Append straight to the ledger: events as webhook deliveries, snapshot records as a
    backfill would store them. Duplicates are absorbed as on any other path."""
    log, tally = EventLog(engine), Delivered()
    for chunk in _batches(records, batch):
        events = [
            parse_event(
                orjson.dumps(record),
                account=account,
                source=Source.BACKFILL if is_snapshot(record) else Source.WEBHOOK,
            )
            for record in chunk
        ]
        for result in await log.append(events):
            if result.outcome is Outcome.STORED:
                tally.stored += 1
            else:
                tally.duplicates += 1
    return tally


def signature_header(body: bytes, secret: str) -> str:
    """Stripe's `Stripe-Signature` for `body`, signed now."""
    header: str = stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, timestamp=int(time.time())
    )
    return header


async def post_signed(
    records: Iterable[Json], url: str, secret: str, *, concurrency: int = 8
) -> Delivered:
    """POST each event to `url`, signed with `secret`, `concurrency` at a time, redelivering
    on 5xx or a dropped connection as Stripe would (a few times, backing off)."""
    tally = Delivered()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=concurrency * 4)

    async def sender(client: httpx.AsyncClient) -> None:
        while (body := await queue.get()) is not None:
            for attempt in range(6):
                try:
                    response = await client.post(
                        url,
                        content=body,
                        headers={
                            "Stripe-Signature": signature_header(body, secret),
                            "Content-Type": "application/json",
                        },
                    )
                except httpx.TransportError:
                    await asyncio.sleep(0.2 * 2**attempt)
                    continue
                if response.status_code >= 500:
                    await asyncio.sleep(0.2 * 2**attempt)
                    continue
                if response.is_success:
                    duplicate = response.json().get("outcome") == "duplicate"
                    tally.duplicates += duplicate
                    tally.stored += not duplicate
                else:
                    tally.refused += 1
                break
            else:
                tally.refused += 1

    async with httpx.AsyncClient(timeout=30) as client:
        workers = [asyncio.create_task(sender(client)) for _ in range(concurrency)]
        for record in records:
            if is_snapshot(record):
                tally.skipped += 1
                continue
            # Stripe's own formatting: two-space indented JSON.
            await queue.put(orjson.dumps(record, option=orjson.OPT_INDENT_2))
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
    return tally
