"""Where an interrupted replay resumes: per account, window and resource, the last object
id whose page was stored (the next page starts after it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.engine import write_transaction
from ledger.schema import replay_checkpoints


@dataclass
class Checkpoint:
    resource: str
    cursor: str | None = None
    done: bool = False
    fetched: int = 0
    appended: int = 0


class Checkpoints:
    def __init__(self, engine: AsyncEngine, account: str, window: str) -> None:
        self._engine, self._account, self._window = engine, account, window

    async def load(self, resources: list[str]) -> dict[str, Checkpoint]:
        """The unfinished run of this window, or fresh checkpoints when there is none (a
        finished window is fetched again: a second run is how changes are found)."""
        c = replay_checkpoints.c
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(replay_checkpoints).where(
                        c.account == self._account, c.window == self._window
                    )
                )
            ).all()
        stored = {
            r.resource: Checkpoint(r.resource, r.cursor, r.done, r.fetched, r.appended)
            for r in rows
        }
        if stored and all(cp.done for cp in stored.values()) and set(stored) >= set(resources):
            stored = {}
        return {name: stored.get(name, Checkpoint(name)) for name in resources}

    async def save(self, checkpoint: Checkpoint) -> None:
        c = replay_checkpoints.c
        async with write_transaction(self._engine) as conn:
            await conn.execute(
                delete(replay_checkpoints).where(
                    c.account == self._account,
                    c.window == self._window,
                    c.resource == checkpoint.resource,
                )
            )
            await conn.execute(
                replay_checkpoints.insert().values(
                    account=self._account,
                    window=self._window,
                    resource=checkpoint.resource,
                    cursor=checkpoint.cursor,
                    done=checkpoint.done,
                    fetched=checkpoint.fetched,
                    appended=checkpoint.appended,
                    updated_at=datetime.now(UTC),
                )
            )
