"""The projection-errors store: customers whose events cannot be derived, quarantined.

The runner records a customer here instead of failing its whole window, and deletes the
row once that customer derives again (a fix, a new release: a rebuild or its next event).
`ledger stats`, `check`, `/readyz` and the dashboard read it from here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger.logs import get_logger
from ledger.schema import projection_errors
from projections.customer_derivation import Failure

log = get_logger("projections")

# Within one statement's IN list on every engine.
_IDS_PER_DELETE = 500


@dataclass(frozen=True, slots=True)
class Quarantined:
    account: str
    customer_id: str
    event_ids: tuple[str, ...]
    error: str
    failed_at: datetime


async def record(
    conn: AsyncConnection,
    account: str,
    failures: Mapping[str, Failure],
    now: datetime | None = None,
) -> None:
    """Quarantine these customers (replacing an earlier record of any of them)."""
    if not failures:
        return
    at = now or datetime.now(UTC)
    await clear(conn, account, failures)
    await conn.execute(
        projection_errors.insert(),
        [
            {
                "account": account,
                "customer_id": customer_id,
                "event_ids": orjson.dumps(list(failure.event_ids)).decode(),
                "error": failure.error,
                "failed_at": at,
            }
            for customer_id, failure in sorted(failures.items())
        ],
    )
    for customer_id, failure in sorted(failures.items()):
        log.error(
            "customer_quarantined",
            account=account,
            customer_id=customer_id,
            event_ids=list(failure.event_ids[:10]),
            error=failure.error,
        )


async def clear(conn: AsyncConnection, account: str, customer_ids: Iterable[str]) -> None:
    """These customers derive: they are no longer quarantined."""
    ids = sorted(customer_ids)
    q = projection_errors.c
    for start in range(0, len(ids), _IDS_PER_DELETE):
        await conn.execute(
            delete(projection_errors).where(
                q.account == account, q.customer_id.in_(ids[start : start + _IDS_PER_DELETE])
            )
        )


async def quarantined(conn: AsyncConnection, account: str | None = None) -> list[Quarantined]:
    """Every quarantined customer (of one account, or of all), oldest failure first."""
    q = projection_errors.c
    query = select(projection_errors).order_by(q.account, q.failed_at, q.customer_id)
    if account is not None:
        query = query.where(q.account == account)
    return [
        Quarantined(
            row.account,
            row.customer_id,
            tuple(orjson.loads(row.event_ids)),
            row.error,
            row.failed_at,
        )
        for row in await conn.execute(query)
    ]


async def counts_by_account(conn: AsyncConnection) -> dict[str, int]:
    q = projection_errors.c
    rows = await conn.execute(
        select(q.account, func.count()).group_by(q.account).order_by(q.account)
    )
    return {str(account): int(count) for account, count in rows}


async def readiness_warnings(engine: AsyncEngine) -> dict[str, Any]:
    """For `/readyz`: a `warnings` list when customers are quarantined (the service is still
    ready: every other customer's figures are current), else nothing. Readiness itself is
    decided by the caller's checks, so a failure to read the table adds no warning."""
    try:
        async with engine.connect() as conn:
            counts = await counts_by_account(conn)
    except Exception:
        return {}
    if not counts:
        return {}
    return {
        "warnings": [
            {
                "kind": "customers_quarantined",
                "account": account,
                "customers": count,
                "message": f"{count} customers of account {account!r} cannot be derived; "
                "see `stripe-ledger ledger stats`",
            }
            for account, count in counts.items()
        ]
    }


async def all_quarantined(engine: AsyncEngine, account: str | None = None) -> list[Quarantined]:
    async with engine.connect() as conn:
        return await quarantined(conn, account)


def quarantine_document(found: Iterable[Quarantined]) -> list[dict[str, Any]]:
    """For `ledger stats --json`."""
    return [
        {
            "account": q.account,
            "customer_id": q.customer_id,
            "event_ids": list(q.event_ids),
            "error": q.error,
            "failed_at": q.failed_at.isoformat(),
        }
        for q in found
    ]


def quarantine_problems(found: Sequence[Quarantined], account: str) -> list[str]:
    """For `check`: one problem line when customers of this account are quarantined."""
    held = [q for q in found if q.account == account]
    if not held:
        return []
    return [
        f"{len(held)} customers of account {account!r} are quarantined: their events cannot "
        "be derived, so the figures leave them out (`stripe-ledger ledger stats` lists them)"
    ]
